//! The writer stage of `allot run`, and the re-routing of changes the CRM
//! refused because the owner is inactive there.

use std::future::Future;
use std::sync::Arc;

use allot_core::{OwnerChange, Strategy};
use allot_crm::{Budgets, CrmClient};
use allot_rules::{Owner, RuleSet};
use allot_services::metrics::Metrics;
use allot_store::Store;
use allot_writer::{Writer, WriterConfig, WriterMetrics};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tracing::{error, warn};

#[allow(clippy::too_many_arguments)] // wiring: each is a distinct part the writer is handed
pub fn spawn(
    store: Arc<Store>,
    clients: Vec<CrmClient>,
    rules: Arc<RuleSet>,
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
    let (tx, mut rx) = mpsc::unbounded_channel::<OwnerChange>();
    config.reroute = Some(tx);
    let writer = Writer::new(store.clone(), clients, config, writer_metrics)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .share_budgets(budgets);
    // Inactive in the CRM: the territory's fallback (up the tree), then the global one.
    let reroute_wake = wake.clone();
    tokio::spawn(async move {
        while let Some(refused) = rx.recv().await {
            match fallback_for(&rules, &refused) {
                Some(owner) => {
                    let change = OwnerChange {
                        owner,
                        previous_owner: refused.previous_owner.clone(),
                        decided_at: allot_services::now_ms(),
                        strategy: Strategy::Fallback,
                        ..refused.clone()
                    };
                    warn!(record_id = %refused.record_id, refused_owner = %refused.owner, owner = %change.owner, "owner inactive in the crm; re-routed to the fallback");
                    if let Err(e) = store.outbox_put(&change) {
                        error!(record_id = %refused.record_id, error = %e, "cannot queue the re-routed change");
                    }
                    reroute_wake.notify_one();
                }
                None => {
                    warn!(record_id = %refused.record_id, owner = %refused.owner, "owner inactive in the crm and no fallback rep: left as failed")
                }
            }
        }
    });
    Ok(tokio::spawn(async move {
        if let Err(e) = writer.run(wake, stop).await {
            error!(error = %e, "writer stopped");
        }
    }))
}

/// The first fallback rep of the change's territory chain, else the global fallback rep.
fn fallback_for(rules: &RuleSet, change: &OwnerChange) -> Option<String> {
    let mut chain = Vec::new();
    let mut cur = change.territory.as_deref().and_then(|t| rules.territory(t));
    while let Some(t) = cur {
        chain.extend(t.fallback.clone());
        cur = t.parent.map(|p| &rules.territories[p]);
    }
    chain.extend(rules.fallback.clone());
    chain.into_iter().find_map(|o| match o {
        Owner::Rep(r) if r != change.owner => Some(r),
        _ => None,
    })
}
