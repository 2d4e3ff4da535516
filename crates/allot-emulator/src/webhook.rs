//! Delivery of HubSpot webhook batches to a configured URL, signed as HubSpot
//! signs them (`X-HubSpot-Signature-v3`).

use std::sync::atomic::Ordering;

use allot_events::hubspot_signature::{hubspot_signature_v3, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::state::{now_ms, Webhook};

/// POSTs one batch in the background; one attempt, counted as delivered on a
/// 2xx answer. Outside a tokio runtime the batch is only counted as failed.
pub(crate) fn post(webhook: &Webhook, body: Vec<u8>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        webhook.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let timestamp = u64::try_from(now_ms()).unwrap_or_default();
    let signature = hubspot_signature_v3(&webhook.secret, "POST", &webhook.url, &body, timestamp);
    let request = webhook
        .client
        .post(&webhook.url)
        .header("Content-Type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .body(body);
    let delivered = webhook.delivered.clone();
    let failed = webhook.failed.clone();
    let url = webhook.url.clone();
    runtime.spawn(async move {
        match request.send().await {
            Ok(r) if r.status().is_success() => {
                delivered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => {
                failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%url, status = r.status().as_u16(), "webhook delivery refused");
            }
            Err(e) => {
                failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%url, error = %e, "webhook delivery failed");
            }
        }
    });
}
