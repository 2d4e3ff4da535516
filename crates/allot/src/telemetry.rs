//! Logs and traces. Logs: tracing, human-readable in development, JSON in
//! production, with the level from the configuration (or RUST_LOG when set).
//! Traces: OpenTelemetry over OTLP/HTTP when `telemetry.otlp_endpoint` is
//! set (off by default), with W3C trace context propagation, so the spans
//! each stage opens per event join the trace the event's messages carry.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryCfg};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Logs (and traces when configured) for a process named `allot`.
pub fn init(cfg: &TelemetryCfg) {
    init_for(cfg, "allot");
}

/// Logs, and traces exported as `service` (e.g. `allot-assign`).
pub fn init_for(cfg: &TelemetryCfg, service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},sled=warn,hyper=warn,reqwest=warn,opentelemetry=warn",
            cfg.level
        ))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let logs = match cfg.log_format {
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Pretty => fmt.compact().with_filter(filter).boxed(),
    };
    let (traces, problem) = match otlp(cfg, service) {
        Ok(Some(provider)) => {
            // Spans are exported whatever the log level: the per-event
            // spans of allot's stages, not the libraries' internals.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("allot"))
                .with_filter(
                    Targets::new()
                        .with_target("allot_services", Level::INFO)
                        .with_target("allot", Level::INFO),
                )
                .boxed();
            let _ = PROVIDER.set(provider);
            (Some(layer), None)
        }
        Ok(None) => (None, None),
        Err(e) => (None, Some(e)),
    };
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    if let Some(e) = problem {
        tracing::error!(endpoint = %cfg.otlp_endpoint, error = %e, "traces are not exported");
    } else if PROVIDER.get().is_some() {
        tracing::info!(endpoint = %cfg.otlp_endpoint, service, "exporting traces over OTLP");
    }
}

fn otlp(cfg: &TelemetryCfg, service: &str) -> anyhow::Result<Option<SdkTracerProvider>> {
    let endpoint = cfg.otlp_endpoint.trim().trim_end_matches('/');
    if endpoint.is_empty() {
        return Ok(None);
    }
    let protocol = match cfg.otlp_protocol.as_str() {
        "" | "http/protobuf" => Protocol::HttpBinary,
        "http/json" => Protocol::HttpJson,
        other => anyhow::bail!(
            "telemetry.otlp_protocol = {other:?}: expected \"http/protobuf\" or \"http/json\""
        ),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(Some(provider))
}

/// Exports the spans still buffered; call before the process exits.
pub fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        if let Err(e) = p.shutdown() {
            eprintln!("allot: flushing traces: {e}");
        }
    }
}
