//! `allot config check`: load the layered configuration the way `allot run`
//! and `allot serve` do, report every problem, print what is in force.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config;

#[derive(clap::Subcommand)]
pub enum ConfigCmd {
    /// Load default.toml, <env>.toml and ALLOT__… variables; exit 0 and print
    /// the effective configuration (secrets only as set/unset), or exit 1
    /// naming every bad key and every secret the selected CRM logins lack.
    Check(Args),
}

#[derive(clap::Args)]
pub struct Args {
    /// Folder holding default.toml (and <env>.toml).
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    /// Overlay config/<env>.toml (also ALLOT_ENV).
    #[arg(long)]
    env: Option<String>,
}

pub fn run(c: ConfigCmd, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let ConfigCmd::Check(a) = c;
    let env = a.env.or_else(|| vars.get("ALLOT_ENV").cloned());
    let (cfg, secrets) = config::load(&a.config_dir, env.as_deref(), &vars)?;
    // The secrets the selected CRM logins need, then whether the clients can
    // be built from them (a key that does not parse).
    let mut problems = cfg.crm_secret_problems(&secrets);
    if problems.is_empty() {
        if let Err(e) = crate::cmd::run::real_clients(&cfg, &secrets) {
            problems.push(format!("{e:#}"));
        }
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "configuration ({}): CRM credentials for crm.mode = \"{}\":\n  {}",
            a.config_dir.display(),
            format!("{:?}", cfg.crm.mode).to_lowercase(),
            problems.join("\n  ")
        );
    }
    let report = format!(
        "configuration ({}, env {}): valid\n{cfg:#?}\n{secrets:#?}\n",
        a.config_dir.display(),
        env.as_deref().unwrap_or("(none)")
    );
    std::io::stdout().lock().write_all(report.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
