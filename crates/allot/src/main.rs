//! The `allot` command: one binary for every mode and tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: allot moves millions of small records between threads (parse,
/// decide, count); glibc's allocator spends a third of the time there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cmd;
mod config;
mod input;
mod telemetry;

/// Real-time routing of CRM leads and accounts to the right sales rep.
#[derive(Parser)]
#[command(name = "allot", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a rules file; exit 0 when valid, 1 otherwise (diagnostics on stderr).
    Validate(cmd::validate::Args),
    /// Decide records (JSON lines) under a rules file and print each decision.
    Simulate(cmd::simulate::Args),
    /// Compare two rule sets over a set of records: moves and balance per territory and rep.
    Realign(cmd::realign::Args),
    /// Run every stage in one process over the embedded log (with the CRM emulator by default).
    Run(cmd::run::Args),
    /// Run one stage as its own process over Kafka (microservice mode).
    Serve(cmd::serve::Args),
    /// Feed a file of raw CRM events through ingest and assign (embedded store).
    Replay(cmd::replay::Args),
    /// Check, export or import the durable state.
    #[command(subcommand)]
    State(cmd::state::StateCmd),
    /// The built-in CRM emulator on its own (Salesforce and HubSpot wire formats).
    Emulator(cmd::emulator::Args),
    /// Load generator: CRM events through the embedded pipeline, figures printed.
    Loadgen(cmd::loadgen::Args),
    /// Read the CRM's whole book (records, owners, users) into the store; resumable.
    Sync(cmd::sync::Args),
    /// Compare each CRM record's owner with allot's last decision; --apply re-queues the owed writes.
    ///
    /// Reasons: agree; changed_by_person (changed after allot's decision and
    /// seen by allot: kept, as existing-owner protection keeps it); owed
    /// (allot's write missing or lost); pending and failed (the write is
    /// queued, or the writer gave up: `allot writes`); changed_unseen (allot
    /// kept the owner and wrote nothing, the CRM changed without an event
    /// reaching allot: left alone); undecided (never decided by allot).
    ///
    /// Like `allot sync` it opens the store, so run it while allot is
    /// stopped; the writes --apply re-queues are made when allot runs again.
    Reconcile(cmd::reconcile::Args),
    /// Decode raw CRM change events and print them as allot sees them.
    Decode(cmd::decode::Args),
    /// Generate deterministic synthetic rules or records (for benchmarks and drills).
    #[command(subcommand)]
    Gen(cmd::gen::Gen),
    /// Check the layered configuration and print what is in force.
    #[command(subcommand)]
    Config(cmd::config_check::ConfigCmd),
    /// Rule versions of a running allot: get, validate, push, dry-run, activate, roll back.
    Rules(cmd::admin::Rules),
    /// Why a record has its owner: its decisions with their explanations (from the API).
    Explain(cmd::admin::Explain),
    /// Reps of a running allot: availability, out of office, capacity, offboarding.
    Reps(cmd::admin::Reps),
    /// The admin audit of a running allot.
    Admin(cmd::admin::Admin),
    /// Failed owner writes of a running allot: list, retry (decided again), discard.
    Writes(cmd::writes::Writes),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(a) => cmd::validate::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Realign(a) => cmd::realign::run(a),
        Command::Gen(g) => cmd::gen::run(g),
        Command::Decode(a) => cmd::decode::run(a),
        Command::Sync(a) => cmd::sync::run(a, std::env::vars().collect()),
        Command::Reconcile(a) => cmd::reconcile::run(a, std::env::vars().collect()),
        Command::Replay(a) => cmd::replay::run(a, std::env::vars().collect()),
        Command::State(c) => cmd::state::run(c),
        Command::Emulator(a) => cmd::emulator::run(a),
        Command::Loadgen(a) => cmd::loadgen::run(a),
        Command::Run(a) => cmd::run::run(a, std::env::vars().collect()),
        Command::Serve(a) => cmd::serve::run(a, std::env::vars().collect()),
        Command::Config(c) => cmd::config_check::run(c, std::env::vars().collect()),
        Command::Rules(a) => cmd::admin::rules(a, std::env::vars().collect()),
        Command::Explain(a) => cmd::admin::explain(a, std::env::vars().collect()),
        Command::Reps(a) => cmd::admin::reps(a, std::env::vars().collect()),
        Command::Admin(a) => cmd::admin::admin(a, std::env::vars().collect()),
        Command::Writes(a) => cmd::writes::run(a, std::env::vars().collect()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("allot: {e:#}");
            ExitCode::from(1)
        }
    }
}
