use std::io::{BufWriter, Write};
use std::process::ExitCode;

use allot_events::{decode_lines, Format};

use crate::input;

/// Prints what allot makes of raw CRM events: one normalised event per line.
#[derive(clap::Args)]
pub struct Args {
    /// Raw events as JSON lines or one JSON array; `-` (the default) reads standard input.
    #[arg(default_value = "-")]
    file: String,
    /// auto, salesforce, hubspot or native.
    #[arg(long, default_value = "auto")]
    format: Format,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let text = input::read_to_string(&a.file)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut events, mut bad) = (0usize, 0usize);
    for (line, result) in decode_lines(&text, a.format) {
        match result {
            Ok(list) => {
                for e in list {
                    events += 1;
                    serde_json::to_writer(&mut out, &e)?;
                    out.write_all(b"\n")?;
                }
            }
            Err(e) => {
                bad += 1;
                eprintln!("allot: {}:{line}: {e}", a.file);
            }
        }
    }
    out.flush()?;
    eprintln!("allot: {events} event(s) decoded, {bad} error(s)");
    Ok(ExitCode::from(if bad > 0 { 2 } else { 0 }))
}
