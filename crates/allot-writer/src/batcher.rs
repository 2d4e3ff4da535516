//! Pure batching: route each change to its CRM, coalesce per record (the
//! newest decision wins), group by (CRM, object kind), split by the CRM's
//! batch limit, and say which batches are ready: full, or lingered long
//! enough, or retries that are due.

use std::collections::{BTreeMap, HashMap};

use allot_core::{Crm, ObjectKind, OwnerChange};
use allot_store::{OutboxEntry, OutboxKey, OutboxState};

/// A change the writer may send now.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub entry: OutboxEntry,
    /// When the writer first saw it (monotonic ms); linger counts from here.
    /// Retries use 0: they have waited already.
    pub seen_at: u64,
    /// Failed attempts so far in this process (rate limits excluded).
    pub errors: u32,
    /// Whether it is a retry held in memory (in flight in the store).
    pub retry: bool,
}

impl Candidate {
    pub fn key(&self) -> OutboxKey {
        OutboxKey::of(&self.entry.change)
    }

    /// Whether the CRM may already show the owner this change asks for:
    /// the engine thought the record had it already, or an attempt was made
    /// before a restart (pending again with attempts made) and may have landed.
    pub fn worth_reading(&self) -> bool {
        let c = &self.entry.change;
        c.previous_owner.as_deref() == Some(c.owner.as_str()) || self.restarted()
    }

    /// Whether an attempt was made before a restart (or a lost lease): the
    /// entry is pending again with attempts made, and not a retry of this run.
    pub fn restarted(&self) -> bool {
        !self.retry && self.entry.state == OutboxState::Pending && self.entry.attempts > 0
    }
}

/// Records of one kind for one CRM, to send in one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub crm: Crm,
    pub object: ObjectKind,
    pub items: Vec<Candidate>,
}

impl Planned {
    /// How many records to read before the write (batched reads of the
    /// records worth reading), or 0: when every record is worth reading, a
    /// read may replace the write; when some were sent before a restart,
    /// reading them first keeps a write that landed from being made twice.
    pub fn reads(&self) -> usize {
        let worth = self.items.iter().filter(|c| c.worth_reading()).count();
        let restarted = self.items.iter().any(Candidate::restarted);
        if worth == self.items.len() || restarted {
            worth
        } else {
            0
        }
    }
}

/// What can be sent now, and when to look again.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Ready batches, the one holding the longest-waiting change first.
    pub ready: Vec<Planned>,
    /// When the earliest partial batch stops lingering.
    pub next_due: Option<u64>,
    /// Changes no configured client can write (held, not failed).
    pub unrouted: usize,
}

/// The CRM a change goes to, among those with a client: the one it names,
/// or the only one configured when it names none.
pub fn route(change: &OwnerChange, available: &[Crm]) -> Option<Crm> {
    match change.crm {
        Some(crm) => available.contains(&crm).then_some(crm),
        None => match available {
            [only] => Some(*only),
            _ => None,
        },
    }
}

/// Keeps the newest decision per record; on a tie the first one seen.
pub fn coalesce(candidates: Vec<Candidate>) -> Vec<Candidate> {
    let mut order: Vec<OutboxKey> = Vec::new();
    let mut newest: HashMap<OutboxKey, Candidate> = HashMap::new();
    for c in candidates {
        let key = c.key();
        match newest.get(&key) {
            Some(old) if old.entry.change.decided_at >= c.entry.change.decided_at => {}
            Some(_) => {
                newest.insert(key, c);
            }
            None => {
                order.push(key.clone());
                newest.insert(key, c);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|k| newest.remove(&k))
        .collect()
}

/// Groups coalesced candidates into batches of at most `max_batch(crm)`.
/// A group's full batches are ready; its last partial one once its oldest
/// change has waited `linger_ms`, or at once when it holds a retry or when
/// `flush`.
pub fn plan(
    candidates: Vec<Candidate>,
    max_batch: impl Fn(Crm) -> Option<usize>,
    linger_ms: u64,
    now: u64,
    flush: bool,
) -> Plan {
    let available: Vec<Crm> = [Crm::Salesforce, Crm::Hubspot, Crm::Native]
        .into_iter()
        .filter(|c| max_batch(*c).is_some())
        .collect();
    let mut groups: BTreeMap<(u8, ObjectKind), (Crm, Vec<Candidate>)> = BTreeMap::new();
    let mut out = Plan::default();
    for c in coalesce(candidates) {
        let Some(crm) = route(&c.entry.change, &available) else {
            out.unrouted += 1;
            continue;
        };
        groups
            .entry((crm_rank(crm), c.entry.change.object))
            .or_insert_with(|| (crm, Vec::new()))
            .1
            .push(c);
    }
    for ((_, object), (crm, mut items)) in groups {
        let max = max_batch(crm).unwrap_or(1).max(1);
        items.sort_by_key(|c| (c.seen_at, c.entry.change.decided_at));
        let mut rest = items.as_slice();
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(max));
            rest = tail;
            let oldest = chunk.iter().map(|c| c.seen_at).min().unwrap_or(now);
            let due = oldest.saturating_add(linger_ms);
            let retry = chunk.iter().any(|c| c.retry);
            if chunk.len() == max || flush || retry || due <= now {
                out.ready.push(Planned {
                    crm,
                    object,
                    items: chunk.to_vec(),
                });
            } else {
                out.next_due = Some(out.next_due.map_or(due, |d| d.min(due)));
            }
        }
    }
    out.ready
        .sort_by_key(|p| p.items.iter().map(|c| c.seen_at).min().unwrap_or(u64::MAX));
    out
}

fn crm_rank(crm: Crm) -> u8 {
    match crm {
        Crm::Salesforce => 0,
        Crm::Hubspot => 1,
        Crm::Native => 2,
    }
}

#[cfg(test)]
#[path = "batcher_tests.rs"]
mod tests;
