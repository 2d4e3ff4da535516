//! `allot sync`: the CRM's whole book (records, owners, users) into the
//! store, resumable after a crash from its checkpoint, paced under the CRM
//! connection's request budget. Run it while allot is stopped (the store is
//! one process's); records wait for their next event or a realignment
//! unless `--decide` is given.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use allot_core::{Crm, ObjectKind};
use allot_rules::RuleSet;
use allot_services::backfill::{self, SyncPlan};
use allot_services::budget::Budgets;
use allot_services::hydrate::Hydrator;
use allot_services::metrics::Metrics;
use allot_services::pipeline::{FieldMaps, Pipeline};
use allot_services::reader::ReadPolicy;
use allot_store::Store;
use anyhow::Context;

use crate::{config, input};

#[derive(clap::Args)]
pub struct Args {
    /// salesforce or hubspot (both when absent).
    #[arg(long)]
    crm: Option<String>,
    /// Comma-separated: account, lead, contact (every object the CRM has when absent).
    #[arg(long, value_delimiter = ',')]
    objects: Vec<String>,
    /// Decide records whose routed fields changed (otherwise only store them).
    #[arg(long)]
    decide: bool,
    /// Folder holding default.toml (and <env>.toml).
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    #[arg(long)]
    env: Option<String>,
}

/// The (crm, object) pairs `a` asks for, or what is wrong with it.
fn targets(crm: Option<&str>, objects: &[String]) -> anyhow::Result<Vec<(Crm, ObjectKind)>> {
    let crms = match crm {
        None => vec![Crm::Salesforce, Crm::Hubspot],
        Some("salesforce") => vec![Crm::Salesforce],
        Some("hubspot") => vec![Crm::Hubspot],
        Some(other) => anyhow::bail!("--crm {other}: expected salesforce or hubspot"),
    };
    let wanted: Vec<ObjectKind> = objects
        .iter()
        .map(|o| {
            ObjectKind::parse(o)
                .ok_or_else(|| anyhow::anyhow!("--objects {o}: expected account, lead or contact"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut out = Vec::new();
    for crm in crms {
        for &object in backfill::objects_of(crm) {
            if wanted.is_empty() || wanted.contains(&object) {
                out.push((crm, object));
            }
        }
    }
    if out.is_empty() {
        anyhow::bail!("nothing to sync: {:?} on {crm:?}", objects);
    }
    Ok(out)
}

pub fn run(a: Args, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let plan = SyncPlan {
        targets: targets(a.crm.as_deref(), &a.objects)?,
        decide: a.decide,
    };
    let env = a.env.clone().or_else(|| vars.get("ALLOT_ENV").cloned());
    let (cfg, secrets) = config::load(&a.config_dir, env.as_deref(), &vars)?;
    std::fs::create_dir_all(&cfg.store.path)
        .with_context(|| format!("cannot create {}", cfg.store.path.display()))?;
    let store = Arc::new(Store::open(&cfg.store.path).map_err(|e| {
        anyhow::anyhow!("{e} (is allot running on this store? sync while it is stopped)")
    })?);
    let origin = cfg.rules.path.display().to_string();
    let rules = Arc::new(
        RuleSet::from_toml(&input::read_to_string(&origin)?, &origin)
            .map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))?,
    );
    let clients = crate::cmd::serve::clients(&cfg, &secrets)?;
    let budgets = Budgets::new(&clients, &cfg.writer);
    let mut pipeline = Pipeline::new(
        store,
        rules,
        FieldMaps::default(),
        cfg.echo(),
        Hydrator::Off,
        Metrics::new(),
    )?;
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        b
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let done = rt.block_on(backfill::sync(
        &mut pipeline,
        &clients,
        &budgets,
        &ReadPolicy::from_writer(&cfg.writer),
        &plan,
        |p| {
            let line = format!(
                "{} {}: {} records, {} pages{}",
                p.crm,
                p.object,
                p.cursor.records,
                p.cursor.pages,
                if p.resumed { " (resumed)" } else { "" }
            );
            match &bar {
                Some(b) => b.set_message(line),
                None if p.cursor.done || p.cursor.pages % 10 == 0 => {
                    eprintln!("allot: sync {line}")
                }
                None => {}
            }
        },
    ))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let total: u64 = done.iter().map(|p| p.cursor.records).sum();
    for p in &done {
        println!(
            "{} {}: {} records in {} pages{}",
            p.crm,
            p.object,
            p.cursor.records,
            p.cursor.pages,
            if p.resumed {
                " (resumed from a checkpoint)"
            } else {
                ""
            }
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "synced {total} records in {secs:.1} s ({:.0} records/s){}",
        total as f64 / secs.max(0.001),
        if a.decide {
            "; changed records decided"
        } else {
            "; nothing decided"
        }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_flags() {
        let objects = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        type Case<'a> = (Option<&'a str>, Vec<String>, Result<usize, &'a str>);
        let cases: [Case; 4] = [
            (None, objects(&[]), Ok(5)),
            (Some("hubspot"), objects(&["lead"]), Err("nothing to sync")),
            (Some("salesforce"), objects(&["lead", "account"]), Ok(2)),
            (Some("dynamics"), objects(&[]), Err("--crm dynamics")),
        ];
        for (crm, objects, want) in cases {
            let got = targets(crm, &objects)
                .map(|t| t.len())
                .map_err(|e| e.to_string());
            match want {
                Ok(n) => assert_eq!(got.ok(), Some(n), "{crm:?} {objects:?}"),
                Err(msg) => assert!(got.is_err_and(|e| e.contains(msg)), "{crm:?} {objects:?}"),
            }
        }
    }
}
