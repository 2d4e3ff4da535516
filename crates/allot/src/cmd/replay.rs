//! `allot replay FILE`: raw CRM events from a file (JSON lines or one JSON
//! array) into the embedded log, then processed like live traffic: decided,
//! audited, owner changes queued for the writer. A bad line is reported with
//! its line number and dead-lettered; the rest go on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use allot_events::{decode_lines, Format};
use allot_rules::RuleSet;
use allot_services::embedded::EmbeddedIngest;
use allot_services::metrics::Metrics;
use allot_services::raw::{RawEntry, RAW_LOG};
use allot_store::Store;
use anyhow::Context;

use crate::{config, input};

#[derive(clap::Args)]
pub struct Args {
    /// Raw events: JSON lines, or one JSON array; `-` reads standard input.
    file: String,
    /// auto, salesforce, hubspot or native.
    #[arg(long, default_value = "auto")]
    format: Format,
    /// Folder holding default.toml (and <env>.toml): store path and rules.
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    #[arg(long)]
    env: Option<String>,
}

pub fn run(a: Args, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let env = a.env.clone().or_else(|| vars.get("ALLOT_ENV").cloned());
    let (cfg, _) = config::load(&a.config_dir, env.as_deref(), &vars)?;
    let text = input::read_to_string(&a.file)?;
    // Report bad lines up front, with their line numbers.
    let mut bad = 0usize;
    for (line, r) in decode_lines(&text, a.format) {
        if let Err(e) = r {
            bad += 1;
            eprintln!("allot: {}:{line}: {e}", a.file);
        }
    }
    std::fs::create_dir_all(&cfg.store.path)
        .with_context(|| format!("cannot create {}", cfg.store.path.display()))?;
    let store = Arc::new(Store::open(&cfg.store.path).map_err(|e| anyhow::anyhow!("{e}"))?);
    let rules_text = input::read_to_string(&cfg.rules.path.display().to_string())?;
    let rules = Arc::new(
        RuleSet::from_toml(&rules_text, &cfg.rules.path.display().to_string())
            .map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))?,
    );
    let now = allot_services::now_ms();
    let entries = split(&text);
    let log = store.log(RAW_LOG);
    let payloads: Vec<Vec<u8>> = entries
        .iter()
        .map(|(line, body)| {
            let e = RawEntry {
                v: 1,
                format: a.format.to_string(),
                source: format!("replay:{}:{line}", a.file),
                received_at: now,
                body: body.to_string(),
            };
            serde_json::to_vec(&e)
        })
        .collect::<Result<_, _>>()?;
    log.append_batch(&payloads)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut ingest = EmbeddedIngest::offline(
        store.clone(),
        rules,
        cfg.echo(),
        Metrics::new(),
        cfg.ingest.max_chunk,
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let total = rt.block_on(ingest.drain())?;
    let (events, decisions, changes, dead) =
        (total.events, total.decisions, total.changes, total.dead);
    store.flush().map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "allot: replayed {} entr{} from {}: {events} event(s), {decisions} decision(s), {changes} owner change(s) queued, {dead} dead-lettered",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" },
        a.file
    );
    Ok(ExitCode::from(if bad > 0 || dead > 0 { 2 } else { 0 }))
}

/// `(line, text)` per log entry: each line, or the whole text when it is one
/// JSON array spread over several lines.
fn split(text: &str) -> Vec<(usize, &str)> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if first.starts_with('[') && serde_json::from_str::<serde::de::IgnoredAny>(first).is_err() {
        return vec![(1, text)];
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect()
}
