use std::io::{BufWriter, Write};
use std::process::ExitCode;

use allot_core::ObjectKind;
use allot_rules::gen;

#[derive(clap::Subcommand)]
pub enum Gen {
    /// A rules file with N territories (one per country, the rest by postal prefix).
    Rules {
        #[arg(long, default_value_t = 1000)]
        territories: usize,
        /// Reps (default: a quarter of the territories, between 10 and 5000).
        #[arg(long)]
        reps: Option<usize>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// N records as JSON lines, the input of `simulate` and `realign`.
    Records {
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value = "account")]
        object: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub fn run(g: Gen) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match g {
        Gen::Rules {
            territories,
            reps,
            seed,
        } => {
            let mut spec = gen::GenSpec::new(territories, seed);
            spec.reps = reps.unwrap_or(spec.reps);
            out.write_all(gen::rules_toml(&spec).as_bytes())?;
        }
        Gen::Records {
            count,
            object,
            seed,
        } => {
            let kind = ObjectKind::parse(&object).ok_or_else(|| {
                anyhow::anyhow!("--object {object:?}: expected lead, account or contact")
            })?;
            for r in gen::records(count, seed, kind) {
                serde_json::to_writer(&mut out, &r)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
