//! The at-least-once contract against a real broker (tansu, or the one named
//! by `ALLOT_TEST_KAFKA_BOOTSTRAP`). Each test has its own topics and groups,
//! and finishes within a minute.

#[cfg(test)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use allot_bus::{dlq_headers, ensure_topics, KafkaConfig, KafkaSink, KafkaSource};
use allot_tests::{unique, Broker};
use support::{bounded, by_partition, config, next_within, positions, produce, receive, settle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_records_are_not_delivered_again() {
    bounded("acked_records_are_not_delivered_again", async {
        let broker = Broker::start();
        let (topic, group) = (unique("all-acked"), unique("g"));
        ensure_topics(broker.bootstrap(), &[(&topic, 3)])
            .await
            .unwrap();
        let produced = produce(&broker, &topic, 500).await;
        let spread = by_partition(produced.iter().copied());
        assert_eq!(spread.len(), 3, "records spread over 3 partitions");

        let mut first = KafkaSource::subscribe(&config(&broker, &group), &[&topic]).unwrap();
        let got = receive(&mut first, 500, Duration::from_secs(30)).await;
        for d in &got {
            first.ack(d).unwrap();
        }
        assert_eq!(by_partition(positions(&got)), spread);
        let values: BTreeSet<_> = got.iter().filter_map(|d| d.payload.clone()).collect();
        assert_eq!(values.len(), 500);
        first.close().await.unwrap();

        let mut second = KafkaSource::subscribe(&config(&broker, &group), &[&topic]).unwrap();
        let again = settle(&mut second, 3, Duration::from_secs(30)).await;
        assert!(again.is_empty(), "redelivered {:?}", positions(&again));
        let committed: BTreeMap<i32, i64> = second
            .committed()
            .await
            .unwrap()
            .into_iter()
            .map(|(_, p, o)| (p, o))
            .collect();
        let ends: BTreeMap<i32, i64> = spread
            .iter()
            .map(|(p, offsets)| (*p, offsets.iter().max().map_or(0, |o| o + 1)))
            .collect();
        assert_eq!(committed, ends);
        second.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_acks_resume_at_the_first_unacked() {
    bounded("out_of_order_acks_resume_at_the_first_unacked", async {
        let broker = Broker::start();
        let (topic, group) = (unique("gap"), unique("g"));
        ensure_topics(broker.bootstrap(), &[(&topic, 2)])
            .await
            .unwrap();
        let produced = produce(&broker, &topic, 60).await;
        let spread = by_partition(produced.iter().copied());

        let mut first = KafkaSource::subscribe(&config(&broker, &group), &[&topic]).unwrap();
        let mut got = receive(&mut first, 60, Duration::from_secs(30)).await;
        // Ack newest first, skipping one record in the middle of partition 0.
        let p0: Vec<i64> = spread[&0].iter().copied().collect();
        let hole = p0[p0.len() / 2];
        got.reverse();
        for d in got.iter().filter(|d| (d.partition, d.offset) != (0, hole)) {
            first.ack(d).unwrap();
        }
        assert_eq!(first.in_flight(&topic, 0), p0.len() - p0.len() / 2);
        assert_eq!(first.in_flight(&topic, 1), 0);
        first.close().await.unwrap();

        let mut second = KafkaSource::subscribe(&config(&broker, &group), &[&topic]).unwrap();
        let again = settle(&mut second, 2, Duration::from_secs(30)).await;
        let want: Vec<(i32, i64)> = p0.iter().filter(|o| **o >= hole).map(|o| (0, *o)).collect();
        assert_eq!(positions(&again), want, "resumes exactly at offset {hole}");
        second.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_consumer_hands_over_without_loss() {
    bounded("dropped_consumer_hands_over_without_loss", async {
        let broker = Broker::start();
        let (topic, group) = (unique("drop"), unique("g"));
        ensure_topics(broker.bootstrap(), &[(&topic, 3)])
            .await
            .unwrap();
        let produced: BTreeSet<_> = produce(&broker, &topic, 300).await.into_iter().collect();

        // Take 200, ack every one but each 7th, then drop without close.
        let mut first = KafkaSource::subscribe(&config(&broker, &group), &[&topic]).unwrap();
        let got = receive(&mut first, 200, Duration::from_secs(30)).await;
        let mut acked = BTreeSet::new();
        for (i, d) in got.iter().enumerate() {
            if i % 7 != 3 {
                first.ack(d).unwrap();
                acked.insert((d.partition, d.offset));
            }
        }
        drop(first);

        let mut second = KafkaSource::subscribe(&config(&broker, &group), &[&topic]).unwrap();
        let again = settle(&mut second, 3, Duration::from_secs(40)).await;
        for d in &again {
            second.ack(d).unwrap();
        }
        let redelivered: BTreeSet<_> = positions(&again).into_iter().collect();
        let seen: BTreeSet<_> = acked.union(&redelivered).copied().collect();
        assert_eq!(
            seen, produced,
            "every record acked by one member or the other"
        );
        // Nothing below the first unacked record of a partition comes back.
        for (partition, offsets) in by_partition(redelivered.iter().copied()) {
            let first_unacked = by_partition(produced.iter().copied())[&partition]
                .iter()
                .copied()
                .find(|o| !acked.contains(&(partition, *o)));
            assert_eq!(
                offsets.first().copied(),
                first_unacked,
                "partition {partition}"
            );
        }
        second.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_the_record_and_say_why() {
    bounded("dead_letters_keep_the_record_and_say_why", async {
        let broker = Broker::start();
        let (topic, dlq) = (unique("in"), unique("dlq"));
        ensure_topics(broker.bootstrap(), &[(&topic, 1), (&dlq, 1)])
            .await
            .unwrap();
        let sink = KafkaSink::new(&KafkaConfig::new(broker.bootstrap(), "p")).unwrap();
        sink.send(
            &topic,
            b"rec-1",
            b"{not json",
            &[("trace", b"abc"), ("v", b"1")],
        )
        .await
        .unwrap();

        let mut source = KafkaSource::subscribe(&config(&broker, &unique("g")), &[&topic]).unwrap();
        let d = receive(&mut source, 1, Duration::from_secs(20))
            .await
            .remove(0);
        sink.dead_letter(&dlq, &d, "decode", "expected value at line 1 column 2")
            .await
            .unwrap();
        source.ack(&d).unwrap();
        source.close().await.unwrap();

        let mut reader = KafkaSource::subscribe(&config(&broker, &unique("g")), &[&dlq]).unwrap();
        let letter = receive(&mut reader, 1, Duration::from_secs(20))
            .await
            .remove(0);
        assert_eq!(letter.key.as_deref(), Some(&b"rec-1"[..]));
        assert_eq!(letter.payload.as_deref(), Some(&b"{not json"[..]));
        let offset = d.offset.to_string();
        let want: Vec<(&str, &[u8])> = vec![
            ("trace", b"abc"),
            ("v", b"1"),
            (dlq_headers::ERROR, b"expected value at line 1 column 2"),
            (dlq_headers::ERROR_KIND, b"decode"),
            (dlq_headers::SOURCE_TOPIC, topic.as_bytes()),
            (dlq_headers::SOURCE_PARTITION, b"0"),
            (dlq_headers::SOURCE_OFFSET, offset.as_bytes()),
        ];
        let got: Vec<(&str, &[u8])> = letter
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        assert_eq!(got, want);
        reader.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_partitions_pause_until_acks_arrive() {
    bounded("full_partitions_pause_until_acks_arrive", async {
        let broker = Broker::start();
        let (topic, group) = (unique("flow"), unique("g"));
        ensure_topics(broker.bootstrap(), &[(&topic, 1)])
            .await
            .unwrap();
        produce(&broker, &topic, 20).await;
        let mut cfg = config(&broker, &group);
        cfg.max_in_flight_per_partition = 4;
        let mut source = KafkaSource::subscribe(&cfg, &[&topic]).unwrap();

        let held = receive(&mut source, 4, Duration::from_secs(20)).await;
        assert_eq!(positions(&held), vec![(0, 0), (0, 1), (0, 2), (0, 3)]);
        let stalled = next_within(&mut source, Duration::from_secs(3)).await;
        assert!(stalled.is_none(), "paused partition delivered {stalled:?}");
        assert_eq!(source.in_flight(&topic, 0), 4);
        let lag = source.refresh_lag().await.unwrap();
        assert_eq!((lag[0].position, lag[0].lag), (4, 16), "{lag:?}");

        // One ack is not enough to resume (the window is 3 > 4 / 2) ...
        source.ack(&held[0]).unwrap();
        assert!(next_within(&mut source, Duration::from_secs(2))
            .await
            .is_none());
        // ... the second one is.
        source.ack(&held[1]).unwrap();
        let rest = receive(&mut source, 2, Duration::from_secs(10)).await;
        assert_eq!(positions(&rest), vec![(0, 4), (0, 5)]);

        // Acking as we go drains the partition in order, pausing on the way.
        let mut offsets: Vec<i64> = Vec::new();
        for d in held[2..].iter().chain(&rest) {
            source.ack(d).unwrap();
        }
        while offsets.len() < 14 {
            let d = next_within(&mut source, Duration::from_secs(10))
                .await
                .expect("resumed partition delivers");
            source.ack(&d).unwrap();
            offsets.push(d.offset);
        }
        assert_eq!(offsets, (6..20).collect::<Vec<_>>());
        source.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_resumes_after_a_broker_crash() {
    bounded("group_resumes_after_a_broker_crash", async {
        let mut broker = Broker::start();
        if !broker.is_local() {
            // An external broker cannot be killed from here; the other tests
            // still cover it.
            return;
        }
        let (topic, group) = (unique("crash"), unique("g"));
        ensure_topics(broker.bootstrap(), &[(&topic, 1)])
            .await
            .unwrap();
        produce(&broker, &topic, 50).await;
        let mut first = KafkaSource::subscribe(&config(&broker, &group), &[&topic]).unwrap();
        for d in receive(&mut first, 20, Duration::from_secs(20)).await {
            first.ack(&d).unwrap();
        }
        first.close().await.unwrap();

        tokio::task::block_in_place(|| broker.restart()).unwrap();
        let mut second = KafkaSource::subscribe(&config(&broker, &group), &[&topic]).unwrap();
        let again = settle(&mut second, 1, Duration::from_secs(30)).await;
        let offsets: Vec<i64> = again.iter().map(|d| d.offset).collect();
        assert_eq!(offsets, (20..50).collect::<Vec<_>>());
        second.close().await.unwrap();
    })
    .await;
}
