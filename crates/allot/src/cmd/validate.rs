use std::process::ExitCode;

use allot_rules::RuleSet;

use crate::input;

#[derive(clap::Args)]
pub struct Args {
    /// The rules file (TOML); `-` for standard input.
    rules: String,
    /// Treat warnings as errors.
    #[arg(long)]
    strict: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let text = input::read_to_string(&a.rules)?;
    match RuleSet::from_toml(&text, &a.rules) {
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{}: {} error(s)", a.rules, e.diagnostics.len());
            Ok(ExitCode::from(1))
        }
        Ok(rules) => {
            for w in &rules.warnings {
                eprintln!("{}", w.render(&a.rules));
            }
            let s = rules.index_stats();
            eprintln!(
                "{}: valid (version {}): {} reps, {} teams, {} territories ({} indexed, {} scanned), {} named accounts, {} warning(s)",
                a.rules,
                rules.version,
                rules.reps.len(),
                rules.teams.len(),
                rules.territories.len(),
                s.territories - s.scanned,
                s.scanned,
                rules.named_accounts.len(),
                rules.warnings.len()
            );
            Ok(ExitCode::from(u8::from(
                a.strict && !rules.warnings.is_empty(),
            )))
        }
    }
}
