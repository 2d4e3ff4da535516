use std::io::{BufWriter, Write};
use std::process::ExitCode;

use allot_events::{decode_file, Format};

use crate::input;

/// Prints what allot makes of raw CRM events: one normalised event per line.
#[derive(clap::Args)]
pub struct Args {
    /// Raw events: JSON lines, one JSON array, or one (pretty-printed) JSON
    /// object; `-` (the default) reads standard input.
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
    let decoded = decode_file(&text, a.format);
    for entry in &decoded.entries {
        match &entry.result {
            Ok(list) => {
                for e in list {
                    events += 1;
                    serde_json::to_writer(&mut out, &integral(serde_json::to_value(e)?))?;
                    out.write_all(b"\n")?;
                }
            }
            Err(_) => {
                bad += 1;
                if let Some(msg) = input::entry_error(&a.file, &decoded, entry) {
                    eprintln!("allot: {msg}");
                }
            }
        }
    }
    out.flush()?;
    eprintln!(
        "allot: {events} event(s) decoded, {bad} error(s); {}",
        input::shape_note(&a.file, &decoded)
    );
    Ok(ExitCode::from(if bad > 0 { 2 } else { 0 }))
}

/// Whole numbers within ±2^53 as integers (`120`, not `120.0`): field values
/// are `f64` inside, but were integers in the CRM's JSON.
fn integral(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match v {
        J::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() <= EXACT => {
                J::from(f as i64)
            }
            _ => J::Number(n),
        },
        J::Array(a) => J::Array(a.into_iter().map(integral).collect()),
        J::Object(o) => J::Object(o.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::integral;
    use serde_json::json;

    #[test]
    fn whole_numbers_print_as_integers() {
        let v = json!({"a": 120.0, "b": [1.5, -3.0, 0.0], "c": {"d": 9007199254740992.0_f64},
            "e": 1.0e300, "f": 7, "g": "120.0", "h": -9007199254740994.0_f64});
        assert_eq!(
            serde_json::to_string(&integral(v)).unwrap(),
            r#"{"a":120,"b":[1.5,-3,0],"c":{"d":9007199254740992},"e":1e+300,"f":7,"g":"120.0","h":-9007199254740994.0}"#
        );
    }
}
