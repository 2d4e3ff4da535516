//! Starts the writer stage of `allot run`.

use std::future::Future;
use std::sync::Arc;

use allot_crm::CrmClient;
use allot_services::metrics::Metrics;
use allot_store::Store;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub fn spawn(
    _store: Arc<Store>,
    _clients: Vec<CrmClient>,
    _metrics: &Metrics,
    _wake: Arc<Notify>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(stop)
}
