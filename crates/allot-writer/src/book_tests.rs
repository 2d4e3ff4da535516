use allot_core::{Crm, ObjectKind, OwnerChange, Strategy, DECISION_VERSION};
use allot_store::Superseded;

use super::*;

fn entry(id: &str, owner: &str, at: Millis, attempts: u32, was_in_flight: bool) -> OutboxEntry {
    OutboxEntry {
        change: OwnerChange {
            v: DECISION_VERSION,
            crm: Some(Crm::Salesforce),
            record_id: id.to_string(),
            object: ObjectKind::Lead,
            owner: owner.to_string(),
            previous_owner: None,
            decided_at: at,
            event_id: "e".into(),
            territory: None,
            strategy: Strategy::Fallback,
        },
        state: OutboxState::Pending,
        attempts,
        superseded: was_in_flight.then_some(Superseded {
            decided_at: at - 1,
            was_in_flight,
            in_flight_owner: Some("old".into()),
        }),
    }
}

fn ids(s: &Selection) -> Vec<(String, Millis)> {
    let mut v: Vec<_> = s
        .cands
        .iter()
        .map(|c| (c.entry.change.record_id.clone(), c.entry.change.decided_at))
        .collect();
    v.sort();
    v
}

#[test]
fn records_in_a_call_are_held_until_released() {
    let mut b = Book::default();
    let first = b.select(vec![entry("a", "x", 1, 0, false)], 0);
    b.launch(&first.cands);
    // A newer decision arrives while the call is out: held.
    let during = b.select(vec![entry("a", "y", 2, 0, true)], 10);
    assert_eq!((during.cands.len(), during.held), (0, 1));
    b.release(&first.cands);
    let after = b.select(vec![entry("a", "y", 2, 0, true)], 20);
    assert_eq!(ids(&after), vec![("a".into(), 2)]);
    assert_eq!(b.calling(), 0);
}

#[test]
fn restart_fences_newer_decisions_but_not_the_requeued_one() {
    let mut b = Book::default();
    let open = vec![
        entry("requeued", "x", 5, 1, false),
        entry("replaced", "y", 7, 0, true),
        entry("fresh", "z", 9, 0, false),
    ];
    assert_eq!(b.fence_restart(&open, 1_000), 2);
    // (pending, now, sendable, held, wake)
    let cases = [
        (
            open.clone(),
            0,
            vec![("fresh", 9), ("requeued", 5)],
            1,
            Some(1_000),
        ),
        (
            vec![entry("requeued", "w", 6, 0, false)],
            500,
            vec![],
            1,
            Some(1_000),
        ),
        (
            vec![
                entry("requeued", "w", 6, 0, false),
                entry("replaced", "y", 7, 0, true),
            ],
            1_000,
            vec![("replaced", 7), ("requeued", 6)],
            0,
            None,
        ),
    ];
    for (pending, now, want, held, wake) in cases {
        let s = b.select(pending, now);
        let want: Vec<(String, Millis)> =
            want.into_iter().map(|(i, d)| (i.to_string(), d)).collect();
        assert_eq!((ids(&s), s.held, s.wake), (want, held, wake), "at {now}");
    }
}

#[test]
fn a_lost_answer_fences_the_record_for_newer_decisions() {
    let mut b = Book::default();
    let key = OutboxKey::new(ObjectKind::Lead, "a");
    b.fence(key, 1, "x", 5_000);
    let s = b.select(vec![entry("a", "x", 1, 1, false)], 100);
    assert_eq!(s.cands.len(), 1, "the same decision may be sent again");
    let s = b.select(vec![entry("a", "y", 2, 0, true)], 100);
    // Held, and offered for a probe, which comes again after PROBE_EVERY_MS.
    assert_eq!((s.cands.len(), s.probe.len()), (0, 1));
    assert_eq!(s.wake, Some(100 + PROBE_EVERY_MS));
    let again = b.select(vec![entry("a", "y", 2, 0, true)], 200);
    assert_eq!((again.cands.len(), again.probe.len()), (0, 0));
}

#[test]
fn a_probe_lifts_a_fence_only_when_the_crm_shows_the_feared_owner() {
    let key = || OutboxKey::new(ObjectKind::Lead, "a");
    let newer = || vec![entry("a", "y", 2, 0, true)];
    // (what the CRM shows, lifted)
    let cases = [
        (None, false),
        (Some("someone else"), false),
        (Some("y"), false),
        (Some("x"), true),
    ];
    for (shown, lifted) in cases {
        let mut b = Book::default();
        b.fence(key(), 1, "x", 60_000);
        assert_eq!(b.select(newer(), 0).probe.len(), 1);
        assert_eq!(b.probed(&key(), shown), lifted, "{shown:?}");
        let s = b.select(newer(), 10);
        assert_eq!(s.cands.len(), usize::from(lifted), "{shown:?}");
    }
    // A fence without a known owner (an entry stored before owners were
    // kept) is not probed: it lasts its time.
    let mut b = Book::default();
    let mut old = entry("a", "y", 2, 0, true);
    old.superseded.as_mut().unwrap().in_flight_owner = None;
    assert_eq!(b.fence_restart(std::slice::from_ref(&old), 60_000), 1);
    let s = b.select(vec![old], 0);
    assert_eq!((s.cands.len(), s.probe.len(), s.wake), (0, 0, Some(60_000)));
}

#[test]
fn retries_wait_for_their_time_and_yield_to_newer_decisions() {
    let mut b = Book::default();
    let s = b.select(vec![entry("a", "x", 1, 0, false)], 0);
    b.launch(&s.cands);
    b.release(&s.cands);
    b.retry(s.cands[0].clone(), 300);
    assert_eq!(b.retrying(), 1);
    let early = b.select(vec![], 100);
    assert_eq!((early.cands.len(), early.wake), (0, Some(300)));
    let due = b.select(vec![], 300);
    assert!(due.cands[0].retry);
    assert_eq!(due.cands[0].seen_at, 0);
    // A newer decision replaces the retry.
    let newer = b.select(vec![entry("a", "y", 2, 0, true)], 400);
    assert_eq!(ids(&newer), vec![("a".into(), 2)]);
    assert_eq!(b.retrying(), 0);
}

#[test]
fn first_seen_times_are_kept_between_passes() {
    let mut b = Book::default();
    let e = || vec![entry("a", "x", 1, 0, false)];
    assert_eq!(b.select(e(), 10).cands[0].seen_at, 10);
    assert_eq!(b.select(e(), 50).cands[0].seen_at, 10);
    assert!(b.select(vec![], 60).cands.is_empty());
    assert_eq!(b.select(e(), 70).cands[0].seen_at, 70);
}
