//! A group member killed with SIGKILL (no close, no leave, no last commit):
//! the next member resumes from the last committed prefix and nothing is lost.
//!
//! The member runs in a child process: this test binary again, running only
//! `kill_child_member` with `CHILD_ENV` set. Without it that function returns
//! at once, so in a normal run it is an empty test.

#[cfg(test)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use allot_bus::{ensure_topics, KafkaSource};
use allot_tests::{unique, Broker};
use support::{bounded, config, config_for, positions, produce, receive, settle, Position};

/// `bootstrap topic group` for the child member.
const CHILD_ENV: &str = "ALLOT_BUS_KILL_CHILD";
/// Prefix of the lines the child reports on stdout.
const TAG: &str = "kill-child";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_resumes_from_committed_prefix() {
    bounded("killed_member_resumes_from_committed_prefix", async {
        let broker = Broker::start();
        let (topic, group) = (unique("kill"), unique("g"));
        ensure_topics(broker.bootstrap(), &[(&topic, 3)])
            .await
            .unwrap();
        let produced: BTreeSet<Position> =
            produce(&broker, &topic, 300).await.into_iter().collect();

        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "kill_child_member",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, format!("{} {topic} {group}", broker.bootstrap()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut acked = BTreeSet::new();
        let mut committed = BTreeMap::new();
        loop {
            let line = tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(40)))
                .expect("child member reports within 40 s");
            // libtest prints `test kill_child_member ... ` without a line
            // break before the test's own output: read from the tag on.
            let Some(start) = line.find(TAG) else {
                continue;
            };
            let words: Vec<&str> = line[start..].split_whitespace().collect();
            match words.as_slice() {
                [TAG, "acked", p, o] => {
                    acked.insert((p.parse::<i32>().unwrap(), o.parse::<i64>().unwrap()));
                }
                [TAG, "committed", p, o] => {
                    committed.insert(p.parse::<i32>().unwrap(), o.parse::<i64>().unwrap());
                }
                [TAG, "ready"] => break,
                _ => {}
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!acked.is_empty() && !committed.is_empty());

        // The dead member still owns its partitions until its session
        // times out (6 s); then the new member gets them.
        let mut next = KafkaSource::subscribe(&config(&broker, &group), &[&topic]).unwrap();
        let again = settle(&mut next, 3, Duration::from_secs(40)).await;
        for d in &again {
            next.ack(d).unwrap();
        }
        let redelivered: BTreeSet<Position> = positions(&again).into_iter().collect();
        let want: BTreeSet<Position> = produced
            .iter()
            .filter(|(p, o)| committed.get(p).is_none_or(|c| o >= c))
            .copied()
            .collect();
        assert_eq!(redelivered, want, "resumes exactly at the committed prefix");
        let seen: BTreeSet<Position> = acked.union(&redelivered).copied().collect();
        assert_eq!(seen, produced, "nothing lost");
        next.close().await.unwrap();
    })
    .await;
}

/// The member that gets killed; does nothing unless `CHILD_ENV` is set.
/// Takes 150 records, acks all but every 7th, waits until the acked prefix
/// is committed, reports, and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_child_member() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let [bootstrap, topic, group] = spec.split_whitespace().collect::<Vec<_>>()[..] else {
        panic!("{CHILD_ENV} must be `bootstrap topic group`, got {spec:?}");
    };
    let mut source = KafkaSource::subscribe(&config_for(bootstrap, group), &[topic]).unwrap();
    let got = receive(&mut source, 150, Duration::from_secs(30)).await;
    // Per partition, the next offset after the acked prefix of what was
    // received (in offset order, as Kafka delivers a partition).
    let mut expected = BTreeMap::new();
    let mut stopped = BTreeSet::new();
    for (i, d) in got.iter().enumerate() {
        let ack = i % 7 != 3;
        if ack {
            source.ack(d).unwrap();
            println!("{TAG} acked {} {}", d.partition, d.offset);
        }
        if stopped.contains(&d.partition) {
            continue;
        }
        if ack {
            expected.insert(d.partition, d.offset + 1);
        } else {
            stopped.insert(d.partition);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let committed: BTreeMap<i32, i64> = source
            .committed()
            .await
            .unwrap()
            .into_iter()
            .map(|(_, p, o)| (p, o))
            .collect();
        if committed == expected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{committed:?} != {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (p, o) in &expected {
        println!("{TAG} committed {p} {o}");
    }
    println!("{TAG} ready");
    tokio::time::sleep(Duration::from_secs(60)).await;
}
