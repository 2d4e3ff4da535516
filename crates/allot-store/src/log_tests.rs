use super::*;
use crate::StoreError;

fn msgs(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("m{i}").into_bytes()).collect()
}

fn offsets(read: &[(u64, Vec<u8>)]) -> Vec<u64> {
    read.iter().map(|(o, _)| *o).collect()
}

#[test]
fn append_read_and_offsets_are_contiguous() {
    let store = Store::temporary().unwrap();
    let log = store.log("allot.events");
    assert_eq!(
        (log.end_offset().unwrap(), log.start_offset().unwrap()),
        (0, 0)
    );
    assert_eq!(log.append(b"first").unwrap(), 0);
    assert_eq!(log.append_batch(&msgs(4)).unwrap(), [1, 2, 3, 4]);
    assert_eq!(log.append_batch(&[]).unwrap(), Vec::<u64>::new());
    let other = store.log("allot.decisions");
    assert_eq!(other.append(b"x").unwrap(), 0, "logs are independent");

    let cases: [(u64, usize, &[u64]); 5] = [
        (0, 10, &[0, 1, 2, 3, 4]),
        (2, 2, &[2, 3]),
        (4, 10, &[4]),
        (5, 10, &[]),
        (0, 0, &[]),
    ];
    for (from, max, want) in cases {
        assert_eq!(
            offsets(&log.read(from, max).unwrap()),
            want,
            "read({from}, {max})"
        );
    }
    assert_eq!(log.read(0, 1).unwrap()[0].1, b"first");
    assert_eq!(log.read(3, 1).unwrap()[0].1, b"m2");
    assert_eq!(log.end_offset().unwrap(), 5);
}

#[test]
fn groups_commit_and_bound_retention() {
    let store = Store::temporary().unwrap();
    let log = store.log("l");
    log.append_batch(&msgs(10)).unwrap();
    assert_eq!(log.committed("assign").unwrap(), 0);
    assert_eq!(
        log.retain().unwrap(),
        0,
        "no group: nothing is known consumed"
    );
    log.commit("assign", 7).unwrap();
    log.commit("audit", 4).unwrap();
    assert_eq!(
        log.groups().unwrap(),
        [("assign".to_string(), 7), ("audit".to_string(), 4)]
    );
    assert_eq!(log.retention_floor().unwrap(), Some(4));

    // (truncate_before arg, removed, start after)
    let cases = [(2, 2, 2), (9, 2, 4), (3, 0, 4)];
    for (before, removed, start) in cases {
        assert_eq!(
            log.truncate_before(before).unwrap(),
            removed,
            "truncate_before({before})"
        );
        assert_eq!(
            log.start_offset().unwrap(),
            start,
            "truncate_before({before})"
        );
    }
    assert_eq!(
        offsets(&log.read(0, 2).unwrap()),
        [4, 5],
        "reads below start begin at start"
    );
    log.commit("audit", 10).unwrap();
    assert_eq!(log.retain().unwrap(), 3, "floor is now assign's 7");
    assert_eq!(log.start_offset().unwrap(), 7);

    let err = log.commit("assign", 11).unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { .. }) && err.to_string().contains("ends at 10"),
        "{err}"
    );
}

#[test]
fn offsets_survive_reopen_even_when_everything_was_truncated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let log = store.log("l");
        log.append_batch(&msgs(3)).unwrap();
        log.commit("g", 3).unwrap();
        assert_eq!(log.retain().unwrap(), 3);
    }
    let store = Store::open(dir.path()).unwrap();
    let log = store.log("l");
    assert_eq!(
        (log.start_offset().unwrap(), log.end_offset().unwrap()),
        (3, 3)
    );
    assert_eq!(log.committed("g").unwrap(), 3);
    assert_eq!(log.append(b"after").unwrap(), 3);
    assert_eq!(log.read(0, 10).unwrap(), [(3, b"after".to_vec())]);
}

#[test]
fn consume_produce_commit_in_one_batch() {
    let store = Store::temporary().unwrap();
    let input = store.log("in");
    input.append_batch(&msgs(2)).unwrap();
    let mut b = store.batch();
    b.log_append("out", b"decided m0")
        .log_append("out", b"decided m1")
        .log_commit("in", "assign", 2);
    b.mark_seen("m0", 1).mark_seen("m1", 1);
    assert_eq!(store.commit(b).unwrap().log_offsets, [0, 1]);
    assert_eq!(store.log("out").end_offset().unwrap(), 2);
    assert_eq!(input.committed("assign").unwrap(), 2);

    let mut bad = store.batch();
    bad.log_append("out", b"lost")
        .log_commit("in", "assign", 99);
    assert!(store.commit(bad).is_err());
    assert_eq!(
        store.log("out").end_offset().unwrap(),
        2,
        "a failed batch appends nothing"
    );
}

#[test]
fn appends_wake_waiting_readers() {
    let store = Store::temporary().unwrap();
    let log = store.log("l");
    let seen = log.generation();
    assert_eq!(
        log.wait_blocking(seen, Duration::from_millis(5)),
        seen,
        "times out without appends"
    );
    let reader = {
        let log = store.log("l");
        std::thread::spawn(move || log.wait_blocking(seen, Duration::from_secs(30)))
    };
    std::thread::sleep(Duration::from_millis(20));
    store.log("other").append(b"not ours").unwrap();
    log.append(b"ours").unwrap();
    assert_eq!(reader.join().unwrap(), seen + 1);
    assert_eq!(store.log("other").generation(), 1);
}
