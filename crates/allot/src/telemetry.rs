//! Logs: tracing, human-readable in development, JSON in production, with
//! the level from the configuration (or RUST_LOG when set).

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryCfg};

pub fn init(cfg: &TelemetryCfg) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{},sled=warn,hyper=warn,reqwest=warn", cfg.level))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
