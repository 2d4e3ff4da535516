//! Applying events to known records.

use allot_core::{ChangeEvent, ChangeKind, Crm, ObjectKind, Record, Value};
use allot_events::{merge, FieldMap, MergeOutcome};

use crate::{event, fields, s, strs};

fn sf_update(t: i64, seq: i64, pairs: &[(&str, Value)]) -> ChangeEvent {
    ChangeEvent {
        changed_fields: pairs.iter().map(|(k, _)| k.to_string()).collect(),
        fields: fields(pairs),
        commit_time: Some(t),
        sequence: Some(seq),
        ..event(
            Crm::Salesforce,
            "r",
            ObjectKind::Lead,
            Some("L1"),
            ChangeKind::Update,
        )
    }
}

fn with_kind(e: ChangeEvent, change: ChangeKind) -> ChangeEvent {
    ChangeEvent { change, ..e }
}

fn known() -> Record {
    let mut r = Record::new(ObjectKind::Lead, "L1")
        .with("country", "US")
        .with("email", "a@old.com")
        .with("domain", "old.com")
        .with_owner("005A");
    r.owner_since = Some(50);
    r.updated_at = Some(100);
    r
}

/// (name, record, last_applied, event, map, expected outcome)
type Case = (
    &'static str,
    Option<Record>,
    Option<(i64, i64)>,
    ChangeEvent,
    FieldMap,
    MergeOutcome,
);

fn outcome(
    record: Option<Record>,
    applied: bool,
    changed: &[&str],
    owner_changed: bool,
    hydrate: bool,
) -> MergeOutcome {
    MergeOutcome {
        record,
        applied,
        stale: false,
        changed_canonical: strs(changed),
        owner_changed,
        needs_hydration: hydrate,
    }
}

fn cases() -> Vec<Case> {
    let sf = FieldMap::salesforce_default;
    let hs = FieldMap::hubspot_default;
    let mut updated = known().with("country", "DE").with("state", "BE");
    updated.updated_at = Some(200);
    let mut cleared = known();
    cleared.fields.remove("country");
    cleared.updated_at = Some(200);
    let mut new_email = known()
        .with("email", "b@Initech.com")
        .with("domain", "initech.com");
    new_email.updated_at = Some(200);
    let mut no_email = known();
    no_email.fields.remove("email");
    no_email.fields.remove("domain");
    no_email.updated_at = Some(200);
    let mut reowned = known();
    reowned.owner = Some("005B".into());
    reowned.owner_since = Some(200);
    reowned.updated_at = Some(200);
    let mut deleted = known();
    deleted.deleted = true;
    deleted.updated_at = Some(200);
    let mut gap = known();
    gap.updated_at = Some(200);

    let mut created = Record::new(ObjectKind::Lead, "L1")
        .with("country", "US")
        .with("email", "x@acme.com")
        .with("domain", "acme.com")
        .with("FirstName", "Ann")
        .with_owner("005A");
    created.owner_since = Some(100);
    created.updated_at = Some(100);
    let create = ChangeEvent {
        fields: fields(&[
            ("CountryCode", s("US")),
            ("Email", s("x@acme.com")),
            ("FirstName", s("Ann")),
            ("OwnerId", s("005A")),
        ]),
        commit_time: Some(100),
        ..event(
            Crm::Salesforce,
            "c",
            ObjectKind::Lead,
            Some("L1"),
            ChangeKind::Create,
        )
    };

    let hs_change = ChangeEvent {
        changed_fields: strs(&["hubspot_owner_id"]),
        fields: fields(&[("hubspot_owner_id", s("771204"))]),
        commit_time: Some(300),
        ..event(
            Crm::Hubspot,
            "h",
            ObjectKind::Account,
            Some("A1"),
            ChangeKind::Update,
        )
    };
    let mut hs_new = Record::new(ObjectKind::Account, "A1").with_owner("771204");
    hs_new.owner_since = Some(300);
    hs_new.updated_at = Some(300);
    let mut tombstone = Record::new(ObjectKind::Lead, "L1");
    tombstone.deleted = true;
    tombstone.updated_at = Some(200);
    let mut undeleted = known();
    undeleted.updated_at = Some(300);

    vec![
        (
            "update",
            Some(known()),
            Some((100, 1)),
            sf_update(200, 1, &[("Country", s("DE")), ("State", s("BE"))]),
            sf(),
            outcome(Some(updated), true, &["country", "state"], false, false),
        ),
        (
            "older event does not overwrite newer",
            Some(known()),
            Some((300, 0)),
            sf_update(200, 9, &[("Country", s("DE"))]),
            sf(),
            MergeOutcome {
                stale: true,
                ..outcome(Some(known()), false, &[], false, false)
            },
        ),
        (
            "same time, earlier sequence is stale",
            None,
            Some((200, 5)),
            sf_update(200, 4, &[("Country", s("DE"))]),
            sf(),
            MergeOutcome {
                stale: true,
                ..outcome(None, false, &[], false, false)
            },
        ),
        (
            "null removes the field",
            Some(known()),
            None,
            sf_update(
                200,
                1,
                &[("Country", Value::Null), ("CountryCode", Value::Null)],
            ),
            sf(),
            outcome(Some(cleared), true, &["country"], false, false),
        ),
        (
            "new email re-derives domain",
            Some(known()),
            None,
            sf_update(200, 1, &[("Email", s("b@Initech.com"))]),
            sf(),
            outcome(Some(new_email), true, &["domain", "email"], false, false),
        ),
        (
            "cleared email drops derived domain",
            Some(known()),
            None,
            sf_update(200, 1, &[("Email", Value::Null)]),
            sf(),
            outcome(Some(no_email), true, &["domain", "email"], false, false),
        ),
        (
            "owner change",
            Some(known()),
            None,
            sf_update(200, 1, &[("OwnerId", s("005B"))]),
            sf(),
            outcome(Some(reowned), true, &[], true, false),
        ),
        (
            "same owner is no change",
            Some(known()),
            None,
            sf_update(200, 1, &[("OwnerId", s("005A"))]),
            sf(),
            outcome(Some(gap.clone()), true, &[], false, false),
        ),
        (
            "delete",
            Some(known()),
            None,
            with_kind(sf_update(200, 1, &[]), ChangeKind::Delete),
            sf(),
            outcome(Some(deleted.clone()), true, &[], false, false),
        ),
        (
            "undelete",
            Some(deleted),
            None,
            with_kind(sf_update(300, 1, &[]), ChangeKind::Undelete),
            sf(),
            outcome(Some(undeleted), true, &[], false, false),
        ),
        (
            "delete of an unknown record leaves a tombstone",
            None,
            None,
            with_kind(sf_update(200, 1, &[]), ChangeKind::Delete),
            sf(),
            outcome(Some(tombstone), true, &[], false, false),
        ),
        (
            "gap needs hydration",
            Some(known()),
            None,
            with_kind(sf_update(200, 1, &[]), ChangeKind::Gap),
            sf(),
            outcome(Some(gap), true, &[], false, true),
        ),
        (
            "create of an unknown record",
            None,
            None,
            create.clone(),
            sf(),
            outcome(
                Some(created),
                true,
                &["FirstName", "country", "domain", "email"],
                true,
                false,
            ),
        ),
        (
            "create without fields needs hydration",
            None,
            None,
            ChangeEvent {
                fields: Default::default(),
                ..create
            },
            sf(),
            outcome(
                Some(Record {
                    updated_at: Some(100),
                    ..Record::new(ObjectKind::Lead, "L1")
                }),
                true,
                &[],
                false,
                true,
            ),
        ),
        (
            "hubspot change on an unknown record",
            None,
            None,
            hs_change.clone(),
            hs(),
            outcome(Some(hs_new.clone()), true, &[], true, true),
        ),
        (
            "hubspot change on a known record",
            Some(Record::new(ObjectKind::Account, "A1")),
            None,
            hs_change.clone(),
            hs(),
            outcome(Some(hs_new), true, &[], true, false),
        ),
        (
            "event for another record",
            Some(known()),
            None,
            hs_change,
            hs(),
            outcome(Some(known()), false, &[], false, false),
        ),
        (
            "overflow resyncs",
            None,
            None,
            event(
                Crm::Salesforce,
                "o",
                ObjectKind::Lead,
                None,
                ChangeKind::Overflow,
            ),
            sf(),
            outcome(None, false, &[], false, true),
        ),
    ]
}

#[test]
fn merge_cases() {
    for (name, record, last, event, map, expected) in cases() {
        assert_eq!(merge(record, last, &event, &map), expected, "{name}");
    }
}

#[test]
fn events_applied_in_any_order_end_newest() {
    let map = FieldMap::salesforce_default();
    let older = sf_update(100, 1, &[("Country", s("FR"))]);
    let newer = sf_update(200, 1, &[("Country", s("DE"))]);
    for order in [[&older, &newer], [&newer, &older]] {
        let (mut record, mut last) = (None, None);
        for e in order {
            let out = merge(record, last, e, &map);
            if out.applied {
                last = Some(e.order_key());
            }
            record = out.record;
        }
        assert_eq!(record.unwrap().field("country"), Some(&s("DE")));
    }
}
