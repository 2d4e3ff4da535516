//! At start: the reps of the rule set checked against the CRMs' users, so a
//! typo'd or deactivated owner id is reported before records are routed to it.

use allot_crm::CrmClient;
use allot_rules::RuleSet;
use tracing::{info, warn};

/// What the CRMs say about one rep id: `Some(active)` when some CRM knows it.
pub fn crm_status(users: &[(String, bool)], rep: &str) -> Option<bool> {
    let mut found = None;
    for (id, active) in users {
        if id == rep {
            found = Some(found.unwrap_or(false) || *active);
        }
    }
    found
}

/// Problems, as log-ready lines: unknown to every CRM, or inactive there but active in the rules.
pub fn problems(rules: &RuleSet, users: &[(String, bool)]) -> Vec<String> {
    rules
        .reps
        .iter()
        .filter_map(|r| match crm_status(users, &r.id) {
            None => Some(format!(
                "rep {} ({}) is not a user of any connected CRM",
                r.id,
                r.name.as_deref().unwrap_or("no name")
            )),
            Some(false) if r.active => Some(format!(
                "rep {} ({}) is active in the rules but inactive in the CRM",
                r.id,
                r.name.as_deref().unwrap_or("no name")
            )),
            _ => None,
        })
        .collect()
}

/// Fetches every CRM's users and logs the problems; a CRM that cannot be
/// asked is reported and skipped (routing still starts).
pub async fn check(rules: &RuleSet, clients: &[CrmClient]) {
    let mut users = Vec::new();
    let mut asked = 0;
    for c in clients {
        match c.users().await {
            Ok(list) => {
                asked += 1;
                users.extend(list.into_iter().map(|u| (u.id, u.active)));
            }
            Err(e) => {
                warn!(crm = %c.crm(), error = %e, "cannot list crm users to check the rules' reps")
            }
        }
    }
    if asked == 0 {
        return;
    }
    let found = problems(rules, &users);
    for p in &found {
        warn!(problem = %p, "rules and crm disagree");
    }
    info!(
        reps = rules.reps.len(),
        crms = asked,
        problems = found.len(),
        "reps checked against crm users"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_unknown_and_inactive_reps() {
        let rules = RuleSet::from_toml(
            "[[reps]]\nid = \"a\"\n[[reps]]\nid = \"b\"\n[[reps]]\nid = \"c\"\n[[reps]]\nid = \"d\"\nactive = false\n",
            "r",
        )
        .unwrap();
        let users = vec![
            ("a".to_string(), true),
            ("b".to_string(), false),
            ("d".to_string(), false),
        ];
        let got = problems(&rules, &users);
        assert_eq!(
            got,
            vec![
                "rep b (no name) is active in the rules but inactive in the CRM",
                "rep c (no name) is not a user of any connected CRM"
            ]
        );
    }
}
