//! The writer's memory between passes: which records are in a call, which
//! wait for a retry, when each pending change was first seen, and which
//! records are fenced because an older write to them may still land.
//!
//! No I/O; time is monotonic milliseconds passed in.

use std::collections::HashMap;

use allot_core::Millis;
use allot_store::{OutboxEntry, OutboxKey, OutboxState};

use super::batcher::Candidate;

/// A change waiting to be sent again (in flight in the store meanwhile).
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub cand: Candidate,
    pub due: u64,
}

/// Until `until`, only the decision `allow` may be written to the record:
/// an older write of it may still land, and a newer decision written
/// meanwhile could be overwritten by it.
///
/// A fence does not always last until `until`: when the owner that older
/// write sets is known (`landed`), the writer reads the record (a probe,
/// batched, at most every [`PROBE_EVERY_MS`]); once the CRM shows that
/// owner the write has landed, cannot land again, and the fence is lifted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub until: u64,
    pub allow: Option<Millis>,
    /// The owner the older write sets, when known.
    pub landed: Option<String>,
    /// When the record may be probed next.
    pub probe_at: u64,
}

/// How long a probe that did not lift a fence waits before the next one.
pub const PROBE_EVERY_MS: u64 = 2_000;

/// What a pass may send.
#[derive(Debug, Default, PartialEq)]
pub struct Selection {
    pub cands: Vec<Candidate>,
    /// Changes held back (record in a call or fenced).
    pub held: usize,
    /// Held changes whose fence a read of the record may lift now (each is
    /// not offered again before [`PROBE_EVERY_MS`]).
    pub probe: Vec<OutboxEntry>,
    /// When a held change or a retry becomes sendable, if before the next poll.
    pub wake: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Book {
    /// Records in a call now, with the decision sent.
    calling: HashMap<OutboxKey, Millis>,
    retries: HashMap<OutboxKey, Retry>,
    seen: HashMap<OutboxKey, u64>,
    fences: HashMap<OutboxKey, Fence>,
}

fn earliest(a: Option<u64>, b: u64) -> Option<u64> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Book {
    /// Fences what a previous run may have left in the CRM's hands: entries
    /// requeued from in flight (attempts made, pending again) may be sent
    /// again as they are; entries that replaced an in-flight change wait.
    pub fn fence_restart(&mut self, open: &[OutboxEntry], until: u64) -> usize {
        let mut n = 0;
        for e in open {
            let requeued = e.state == OutboxState::Pending && e.attempts > 0;
            let replaced = e.superseded.as_ref().is_some_and(|s| s.was_in_flight);
            let (allow, landed) = match (requeued, replaced) {
                (_, true) => (
                    None,
                    e.superseded
                        .as_ref()
                        .and_then(|s| s.in_flight_owner.clone()),
                ),
                (true, false) => (Some(e.change.decided_at), Some(e.change.owner.clone())),
                (false, false) => continue,
            };
            let fence = Fence {
                until,
                allow,
                landed,
                probe_at: 0,
            };
            self.fences.insert(OutboxKey::of(&e.change), fence);
            n += 1;
        }
        n
    }

    /// Fences a record whose call got no answer: the decision `decided_at`,
    /// setting `owner`, may still land.
    pub fn fence(&mut self, key: OutboxKey, decided_at: Millis, owner: &str, until: u64) {
        let until = self.fences.get(&key).map_or(until, |f| f.until.max(until));
        self.fences.insert(
            key,
            Fence {
                until,
                allow: Some(decided_at),
                landed: Some(owner.to_string()),
                probe_at: 0,
            },
        );
    }

    /// What a probe found: `current` is the owner the CRM shows for the
    /// record (`None`: missing, or not read). Lifts the fence when it is the
    /// owner of the write that was feared to land late.
    pub fn probed(&mut self, key: &OutboxKey, current: Option<&str>) -> bool {
        let landed = self
            .fences
            .get(key)
            .is_some_and(|f| f.landed.is_some() && f.landed.as_deref() == current);
        if landed {
            self.fences.remove(key);
        }
        landed
    }

    fn fenced(&self, key: &OutboxKey, decided_at: Millis, now: u64) -> Option<u64> {
        self.fences
            .get(key)
            .filter(|f| f.until > now && f.allow != Some(decided_at))
            .map(|f| f.until)
    }

    /// Offers `entry` for a probe if its fence can be lifted by one.
    fn offer_probe(&mut self, key: &OutboxKey, entry: &OutboxEntry, now: u64, out: &mut Selection) {
        let Some(f) = self.fences.get_mut(key).filter(|f| f.landed.is_some()) else {
            return;
        };
        if f.probe_at <= now {
            f.probe_at = now + PROBE_EVERY_MS;
            out.probe.push(entry.clone());
        }
        out.wake = earliest(out.wake, f.probe_at.min(f.until));
    }

    /// Turns the pending entries just read, and the retries that are due,
    /// into candidates; holds back records in a call or fenced.
    pub fn select(&mut self, pending: Vec<OutboxEntry>, now: u64) -> Selection {
        self.fences.retain(|_, f| f.until > now);
        let mut out = Selection::default();
        let mut seen = HashMap::with_capacity(pending.len());
        for entry in pending {
            let key = OutboxKey::of(&entry.change);
            let decided_at = entry.change.decided_at;
            if self
                .retries
                .get(&key)
                .is_some_and(|r| r.cand.entry.change.decided_at < decided_at)
            {
                self.retries.remove(&key);
            }
            let seen_at = self.seen.get(&key).copied().unwrap_or(now);
            seen.insert(key.clone(), seen_at);
            if self.calling.contains_key(&key) {
                out.held += 1;
                continue;
            }
            if let Some(until) = self.fenced(&key, decided_at, now) {
                out.held += 1;
                out.wake = earliest(out.wake, until);
                self.offer_probe(&key, &entry, now, &mut out);
                continue;
            }
            out.cands.push(Candidate {
                entry,
                seen_at,
                errors: 0,
                retry: false,
            });
        }
        self.seen = seen;
        for (key, r) in &self.retries {
            let decided_at = r.cand.entry.change.decided_at;
            if self.calling.contains_key(key) {
                continue;
            }
            match self.fenced(key, decided_at, now) {
                Some(until) => out.wake = earliest(out.wake, until.max(r.due)),
                None if r.due <= now => out.cands.push(r.cand.clone()),
                None => out.wake = earliest(out.wake, r.due),
            }
        }
        out
    }

    /// Notes that `items` are being sent.
    pub fn launch(&mut self, items: &[Candidate]) {
        for c in items {
            let key = c.key();
            self.retries.remove(&key);
            self.seen.remove(&key);
            self.calling.insert(key, c.entry.change.decided_at);
        }
    }

    /// Notes that the call holding `items` is over.
    pub fn release(&mut self, items: &[Candidate]) {
        for c in items {
            let key = c.key();
            if self.calling.get(&key) == Some(&c.entry.change.decided_at) {
                self.calling.remove(&key);
            }
        }
    }

    /// Schedules `cand` to be sent again at `due`.
    pub fn retry(&mut self, mut cand: Candidate, due: u64) {
        cand.retry = true;
        cand.seen_at = 0;
        self.retries.insert(cand.key(), Retry { cand, due });
    }

    /// Records in a call now.
    pub fn calling(&self) -> usize {
        self.calling.len()
    }

    /// Changes waiting for a retry.
    pub fn retrying(&self) -> usize {
        self.retries.len()
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;
