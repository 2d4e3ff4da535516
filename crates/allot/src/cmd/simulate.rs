use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use allot_core::{Decision, EngineState, Record};
use anyhow::Context;
use serde::Serialize;

use crate::input;

/// Input: one record per line, `{"object":"lead","id":"..","owner":"..","fields":{..}}`.
#[derive(clap::Args)]
pub struct Args {
    /// The rules file (TOML).
    #[arg(long)]
    rules: String,
    /// Records as JSON lines; `-` (the default) reads standard input.
    #[arg(long, default_value = "-")]
    records: String,
    /// Engine state to start from (JSON, as written by --state-out).
    #[arg(long)]
    state: Option<String>,
    /// Write the engine state after the last record here.
    #[arg(long)]
    state_out: Option<String>,
    /// The decision time, RFC 3339; the current time when absent.
    #[arg(long)]
    now: Option<String>,
    /// Print the whole decision (candidates, distribution, warnings) per record.
    #[arg(long)]
    full: bool,
}

#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    object: allot_core::ObjectKind,
    owner: Option<&'a str>,
    previous_owner: Option<&'a str>,
    territory: Option<&'a str>,
    strategy: &'static str,
    changed: bool,
    explanation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'a Decision>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let rules = input::rules(&a.rules)?;
    let now = input::now(a.now.as_deref())?;
    let mut state: EngineState = match &a.state {
        Some(p) => serde_json::from_str(&input::read_to_string(p)?)
            .with_context(|| format!("{p}: not an engine state file"))?,
        None => EngineState::default(),
    };
    let reader = input::open(&a.records)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut bad = 0usize;
    for (n, line) in reader.lines().enumerate() {
        let line_no = n + 1;
        let line = line.with_context(|| format!("{}:{line_no}: cannot read", a.records))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                bad += 1;
                let msg = format!("{}:{line_no}: {e}", a.records);
                eprintln!("allot: {msg}");
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({ "line": line_no, "error": msg }),
                )?;
                out.write_all(b"\n")?;
                continue;
            }
        };
        let outcome = allot_rules::decide(&rules, &state, &record, now);
        state.apply(&outcome.ops);
        let d = &outcome.decision;
        let row = Line {
            id: &d.record_id,
            object: d.object,
            owner: d.owner.as_deref(),
            previous_owner: d.previous_owner.as_deref(),
            territory: d.territory.as_deref(),
            strategy: d.strategy.as_str(),
            changed: d.changed,
            explanation: d.explanation.join("; "),
            fallback_reason: d.fallback_reason.as_deref(),
            decision: a.full.then_some(d),
        };
        serde_json::to_writer(&mut out, &row)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if let Some(p) = &a.state_out {
        std::fs::write(p, serde_json::to_vec_pretty(&state)?)
            .with_context(|| format!("cannot write {p}"))?;
    }
    if bad > 0 {
        eprintln!("allot: {bad} malformed line(s) in {}", a.records);
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
