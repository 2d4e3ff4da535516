use super::*;
use allot_core::{OwnerChange, Strategy, DECISION_VERSION};

/// Failed writes stored for the tests: (crm, object, record id, decided at, code).
const FAILED: &[(Crm, ObjectKind, &str, Millis, &str)] = &[
    (
        Crm::Salesforce,
        ObjectKind::Lead,
        "00Q1",
        10,
        "inactive_owner",
    ),
    (Crm::Salesforce, ObjectKind::Lead, "00Q1", 20, "gave_up"),
    (Crm::Salesforce, ObjectKind::Lead, "00Q2", 10, "rejected"),
    (
        Crm::Hubspot,
        ObjectKind::Contact,
        "501",
        10,
        "inactive_owner",
    ),
    (Crm::Hubspot, ObjectKind::Contact, "a:b", 30, "not_found"),
    (
        Crm::Salesforce,
        ObjectKind::Account,
        "001A",
        10,
        "inactive_owner",
    ),
];

fn change(crm: Crm, object: ObjectKind, id: &str, decided_at: Millis) -> OwnerChange {
    OwnerChange {
        crm: Some(crm),
        v: DECISION_VERSION,
        record_id: id.into(),
        object,
        owner: format!("o{decided_at}"),
        previous_owner: Some("before".into()),
        decided_at,
        event_id: format!("e{decided_at}"),
        territory: None,
        strategy: Strategy::OnlyCandidate,
    }
}

/// A store holding [`FAILED`], each failed through the outbox as the writer does.
fn store() -> Store {
    let store = Store::temporary().unwrap();
    for &(crm, object, id, at, code) in FAILED {
        let c = change(crm, object, id, at);
        store.outbox_put(&c).unwrap();
        let key = OutboxKey::of(&c);
        assert!(store
            .outbox_fail(&key, at, code, &format!("{code}: no"), at + 1)
            .unwrap());
    }
    store
}

fn ids(items: &[FailedWrite]) -> Vec<String> {
    items
        .iter()
        .map(|f| FailedWriteId::of(f).to_string())
        .collect()
}

#[test]
fn ids_round_trip_and_bad_ones_say_what_is_wrong() {
    let cases: [(&str, std::result::Result<&str, &str>); 7] = [
        ("lead:00Q1:10", Ok("lead:00Q1:10")),
        ("contact:a:b:30", Ok("contact:a:b:30")),
        ("Account:001A:-5", Ok("account:001A:-5")),
        ("lead00Q1", Err("is not object:record id:decided at ms")),
        (
            "planet:x:1",
            Err("\"planet\" is not lead, account or contact"),
        ),
        ("lead::1", Err("the record id is empty")),
        ("lead:00Q1:soon", Err("\"soon\" is not epoch milliseconds")),
    ];
    for (text, want) in cases {
        match (FailedWriteId::parse(text), want) {
            (Ok(id), Ok(shown)) => assert_eq!(id.to_string(), shown, "{text}"),
            (Err(e), Err(needle)) => assert!(e.contains(needle), "{text}: {e}"),
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn listing_filters_and_pages() {
    let store = store();
    let all = |crm, object, code: Option<&str>| FailedFilter {
        crm,
        object,
        code: code.map(str::to_string),
    };
    let cases: Vec<(FailedFilter, Vec<&str>)> = vec![
        (
            FailedFilter::default(),
            vec![
                "account:001A:10",
                "contact:501:10",
                "contact:a:b:30",
                "lead:00Q1:10",
                "lead:00Q1:20",
                "lead:00Q2:10",
            ],
        ),
        (
            all(Some(Crm::Hubspot), None, None),
            vec!["contact:501:10", "contact:a:b:30"],
        ),
        (
            all(None, Some(ObjectKind::Lead), None),
            vec!["lead:00Q1:10", "lead:00Q1:20", "lead:00Q2:10"],
        ),
        (
            all(None, None, Some("inactive_owner")),
            vec!["account:001A:10", "contact:501:10", "lead:00Q1:10"],
        ),
        (
            all(Some(Crm::Salesforce), Some(ObjectKind::Contact), None),
            vec![],
        ),
        (
            all(None, Some(ObjectKind::Account), Some("gave_up")),
            vec![],
        ),
    ];
    for (filter, want) in cases {
        // Every page size walks the same list, page by page.
        for limit in 1..=7 {
            let mut got = Vec::new();
            let mut after = None;
            let mut pages = 0;
            loop {
                let page = store
                    .failed_writes_page(&filter, after.as_ref(), limit)
                    .unwrap();
                assert!(page.items.len() <= limit);
                got.extend(ids(&page.items));
                pages += 1;
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
                assert!(pages < 10, "{filter:?}: paging does not end");
            }
            assert_eq!(got, want, "{filter:?} limit {limit}");
        }
    }
}

#[test]
fn get_discard_and_counts_by_code() {
    let store = store();
    let counts = |s: &Store| -> Vec<(String, u64)> {
        s.failed_write_counts().unwrap().into_iter().collect()
    };
    let c = |code: &str, n: u64| (code.to_string(), n);
    assert_eq!(
        counts(&store),
        [
            c("gave_up", 1),
            c("inactive_owner", 3),
            c("not_found", 1),
            c("rejected", 1)
        ]
    );
    let id = |s: &str| FailedWriteId::parse(s).unwrap();
    let one = store.failed_write(&id("lead:00Q1:20")).unwrap().unwrap();
    assert_eq!((one.code.as_str(), one.attempts), ("gave_up", 0));
    assert_eq!(one.change.owner, "o20");
    assert_eq!(store.failed_write(&id("lead:00Q1:99")).unwrap(), None);

    /// Id to discard, whether it was there, counts after.
    type Step<'a> = (&'a str, bool, Vec<(String, u64)>);
    let steps: Vec<Step> = vec![
        (
            "lead:00Q1:20",
            true,
            vec![c("inactive_owner", 3), c("not_found", 1), c("rejected", 1)],
        ),
        (
            "lead:00Q1:20",
            false,
            vec![c("inactive_owner", 3), c("not_found", 1), c("rejected", 1)],
        ),
        (
            "contact:501:10",
            true,
            vec![c("inactive_owner", 2), c("not_found", 1), c("rejected", 1)],
        ),
    ];
    for (text, there, want) in steps {
        let gone = store.failed_write_discard(&id(text)).unwrap();
        assert_eq!(gone.is_some(), there, "{text}");
        if let Some(f) = gone {
            assert_eq!(FailedWriteId::of(&f).to_string(), text);
        }
        assert_eq!(counts(&store), want, "after discarding {text}");
        assert_eq!(store.failed_write(&id(text)).unwrap(), None);
    }
    // A batch discards together with other work; the check stays clean.
    let mut b = store.batch();
    b.failed_write_discard(&id("contact:a:b:30"));
    store.commit(b).unwrap();
    assert_eq!(counts(&store), [c("inactive_owner", 2), c("rejected", 1)]);
    assert_eq!(store.failed_writes(100).unwrap().len(), 3);
    let report = store.check().unwrap();
    assert!(
        report.corrupt.is_empty() && report.problems.is_empty(),
        "{report:?}"
    );
}
