use allot_core::Crm;
use allot_crm::RecordError;

use super::*;

fn policy() -> Policy {
    Policy {
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
        max_attempts: 3,
        quota_pause_ms: 900_000,
        auth_pause_ms: 60_000,
    }
}

fn run(errors: &[u32], result: Result<Vec<RecordResult>, CrmError>) -> Settlement {
    let ids: Vec<String> = (0..errors.len()).map(|i| format!("r{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    settle(&policy(), &ids, errors, &result, &mut Jitter::new(7))
}

fn failure(id: &str, code: &str, message: &str) -> RecordResult {
    RecordResult::failure(id, RecordError::from_code(code, message))
}

#[test]
fn per_record_results_become_verdicts() {
    let s = run(
        &[0, 0, 0, 0, 2],
        Ok(vec![
            RecordResult::success("r0"),
            failure("r1", "INACTIVE_OWNER_OR_USER", "inactive user"),
            failure(
                "r2",
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
            ),
            failure("r3", "UNABLE_TO_LOCK_ROW", "locked"),
            failure("r4", "UNABLE_TO_LOCK_ROW", "locked"),
        ]),
    );
    assert_eq!(s.outcome, "partial");
    assert_eq!(s.pause, None);
    assert_eq!(s.verdicts[0], Verdict::Done);
    assert_eq!(
        s.verdicts[1],
        Verdict::Fail {
            reason: "INACTIVE_OWNER_OR_USER: inactive user".into(),
            label: "inactive_owner",
            reroute: true,
        }
    );
    assert_eq!(
        s.verdicts[2],
        Verdict::Fail {
            reason: "INVALID_CROSS_REFERENCE_KEY: invalid cross reference id".into(),
            label: "invalid_reference",
            reroute: false,
        }
    );
    assert!(
        matches!(&s.verdicts[3], Verdict::Retry { after_ms, counts: true, .. } if (50..=100).contains(after_ms))
    );
    assert!(
        matches!(&s.verdicts[4], Verdict::Fail { label: "gave_up", reason, .. } if reason.starts_with("gave up after 3 attempts: UNABLE_TO_LOCK_ROW"))
    );
}

#[test]
fn missing_or_misplaced_results_are_retried() {
    let s = run(&[0, 0], Ok(vec![RecordResult::success("zz")]));
    assert_eq!(s.outcome, "partial");
    assert!(s
        .verdicts
        .iter()
        .all(|v| matches!(v, Verdict::Retry { counts: true, .. })));
}

/// (error, outcome, pause, counts (None = fail), fence)
type Case = (
    CrmError,
    &'static str,
    Option<(u64, PauseReason)>,
    Option<bool>,
    bool,
);

#[test]
fn whole_call_errors_pause_retry_or_fail() {
    let sf = Crm::Salesforce;
    let e = |s: &str| s.to_string();
    let cases: Vec<Case> = vec![
        (
            CrmError::QuotaExhausted {
                crm: sf,
                endpoint: e("x"),
                message: e("TotalRequests Limit exceeded."),
            },
            "quota_exhausted",
            Some((900_000, PauseReason::QuotaExhausted)),
            Some(false),
            false,
        ),
        (
            CrmError::RateLimited {
                crm: Crm::Hubspot,
                endpoint: e("x"),
                policy: e("TEN_SECONDLY_ROLLING"),
                retry_after: Some(Duration::from_secs(2)),
                message: e("m"),
            },
            "rate_limited",
            Some((2_000, PauseReason::RateLimited)),
            Some(false),
            false,
        ),
        (
            CrmError::RateLimited {
                crm: Crm::Hubspot,
                endpoint: e("x"),
                policy: e("DAILY"),
                retry_after: None,
                message: e("m"),
            },
            "quota_exhausted",
            Some((900_000, PauseReason::QuotaExhausted)),
            Some(false),
            false,
        ),
        (
            CrmError::Auth {
                crm: sf,
                endpoint: e("x"),
                status: Some(400),
                message: e("m"),
            },
            "auth",
            Some((60_000, PauseReason::Auth)),
            Some(false),
            false,
        ),
        (
            CrmError::Transport {
                crm: sf,
                endpoint: e("x"),
                message: e("m"),
                timeout: true,
            },
            "transport",
            None,
            Some(true),
            true,
        ),
        (
            CrmError::Api {
                crm: sf,
                endpoint: e("x"),
                status: 503,
                code: e(""),
                message: e("m"),
                retry_after: None,
            },
            "error",
            None,
            Some(true),
            false,
        ),
        (
            CrmError::Api {
                crm: sf,
                endpoint: e("x"),
                status: 400,
                code: e("MALFORMED"),
                message: e("m"),
                retry_after: None,
            },
            "rejected",
            None,
            None,
            false,
        ),
    ];
    for (err, outcome, pause, counts, fence) in cases {
        let text = err.to_string();
        let s = run(&[0, 1], Err(err));
        assert_eq!(
            (s.outcome, s.pause, s.fence),
            (outcome, pause, fence),
            "{text}"
        );
        for v in &s.verdicts {
            match (v, counts) {
                (
                    Verdict::Retry {
                        counts: c, reason, ..
                    },
                    Some(want),
                ) => {
                    assert_eq!((*c, reason.as_str()), (want, text.as_str()));
                }
                (
                    Verdict::Fail {
                        label: "rejected",
                        reason,
                        ..
                    },
                    None,
                ) => assert_eq!(reason, &text),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}

#[test]
fn rate_limit_waits_are_at_least_retry_after_and_do_not_count() {
    let err = CrmError::RateLimited {
        crm: Crm::Hubspot,
        endpoint: "x".into(),
        policy: "TEN_SECONDLY_ROLLING".into(),
        retry_after: Some(Duration::from_secs(1)),
        message: "m".into(),
    };
    // Even at the attempt limit a rate limit is waited out, not given up on.
    let s = run(&[5], Err(err));
    assert!(matches!(
        &s.verdicts[0],
        Verdict::Retry {
            after_ms: 1_000,
            counts: false,
            ..
        }
    ));
}

#[test]
fn jitter_is_deterministic_per_seed() {
    let draw = |seed| {
        let mut j = Jitter::new(seed);
        (0..4).map(|_| j.next()).collect::<Vec<_>>()
    };
    assert_eq!(draw(1), draw(1));
    assert_ne!(draw(1), draw(2));
}
