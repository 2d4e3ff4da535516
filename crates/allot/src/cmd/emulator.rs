//! `allot emulator`: the CRM emulator on its own, for demos and for testing
//! a deployment. Its change events go to allot's webhook endpoints (HubSpot
//! signed with signature v3, Salesforce CDC as JSON) and/or to Kafka topics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use allot_bus::{KafkaConfig, KafkaSink};
use allot_core::Crm;
use allot_emulator::{Emulator, EmulatorOptions, EventSink, Seed};
use tokio::net::TcpListener;
use tracing::{error, warn};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:7701")]
    listen: SocketAddr,
    /// Seed file (users, owners, leads, accounts, contacts, companies).
    #[arg(long, default_value = "config/emulator-seed.json")]
    seed: PathBuf,
    /// POST HubSpot webhook batches here (signed with the emulator's client secret).
    #[arg(long)]
    hubspot_webhook_url: Option<String>,
    /// POST Salesforce CDC events here (allot's /webhooks/salesforce).
    #[arg(long)]
    salesforce_cdc_url: Option<String>,
    /// Also produce change events to Kafka at this bootstrap address.
    #[arg(long)]
    kafka_bootstrap: Option<String>,
    #[arg(long, default_value = "crm.salesforce.cdc")]
    salesforce_topic: String,
    #[arg(long, default_value = "crm.hubspot.webhooks")]
    hubspot_topic: String,
    /// Emit a CREATE event for every seeded record at start.
    #[arg(long)]
    emit_seed_events: bool,
    /// Add N generated accounts, N leads and N contacts per CRM to the seed
    /// (owned by the seed's users, in countries the demo rules cover): a
    /// book to `allot sync`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    generate: u64,
    /// HubSpot calls allowed per rolling 10 s per token (100 Free/Starter,
    /// 190 Professional/Enterprise, more with the API limit increase).
    #[arg(long, default_value_t = EmulatorOptions::default().hubspot_rate_limit_per_10s)]
    hubspot_calls_per_10s: u64,
    /// HubSpot calls allowed per day per portal.
    #[arg(long, default_value_t = EmulatorOptions::default().hubspot_daily_limit)]
    hubspot_daily_limit: u64,
    /// Salesforce API requests allowed per day (`Sforce-Limit-Info` max).
    #[arg(long, default_value_t = EmulatorOptions::default().salesforce_daily_quota)]
    salesforce_daily_quota: u64,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(a))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(a: Args) -> anyhow::Result<()> {
    let mut seed = Seed::load(&a.seed).map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.generate > 0 {
        seed.generate(a.generate);
        println!(
            "generated {n} accounts, {n} leads and {n} contacts per CRM: Salesforce {} accounts, {} leads, {} contacts; HubSpot {} companies, {} contacts",
            seed.salesforce.accounts.len(),
            seed.salesforce.leads.len(),
            seed.salesforce.contacts.len(),
            seed.hubspot.companies.len(),
            seed.hubspot.contacts.len(),
            n = a.generate,
        );
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = EmulatorOptions {
        webhook_url: a.hubspot_webhook_url.clone(),
        emit_seed_events: a.emit_seed_events,
        events: EventSink::Channel(tx),
        hubspot_rate_limit_per_10s: a.hubspot_calls_per_10s,
        hubspot_daily_limit: a.hubspot_daily_limit,
        salesforce_daily_quota: a.salesforce_daily_quota,
        ..EmulatorOptions::default()
    };
    println!("CRM emulator: Salesforce client id {:?}, HubSpot private app token {:?}, HubSpot client secret {:?}", opts.salesforce_client_id, opts.hubspot_private_app_token.clone().unwrap_or_default(), opts.hubspot_client_secret);
    let listener = TcpListener::bind(a.listen).await?;
    println!("CRM emulator listening on http://{}  (/_emulator/owners, /_emulator/stats, /_emulator/faults)", listener.local_addr()?);
    let sink = match &a.kafka_bootstrap {
        Some(b) => Some(
            KafkaSink::new(&KafkaConfig::new(b, "allot-emulator"))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => None,
    };
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let cdc_url = a.salesforce_cdc_url.clone();
    let (sf_topic, hs_topic) = (a.salesforce_topic.clone(), a.hubspot_topic.clone());
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let Some(sink) = &sink {
                let topic = if ev.crm == Crm::Salesforce {
                    &sf_topic
                } else {
                    &hs_topic
                };
                if let Err(e) = sink.send(topic, ev.key.as_bytes(), &ev.body, &[]).await {
                    error!(error = %e, topic, "cannot produce a change event");
                }
            }
            if let (Crm::Salesforce, Some(url)) = (ev.crm, &cdc_url) {
                deliver(&http, url, &ev.body).await;
            }
        }
    });
    let emulator = Emulator::new(seed, opts);
    emulator
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Posts one change event to the CDC URL, in order: a failed delivery (allot
/// down or restarting) is tried again for up to a minute, as a CDC
/// subscriber catches up from its replay id, before it is given up.
async fn deliver(http: &reqwest::Client, url: &str, body: &[u8]) {
    for attempt in 0..120 {
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return,
            // Refused as bad input: another try changes nothing.
            Ok(r) if r.status().is_client_error() => {
                warn!(url, status = %r.status(), "salesforce cdc delivery refused");
                return;
            }
            _ if attempt == 0 => warn!(url, "salesforce cdc delivery failed; retrying"),
            _ => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    warn!(url, "salesforce cdc delivery given up after a minute");
}
