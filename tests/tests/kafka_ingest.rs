//! Ingest from a real Kafka-protocol broker started on loopback: raw CRM
//! events produced by a client are decided once each; a consumer killed
//! mid-stream and restarted resumes without loss and its redeliveries are
//! deduped; a poison message goes to the dead-letter topic with its reason
//! while the messages behind it are processed.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_bus::{KafkaConfig, KafkaSink, KafkaSource};
use allot_events::Format;
use allot_rules::RuleSet;
use allot_services::hydrate::Hydrator;
use allot_services::kafka::KafkaIngest;
use allot_services::metrics::Metrics;
use allot_services::pipeline::{EchoConfig, FieldMaps, Pipeline};
use allot_store::Store;
use allot_tests::{unique, Broker};
use tokio::sync::Notify;

const RULES: &str = include_str!("../../config/rules.example.toml");
const LEADS: usize = 60;

fn lead_id(i: usize) -> String {
    format!("00Q5f00000K{i:05}AAA")
}

fn cdc(i: usize) -> String {
    let countries = ["US", "Germany", "Canada", "France", "United States"];
    format!(
        r#"{{"schema":"s","payload":{{"ChangeEventHeader":{{"entityName":"Lead","recordIds":["{id}"],"changeType":"CREATE","changeOrigin":"com/salesforce/api/rest/62.0;client=web","transactionKey":"t{i}","sequenceNumber":1,"commitTimestamp":{ts},"commitNumber":{i},"commitUser":"005x","changedFields":[]}},"Address":{{"Country":"{c}","State":"CA"}},"Email":"p{i}@firm{i}.example"}},"event":{{"replayId":{replay}}},"channel":"/data/LeadChangeEvent"}}"#,
        id = lead_id(i),
        ts = 1_714_000_000_000u64 + i as u64,
        c = countries[i % countries.len()],
        replay = 5_000 + i,
    )
}

fn kafka(bootstrap: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        session_timeout_ms: 6_000,
        heartbeat_interval_ms: 1_000,
        max_in_flight_per_partition: 50,
        commit_interval_ms: 200,
        ..KafkaConfig::new(bootstrap, group)
    }
}

fn ingest(
    store: Arc<Store>,
    bootstrap: &str,
    group: &str,
    topic: &str,
    dlq: &str,
    metrics: Metrics,
) -> KafkaIngest {
    let rules = Arc::new(RuleSet::from_toml(RULES, "rules").unwrap());
    let echo = EchoConfig::new("allot", None);
    let pipeline = Pipeline::new(
        store.clone(),
        rules,
        FieldMaps::default(),
        echo,
        Hydrator::Off,
        metrics,
    )
    .unwrap();
    KafkaIngest {
        store,
        pipeline,
        source: KafkaSource::subscribe(&kafka(bootstrap, group), &[topic]).unwrap(),
        sink: KafkaSink::new(&kafka(bootstrap, group)).unwrap(),
        dlq_topic: dlq.to_string(),
        formats: HashMap::from([(topic.to_string(), Format::SalesforceCdc)]),
        max_chunk: 8,
        linger: Duration::from_millis(20),
        outbox_ready: Arc::new(Notify::new()),
        sla: None,
        control: None,
    }
}

fn decided(store: &Store) -> usize {
    (0..LEADS)
        .filter(|&i| {
            !store
                .audit_for(&lead_id(i), 0, i64::MAX)
                .unwrap()
                .is_empty()
        })
        .count()
}

async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decided_once_across_a_crash_with_poison_in_the_dlq() {
    let broker = Broker::start();
    let (topic, dlq, group) = (unique("crm.sf.cdc"), unique("allot.dlq"), unique("ingest"));
    broker.create_topic(&topic, 3);
    broker.create_topic(&dlq, 1);
    let producer = KafkaSink::new(&kafka(broker.bootstrap(), "producer")).unwrap();
    for i in 0..LEADS {
        if i == 7 {
            producer
                .send(
                    &topic,
                    lead_id(3).as_bytes(),
                    b"{\"payload\": not json",
                    &[],
                )
                .await
                .unwrap();
        }
        producer
            .send(
                &topic,
                lead_id(i).as_bytes(),
                cdc(i).as_bytes(),
                &[("allot-event-id", format!("{}", 5_000 + i).as_bytes())],
            )
            .await
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    // First member: killed (task aborted, no clean close) after some progress.
    let first = ingest(
        store.clone(),
        broker.bootstrap(),
        &group,
        &topic,
        &dlq,
        Metrics::new(),
    );
    let task = tokio::spawn(first.run(std::future::pending()));
    wait_until("the first member to decide some leads", 60, || {
        decided(&store) >= 15
    })
    .await;
    task.abort();
    let _ = task.await;
    let before_restart = decided(&store);
    assert!(before_restart < LEADS + 1);

    // Second member of the same group: resumes from the committed prefix.
    let metrics = Metrics::new();
    let second = ingest(
        store.clone(),
        broker.bootstrap(),
        &group,
        &topic,
        &dlq,
        metrics.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(second.run(async move {
        let _ = stop_rx.await;
    }));
    wait_until("every lead decided", 90, || decided(&store) == LEADS).await;
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();

    for i in 0..LEADS {
        let n = store.audit_for(&lead_id(i), 0, i64::MAX).unwrap().len();
        assert_eq!(n, 1, "lead {i} decided {n} times");
    }
    // The poison message is in the DLQ with its reason and where it came from.
    let mut dl =
        KafkaSource::subscribe(&kafka(broker.bootstrap(), &unique("dlq-reader")), &[&dlq]).unwrap();
    let d = tokio::time::timeout(Duration::from_secs(30), dl.next())
        .await
        .unwrap()
        .unwrap();
    let header = |k: &str| String::from_utf8_lossy(d.header(k).unwrap_or_default()).into_owned();
    assert_eq!(header("allot-error-kind"), "json");
    assert!(
        header("allot-error").contains("not JSON"),
        "{}",
        header("allot-error")
    );
    assert_eq!(header("allot-source-topic"), topic);
    assert_eq!(d.payload.as_deref(), Some(&b"{\"payload\": not json"[..]));
    // At least once: a crash between dead-lettering and the offset commit may
    // send it again, but only ever that one message.
    let offset = header("allot-source-offset");
    while let Ok(Ok(more)) = tokio::time::timeout(Duration::from_secs(3), dl.next()).await {
        assert_eq!(
            String::from_utf8_lossy(more.header("allot-source-offset").unwrap_or_default()),
            offset
        );
    }
}
