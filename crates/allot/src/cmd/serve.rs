//! `allot serve STAGE`: one stage of the pipeline as its own process over Kafka.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// A stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Raw CRM events → decoded, deduplicated change events on `allot.events`.
    Ingest,
    /// Change events → merged records, decisions on `allot.decisions`, audit.
    Assign,
    /// Decisions → owner writes to the CRM.
    Write,
    /// Admin API, dashboard and metrics over the decisions.
    Api,
}

#[derive(clap::Args)]
pub struct Args {
    /// Which stage this process runs.
    #[arg(value_enum)]
    stage: Stage,
    /// Folder holding default.toml (and <env>.toml).
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    /// Overlay config/<env>.toml (also ALLOT_ENV).
    #[arg(long)]
    env: Option<String>,
}

pub fn run(a: Args, _vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("allot serve {:?} is not available yet ({})", a.stage, a.config_dir.display())
}
