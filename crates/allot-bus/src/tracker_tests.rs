use super::*;

/// One step of a case: hand out or ack an offset of partition `t`/0, with
/// what the tracker must answer.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Hand out the offset; the tracker answers this flow.
    D(i64, Flow),
    /// Ack the offset; the tracker answers this commit and flow.
    A(i64, Option<i64>, Flow),
}

/// `(name, max in flight, steps, final prefix, final in flight)`.
type Case = (&'static str, usize, &'static [Step], Option<i64>, usize);

use Flow::{Continue as C, Pause as P, Resume as R};
use Step::{A, D};

fn check(name: &str, max: usize, steps: &[Step], prefix: Option<i64>, in_flight: usize) {
    let mut t = OffsetTracker::new(max);
    t.assign(&[("t".to_string(), 0)]);
    for (i, step) in steps.iter().enumerate() {
        match *step {
            D(offset, flow) => {
                assert_eq!(
                    t.delivered("t", 0, offset),
                    flow,
                    "{name}: step {i} {step:?}"
                );
            }
            A(offset, commit, flow) => {
                let got = t.ack("t", 0, offset);
                assert_eq!(got, Acked { commit, flow }, "{name}: step {i} {step:?}");
            }
        }
    }
    assert_eq!(t.prefix("t", 0), prefix, "{name}: prefix");
    assert_eq!(t.in_flight("t", 0), in_flight, "{name}: in flight");
}

#[test]
fn acked_prefix_table() {
    let cases: &[Case] = &[
        ("nothing handed out", 10, &[], None, 0),
        (
            "in order",
            10,
            &[D(0, C), A(0, Some(1), C), D(1, C), A(1, Some(2), C)],
            Some(1),
            0,
        ),
        (
            "ack of 5 before 4 stays at 3",
            10,
            &[
                D(3, C),
                D(4, C),
                D(5, C),
                A(3, Some(4), C),
                A(5, None, C),
                A(4, Some(6), C),
            ],
            Some(5),
            0,
        ),
        (
            "middle never acked holds the prefix",
            10,
            &[
                D(0, C),
                D(1, C),
                D(2, C),
                D(3, C),
                A(0, Some(1), C),
                A(2, None, C),
                A(3, None, C),
            ],
            Some(0),
            3,
        ),
        (
            "gaps in offsets do not hold the prefix",
            10,
            &[
                D(10, C),
                D(12, C),
                D(15, C),
                A(12, None, C),
                A(10, Some(13), C),
                A(15, Some(16), C),
            ],
            Some(15),
            0,
        ),
        (
            "repeated and unknown acks change nothing",
            10,
            &[
                D(7, C),
                A(7, Some(8), C),
                A(7, None, C),
                A(99, None, C),
                A(3, None, C),
            ],
            Some(7),
            0,
        ),
        (
            "redelivery below the prefix is not tracked",
            10,
            &[D(1, C), A(1, Some(2), C), D(1, C), D(2, C)],
            Some(1),
            1,
        ),
        ("nothing acked yet", 10, &[D(0, C), D(1, C)], None, 2),
    ];
    for (name, max, steps, prefix, in_flight) in cases {
        check(name, *max, steps, *prefix, *in_flight);
    }
}

#[test]
fn backpressure_table() {
    let cases: &[Case] = &[
        (
            "pauses at the limit, resumes at half",
            4,
            &[
                D(0, C),
                D(1, C),
                D(2, C),
                D(3, P),
                A(0, Some(1), C),
                A(1, Some(2), R),
                D(4, C),
                D(5, P),
            ],
            Some(1),
            4,
        ),
        (
            "limit of one alternates",
            1,
            &[D(0, P), A(0, Some(1), R), D(1, P), A(1, Some(2), R)],
            Some(1),
            0,
        ),
        (
            "acks behind an unacked one do not resume",
            2,
            &[D(0, C), D(1, P), A(1, None, C), A(0, Some(2), R)],
            Some(1),
            0,
        ),
        (
            "a zero limit behaves as one",
            0,
            &[D(0, P), A(0, Some(1), R)],
            Some(0),
            0,
        ),
        (
            "deliveries past the limit pause once",
            2,
            &[
                D(0, C),
                D(1, P),
                D(2, C),
                A(0, Some(1), C),
                A(1, Some(2), R),
            ],
            Some(1),
            1,
        ),
    ];
    for (name, max, steps, prefix, in_flight) in cases {
        check(name, *max, steps, *prefix, *in_flight);
    }
}

#[test]
fn revoke_returns_commits_and_forgets() {
    let mut t = OffsetTracker::new(10);
    let parts = [
        ("a".to_string(), 0),
        ("a".to_string(), 1),
        ("b".to_string(), 0),
    ];
    t.assign(&parts);
    for (topic, partition) in &parts {
        t.delivered(topic, *partition, 5);
        t.delivered(topic, *partition, 6);
    }
    t.ack("a", 0, 5);
    t.ack("a", 1, 6);
    t.ack("b", 0, 5);
    t.ack("b", 0, 6);
    assert_eq!(
        t.commits(),
        vec![("a".to_string(), 0, 6), ("b".to_string(), 0, 7)]
    );
    let cases = [
        (vec![("a".to_string(), 1)], vec![]),
        (vec![("a".to_string(), 0)], vec![("a".to_string(), 0, 6)]),
        (vec![("zz".to_string(), 3)], vec![]),
    ];
    for (revoked, want) in cases {
        assert_eq!(t.revoke(&revoked), want, "{revoked:?}");
    }
    assert_eq!(t.commits(), vec![("b".to_string(), 0, 7)]);
    assert_eq!(t.in_flight("a", 0), 0);
    // An ack from before the revoke is ignored once the partition comes back.
    t.assign(&[("a".to_string(), 0)]);
    assert_eq!(t.ack("a", 0, 6).commit, None);
    assert_eq!(t.prefix("a", 0), None);
    assert!(!t.paused("a", 0));
}
