//! The writer task of `allot run` and `allot serve write`. A change the CRM
//! refuses for an inactive owner goes to the store's re-route log in the
//! commit that records its failure; the decider takes it up from there
//! (`allot run`) or the write stage forwards it to the events topic
//! (`allot serve write`), and the engine decides the record again.

use std::future::Future;
use std::sync::Arc;

use allot_crm::{Budgets, CrmClient};
use allot_services::metrics::Metrics;
use allot_store::Store;
use allot_writer::{Writer, WriterConfig, WriterMetrics};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::error;

pub fn spawn(
    store: Arc<Store>,
    clients: Vec<CrmClient>,
    mut config: WriterConfig,
    metrics: &Metrics,
    budgets: &Budgets,
    wake: Arc<Notify>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let writer_metrics = WriterMetrics::unprefixed();
    writer_metrics
        .register(&metrics.registry)
        .map_err(|e| anyhow::anyhow!("writer metrics: {e}"))?;
    config.reroute_log = Some(allot_services::raw::REROUTE_LOG.to_string());
    let writer = Writer::new(store, clients, config, writer_metrics)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .share_budgets(budgets);
    Ok(tokio::spawn(async move {
        if let Err(e) = writer.run(wake, stop).await {
            error!(error = %e, "writer stopped");
        }
    }))
}
