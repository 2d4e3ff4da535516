use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{mpsc, Arc};

use allot_core::{EngineState, Record};
use allot_rules::realign::{Placement, Side, Tallies, Tally};
use anyhow::Context;

use crate::input;

#[derive(clap::Args)]
pub struct Args {
    /// The rules in force now (TOML).
    #[arg(long)]
    rules: String,
    /// The rules to compare with (TOML).
    #[arg(long)]
    to: String,
    /// Records as JSON lines; `-` reads standard input.
    #[arg(long)]
    records: String,
    /// Numeric field summed per rep for the balance figures.
    #[arg(long, default_value = "annual_revenue")]
    balance_field: String,
    /// Write every move as a JSON line to this file (`-` for standard output).
    #[arg(long)]
    moves: Option<String>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Rows per table (the largest movers first); 0 prints all.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// The decision time, RFC 3339; the current time when absent.
    #[arg(long)]
    now: Option<String>,
}

const BATCH: usize = 4096;

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let old = input::rules(&a.rules)?;
    let new = input::rules(&a.to)?;
    let now = input::now(a.now.as_deref())?;
    let reader = input::open(&a.records)?;
    let progress = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template(
            "{spinner} {human_pos} records {per_sec} {elapsed}",
        )?);
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut moves: Option<Box<dyn Write>> = match a.moves.as_deref() {
        None => None,
        Some("-") => Some(Box::new(BufWriter::new(std::io::stdout()))),
        Some(p) => Some(Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {p}"))?,
        ))),
    };
    // One thread parses, one decides under each rule set (their states are
    // independent), and this one counts: realignment is bound by decisions.
    type Batch = Arc<Vec<(usize, Result<Record, String>)>>;
    let (tx_main, rx_main) = mpsc::sync_channel::<Batch>(8);
    let (tx_old, rx_old) = mpsc::sync_channel::<Batch>(8);
    let (tx_new, rx_new) = mpsc::sync_channel::<Batch>(8);
    let source = a.records.clone();
    let parser = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(BATCH);
        let send = |b: Vec<_>| {
            let b: Batch = Arc::new(b);
            tx_old.send(b.clone()).is_ok()
                && tx_new.send(b.clone()).is_ok()
                && tx_main.send(b).is_ok()
        };
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("{source}:{}: cannot read", n + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            batch.push((
                n + 1,
                serde_json::from_str::<Record>(&line).map_err(|e| e.to_string()),
            ));
            if batch.len() == BATCH
                && !send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
            {
                return Ok(());
            }
        }
        send(batch);
        Ok(())
    });
    let mut tallies = Tallies::new(&old, &new, Some(a.balance_field.clone()));
    let mut bad = 0usize;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let side = |rules, rx: mpsc::Receiver<Batch>| {
            let (tx, out) = mpsc::sync_channel::<Vec<Placement>>(8);
            scope.spawn(move || {
                let mut side = Side::new(rules, EngineState::default(), now);
                for batch in rx {
                    let placed = batch
                        .iter()
                        .filter_map(|(_, r)| r.as_ref().ok())
                        .map(|r| side.place(r))
                        .collect();
                    if tx.send(placed).is_err() {
                        return;
                    }
                }
            });
            out
        };
        let (out_old, out_new) = (side(&old, rx_old), side(&new, rx_new));
        for batch in rx_main {
            let (Ok(before), Ok(after)) = (out_old.recv(), out_new.recv()) else {
                anyhow::bail!("a decision thread stopped early");
            };
            let mut placed = before.into_iter().zip(after);
            for (line, r) in batch.iter() {
                match r {
                    Ok(record) => {
                        let Some((x, y)) = placed.next() else {
                            anyhow::bail!("decision threads out of step")
                        };
                        if let (Some(m), Some(w)) = (tallies.add(record, x, y), moves.as_mut()) {
                            serde_json::to_writer(&mut *w, &m)?;
                            w.write_all(b"\n")?;
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        eprintln!("allot: {}:{line}: {e}", a.records);
                    }
                }
            }
            progress.inc(batch.len() as u64);
        }
        Ok(())
    })?;
    parser
        .join()
        .map_err(|_| anyhow::anyhow!("record reader panicked"))??;
    progress.finish_and_clear();
    if let Some(w) = moves.as_mut() {
        w.flush()?;
    }
    let report = tallies.finish();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "realign {} → {}: {} records, {} move ({:.1}%)",
            report.old_version,
            report.new_version,
            report.records,
            report.moved,
            100.0 * report.moved as f64 / report.records.max(1) as f64
        );
        print_table("territory", &report.territories, a.top);
        print_table("rep", &report.reps, a.top);
        println!(
            "balance per rep (coefficient of variation, lower is more even): records {:.3} → {:.3}, {} {:.3} → {:.3}",
            report.balance_before.cv_count, report.balance_after.cv_count, a.balance_field, report.balance_before.cv_sum, report.balance_after.cv_sum
        );
    }
    if bad > 0 {
        eprintln!("allot: {bad} malformed line(s) in {}", a.records);
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(what: &str, rows: &BTreeMap<String, Tally>, top: usize) {
    let mut rows: Vec<(&String, &Tally)> = rows.iter().collect();
    rows.sort_by(|a, b| {
        (b.1.moved_in + b.1.moved_out)
            .cmp(&(a.1.moved_in + a.1.moved_out))
            .then(a.0.cmp(b.0))
    });
    let shown = if top == 0 {
        rows.len()
    } else {
        top.min(rows.len())
    };
    let width = rows
        .iter()
        .take(shown)
        .map(|r| r.0.len())
        .max()
        .unwrap_or(0)
        .max(what.len());
    println!(
        "\n{what:<width$} {:>10} {:>10} {:>9} {:>9}",
        "before", "after", "in", "out"
    );
    for (k, t) in rows.iter().take(shown) {
        println!(
            "{k:<width$} {:>10} {:>10} {:>9} {:>9}",
            t.before, t.after, t.moved_in, t.moved_out
        );
    }
    if shown < rows.len() {
        println!("… {} more (--top 0 shows all)", rows.len() - shown);
    }
}
