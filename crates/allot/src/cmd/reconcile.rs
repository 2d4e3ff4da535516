//! `allot reconcile`: each CRM record's owner against allot's last decision
//! for it, counted and shown by reason (see `allot_services::reconcile`);
//! `--apply` re-queues the writes allot owes. It opens the store, so run it
//! while allot is stopped (the store is one process's); the writes it
//! queues are made when allot runs again.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use allot_crm::Budgets;
use allot_services::backfill;
use allot_services::reader::ReadPolicy;
use allot_services::reconcile::{self, Plan, Reason, Report};
use allot_store::Store;
use anyhow::Context;
use serde_json::json;

use super::remote::{table, time};
use crate::config;

#[derive(clap::Args)]
pub struct Args {
    /// salesforce or hubspot (both when absent).
    #[arg(long)]
    crm: Option<String>,
    /// Comma-separated: account, lead, contact (every object the CRM has when absent).
    #[arg(long, value_delimiter = ',')]
    objects: Vec<String>,
    /// Re-queue the writes allot owes (through the outbox the writer drains).
    #[arg(long)]
    apply: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Examples shown per reason and object.
    #[arg(long, default_value_t = 5)]
    examples: usize,
    /// Folder holding default.toml (and <env>.toml).
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    #[arg(long)]
    env: Option<String>,
}

pub fn run(a: Args, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let targets = backfill::targets(a.crm.as_deref(), &a.objects).map_err(|e| {
        anyhow::anyhow!("--{}", e.replace("nothing to sync", "nothing to reconcile"))
    })?;
    let env = a.env.clone().or_else(|| vars.get("ALLOT_ENV").cloned());
    let (cfg, secrets) = config::load(&a.config_dir, env.as_deref(), &vars)?;
    if !cfg.store.path.exists() {
        anyhow::bail!(
            "no store at {} (store.path): nothing decided to reconcile against",
            cfg.store.path.display()
        );
    }
    let store = Arc::new(Store::open(&cfg.store.path).map_err(|e| {
        anyhow::anyhow!(
            "{e} (is allot running on the store {}? reconcile while it is stopped)",
            cfg.store.path.display()
        )
    })?);
    let clients = crate::cmd::serve::clients(&cfg, &secrets)?;
    let budgets = Budgets::new(&clients, &cfg.writer);
    let plan = Plan {
        targets,
        examples: a.examples,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        b
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt
        .block_on(reconcile::reconcile(
            &store,
            &clients,
            &budgets,
            &ReadPolicy::from_writer(&cfg.writer),
            &plan,
            |crm, object, n| {
                if let Some(b) = &bar {
                    b.set_message(format!("{crm} {object}: {n} records read"));
                }
            },
        ))
        .context("reconcile")?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let requeued = if a.apply {
        let n = reconcile::requeue(&store, &report.owed, allot_services::now_ms())
            .context("re-queueing the owed writes")?;
        store.flush().context("flushing the store")?;
        Some(n)
    } else {
        None
    };
    if a.json {
        let mut v = json!(report);
        v["owed"] = json!(report.owed.len());
        v["requeued"] = json!(requeued);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_report(&report);
        match requeued {
            Some(n) => println!(
                "re-queued {n} owed write{}: allot makes {} when it runs again",
                if n == 1 { "" } else { "s" },
                if n == 1 { "it" } else { "them" }
            ),
            None if !report.owed.is_empty() => println!(
                "{} owed write{}: `allot reconcile --apply` re-queues them",
                report.owed.len(),
                if report.owed.len() == 1 { "" } else { "s" }
            ),
            None => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &Report) {
    let mut rows = Vec::new();
    for o in &report.objects {
        let name = match (o.crm, o.object) {
            (Some(c), Some(k)) => format!("{c} {k}"),
            _ => "-".into(),
        };
        let mut row = vec![name, o.records.to_string()];
        row.extend(
            Reason::ALL
                .iter()
                .map(|r| o.counts.get(r).copied().unwrap_or(0).to_string()),
        );
        rows.push(row);
    }
    let mut headers = vec!["object", "records"];
    headers.extend(Reason::ALL.iter().map(|r| r.as_str()));
    table(&headers, &rows);
    let examples: Vec<Vec<String>> = report
        .objects
        .iter()
        .flat_map(|o| o.examples.values().flatten())
        .map(|f| {
            let owner = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            vec![
                f.reason.as_str().to_string(),
                format!("{} {}", f.crm, f.object),
                f.id.clone(),
                owner(&f.crm_owner),
                owner(&f.allot_owner),
                owner(&f.store_owner),
                time(&json!(f.decided_at)),
            ]
        })
        .collect();
    if !examples.is_empty() {
        println!();
        table(
            &[
                "reason",
                "object",
                "id",
                "crm owner",
                "allot owner",
                "store owner",
                "decided at",
            ],
            &examples,
        );
    }
    println!();
    for r in Reason::ALL {
        println!("  {:<17} {}", r.as_str(), r.meaning());
    }
}
