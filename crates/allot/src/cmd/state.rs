//! `allot state check | export | import`: look after the durable state.
//!
//! Export writes JSON lines, one item each (`{"kind":"record",...}`), that
//! import reads back into an empty store: records with their order keys, the
//! engine state, source positions, rule versions, pending owner changes and
//! the audit trail. It is also the way out of a corrupt store: export what
//! still reads, import into a fresh one.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use allot_core::{Decision, EngineState, OwnerChange, Record, StateOp};
use allot_store::{OrderKey, Position, Store};
use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::input;

#[derive(clap::Subcommand)]
pub enum StateCmd {
    /// Read every table, verify every checksum, report counts and damage (exit 1 if any).
    Check(Dir),
    /// Write the whole state as JSON lines to standard output (or --out).
    Export {
        #[command(flatten)]
        dir: Dir,
        #[arg(long)]
        out: Option<String>,
    },
    /// Read JSON lines written by export into an empty store.
    Import {
        #[command(flatten)]
        dir: Dir,
        /// The export file; `-` reads standard input.
        file: String,
    },
}

#[derive(clap::Args)]
pub struct Dir {
    /// The store directory (the `store.path` of the configuration).
    #[arg(long, default_value = "data/allot")]
    store: PathBuf,
}

/// One exported item.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Item {
    Record {
        record: Record,
        applied: Option<OrderKey>,
    },
    EngineState {
        state: EngineState,
    },
    Position {
        source: String,
        position: Position,
    },
    RuleVersion {
        version_id: String,
        toml: String,
        effective_at: i64,
        activated_by: Option<String>,
    },
    Outbox {
        change: OwnerChange,
    },
    Decision {
        decision: Decision,
    },
    /// Rep overrides, stored dry-runs and job progress (the admin API's).
    AdminDoc {
        doc: String,
        name: String,
        value: serde_json::Value,
    },
    /// Who changed what through the admin API.
    AdminAudit {
        entry: allot_store::AdminAuditEntry,
    },
}

fn open(dir: &Dir) -> anyhow::Result<Store> {
    Store::open(&dir.store).map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn run(cmd: StateCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        StateCmd::Check(dir) => {
            let store = open(&dir)?;
            let report = store.check().map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{report}");
            if let Ok(bytes) = store.size_on_disk() {
                println!(
                    "size on disk: {bytes} bytes ({:.1} MiB)",
                    bytes as f64 / 1_048_576.0
                );
            }
            Ok(ExitCode::from(u8::from(!report.is_clean())))
        }
        StateCmd::Export { dir, out } => export(&open(&dir)?, out.as_deref()),
        StateCmd::Import { dir, file } => import(&dir, &file),
    }
}

fn export(store: &Store, out: Option<&str>) -> anyhow::Result<ExitCode> {
    let sink: Box<dyn Write> = match out {
        None | Some("-") => Box::new(std::io::stdout()),
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("cannot create {p}"))?)
        }
    };
    let mut w = BufWriter::new(sink);
    let mut n = 0u64;
    let mut put = |w: &mut BufWriter<Box<dyn Write>>, item: Item| -> anyhow::Result<()> {
        serde_json::to_writer(&mut *w, &item)?;
        w.write_all(b"\n")?;
        n += 1;
        Ok(())
    };
    let e = |e: allot_store::StoreError| anyhow::anyhow!("{e}");
    for r in store.records() {
        let (record, applied) = r.map_err(e)?;
        put(&mut w, Item::Record { record, applied })?;
    }
    put(
        &mut w,
        Item::EngineState {
            state: store.engine_state().map_err(e)?,
        },
    )?;
    for (source, position) in store.positions().map_err(e)? {
        put(&mut w, Item::Position { source, position })?;
    }
    for v in store.rule_versions().map_err(e)? {
        put(
            &mut w,
            Item::RuleVersion {
                version_id: v.version_id,
                toml: v.toml,
                effective_at: v.effective_at,
                activated_by: v.activated_by,
            },
        )?;
    }
    for entry in store.outbox_pending(usize::MAX).map_err(e)? {
        put(
            &mut w,
            Item::Outbox {
                change: entry.change,
            },
        )?;
    }
    for doc in [
        allot_store::OVERRIDE,
        allot_store::DRY_RUN,
        allot_store::JOB,
    ] {
        for (name, value) in store.admin_all::<serde_json::Value>(doc).map_err(e)? {
            put(
                &mut w,
                Item::AdminDoc {
                    doc: doc.to_string(),
                    name,
                    value,
                },
            )?;
        }
    }
    let mut admin_audit = store.admin_audit(usize::MAX).map_err(e)?;
    admin_audit.reverse();
    for entry in admin_audit {
        put(&mut w, Item::AdminAudit { entry })?;
    }
    let mut audit = store.recent_audit(usize::MAX).map_err(e)?;
    audit.reverse();
    for decision in audit {
        put(&mut w, Item::Decision { decision })?;
    }
    w.flush()?;
    eprintln!("allot: exported {n} item(s)");
    Ok(ExitCode::SUCCESS)
}

/// The ops that rebuild `state` from nothing.
fn ops_of(state: &EngineState) -> Vec<StateOp> {
    let mut ops: Vec<StateOp> = state
        .cursors
        .iter()
        .map(|(team, cursor)| StateOp::SetCursor {
            team: team.clone(),
            cursor: cursor.clone(),
        })
        .collect();
    ops.extend(state.open.iter().map(|(rep, n)| StateOp::OpenDelta {
        rep: rep.clone(),
        delta: *n,
    }));
    for (rep, d) in &state.daily {
        ops.extend((0..d.count).map(|_| StateOp::DailyInc {
            rep: rep.clone(),
            day: d.day,
        }));
    }
    for (domain, accounts) in &state.accounts_by_domain {
        ops.extend(accounts.iter().map(|a| StateOp::UpsertAccount {
            domain: domain.clone(),
            account: a.clone(),
        }));
    }
    ops
}

fn import(dir: &Dir, file: &str) -> anyhow::Result<ExitCode> {
    let store = open(dir)?;
    if store.record_count().map_err(|e| anyhow::anyhow!("{e}"))? > 0 {
        anyhow::bail!(
            "{}: the store is not empty; import into a new directory",
            dir.store.display()
        );
    }
    let (mut n, mut bad) = (0u64, 0u64);
    let mut batch = store.batch();
    for (i, line) in input::open(file)?.lines().enumerate() {
        let line = line.with_context(|| format!("{file}:{}: cannot read", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let item: Item = match serde_json::from_str(&line) {
            Ok(it) => it,
            Err(e) => {
                bad += 1;
                eprintln!("allot: {file}:{}: {e}", i + 1);
                continue;
            }
        };
        match &item {
            Item::Record { record, applied } => batch.put_record(record, *applied),
            Item::EngineState { state } => batch.apply_state_ops(&ops_of(state)),
            Item::Position { source, position } => batch.set_position(source, position.clone()),
            Item::RuleVersion {
                version_id,
                toml,
                effective_at,
                activated_by,
            } => batch.put_rule_version(version_id, toml, *effective_at, activated_by.as_deref()),
            Item::Outbox { change } => batch.outbox_put(change),
            Item::Decision { decision } => batch.append_audit(decision),
            Item::AdminDoc { doc, name, value } => batch.admin_put(doc, name, value.clone()),
            Item::AdminAudit { entry } => {
                store
                    .append_admin_audit(entry)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                &mut batch
            }
        };
        n += 1;
        if batch.len() >= 5_000 {
            store
                .commit(std::mem::replace(&mut batch, store.batch()))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    store.commit(batch).map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "allot: imported {n} item(s) into {}, {bad} bad line(s)",
        dir.store.display()
    );
    Ok(ExitCode::from(if bad > 0 { 2 } else { 0 }))
}
