//! Reading the files the CLI is given.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use allot_core::Millis;
use allot_events::{DecodeError, DecodedFile, Entry};
use allot_rules::RuleSet;
use anyhow::{bail, Context};

/// Opens `path`, or standard input for `-`.
pub fn open(path: &str) -> anyhow::Result<Box<dyn BufRead + Send>> {
    if path == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let f = File::open(path).with_context(|| format!("cannot open {path}"))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
}

pub fn read_to_string(path: &str) -> anyhow::Result<String> {
    let mut s = String::new();
    open(path)?
        .read_to_string(&mut s)
        .with_context(|| format!("cannot read {path}"))?;
    Ok(s)
}

/// Loads and validates a rules file; errors name the file, line and column.
pub fn rules(path: &str) -> anyhow::Result<RuleSet> {
    let text = read_to_string(path)?;
    RuleSet::from_toml(&text, path).map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))
}

/// `--now`: RFC 3339, or the current time when absent.
pub fn now(arg: Option<&str>) -> anyhow::Result<Millis> {
    match arg {
        None => Ok(chrono::Utc::now().timestamp_millis()),
        Some(s) => match allot_rules::rfc3339(s) {
            Some(t) => Ok(t),
            None => bail!("--now {s:?} is not an RFC 3339 time (e.g. 2026-11-25T17:00:00Z)"),
        },
    }
}

/// `FILE:LINE:COLUMN: what is wrong (read as SHAPE)` for a bad entry of a
/// replay file, naming the array element when the file is an array.
pub fn entry_error(file: &str, decoded: &DecodedFile, entry: &Entry) -> Option<String> {
    let e = entry.result.as_ref().err()?;
    let (line, column) = entry.at;
    let what = match e {
        DecodeError::Json { message, .. } => format!("not JSON: {message}"),
        e => e.to_string(),
    };
    // A batch on one line names its element itself (`hubspot event [1]`).
    let element = match entry.index {
        Some(i) if e.event().and_then(|r| r.index).is_none() => format!("element [{i}]: "),
        _ => String::new(),
    };
    Some(format!(
        "{file}:{line}:{column}: {element}{what} (read as {})",
        decoded.shape
    ))
}

/// `FILE read as SHAPE (why)`, for the summary of a replay file.
pub fn shape_note(file: &str, decoded: &DecodedFile) -> String {
    format!("{file} read as {} ({})", decoded.shape, decoded.reason)
}
