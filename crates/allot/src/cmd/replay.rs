//! `allot replay FILE`: raw CRM events from a file (JSON lines, one JSON
//! array, or one pretty-printed JSON object) into the embedded log, then
//! processed like live traffic: decided, audited, owner changes queued for the
//! writer. A bad line (or array element) is reported as `file:line:column`
//! and dead-lettered; the rest go on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use allot_events::{decode_file, layout, Format};
use allot_rules::RuleSet;
use allot_services::embedded::EmbeddedIngest;
use allot_services::metrics::Metrics;
use allot_services::raw::{RawEntry, RAW_LOG};
use allot_store::Store;
use anyhow::Context;

use crate::{config, input};

#[derive(clap::Args)]
pub struct Args {
    /// Raw events: JSON lines, one JSON array, or one (pretty-printed) JSON
    /// object; `-` reads standard input.
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
    // Report bad lines (elements) up front, with where they are.
    let decoded = decode_file(&text, a.format);
    let mut bad = 0usize;
    for entry in &decoded.entries {
        if let Some(msg) = input::entry_error(&a.file, &decoded, entry) {
            bad += 1;
            eprintln!("allot: {msg}");
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
    // One log entry per line, per element of the file's array, or the object.
    let entries: Vec<(usize, &str)> = layout(&text)
        .pieces
        .into_iter()
        .map(|p| (p.line, &text[p.range]))
        .collect();
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
        input::shape_note(&a.file, &decoded)
    );
    Ok(ExitCode::from(if bad > 0 || dead > 0 { 2 } else { 0 }))
}
