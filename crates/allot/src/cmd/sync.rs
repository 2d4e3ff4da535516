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
use allot_crm::Budgets;
use allot_rules::RuleSet;
use allot_services::backfill::{self, SyncPlan};
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
    /// Only records modified after this instant (RFC 3339). Without it, a
    /// run reads what changed since the object's last complete sync (less
    /// 5 minutes), or everything the first time.
    #[arg(long, value_parser = parse_since)]
    since: Option<i64>,
    /// Read everything, even where an incremental run would do.
    #[arg(long, conflicts_with = "since")]
    full: bool,
    /// Decide records whose routed fields changed, at the realignment rate
    /// (`rules.realign_rate_per_sec`); otherwise only store them.
    #[arg(long)]
    decide: bool,
    /// Folder holding default.toml (and <env>.toml).
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    #[arg(long)]
    env: Option<String>,
}

fn parse_since(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            format!("{text:?} is not an RFC 3339 instant ({e}), e.g. 2026-12-01T00:00:00Z")
        })
}

/// The (crm, object) pairs `a` asks for, or what is wrong with it.
fn targets(crm: Option<&str>, objects: &[String]) -> anyhow::Result<Vec<(Crm, ObjectKind)>> {
    backfill::targets(crm, objects).map_err(|e| match e.starts_with("nothing") {
        true => anyhow::anyhow!("{e}"),
        false => anyhow::anyhow!("--{e}"),
    })
}

pub fn run(a: Args, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let plan = SyncPlan {
        targets: targets(a.crm.as_deref(), &a.objects)?,
        since: a.since,
        full: a.full,
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
    let ctx = backfill::SyncCtx {
        clients,
        budgets,
        policy: ReadPolicy::from_writer(&cfg.writer),
        bulk_threshold: cfg.crm.salesforce.bulk_threshold,
    };
    let done = rt.block_on(backfill::sync(
        &mut pipeline,
        &ctx,
        &plan,
        cfg.rules.realign_rate_per_sec,
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
        let since = p
            .cursor
            .since
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| {
                format!(
                    ", modified since {}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
            .unwrap_or_else(|| ", the whole book".into());
        println!(
            "{} {}: {} records in {} pages{since}{}",
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
            (Some("dynamics"), objects(&[]), Err("--crm \"dynamics\"")),
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
