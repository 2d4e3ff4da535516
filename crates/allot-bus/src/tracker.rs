//! Which offsets may be committed, and which partitions must wait: pure
//! bookkeeping, no I/O, decided per partition from deliveries and acks.
//!
//! A consumer may process deliveries out of order (several in flight, retried,
//! finished by different tasks), but a Kafka commit is one number per
//! partition meaning "everything before this is done". So the tracker keeps the
//! offsets handed out and not yet covered by a commit, and exposes only the
//! contiguous acked prefix: with 3, 4 and 5 handed out, acking 5 and 3 makes 3
//! the prefix (commit 4); acking 4 then moves it to 5 (commit 6).
//!
//! Contiguity is over the offsets actually handed out, not over integers:
//! Kafka offsets have gaps (compaction, control records), and a gap must not
//! hold back the commit.

use std::collections::BTreeMap;

/// What the source must do with a partition's fetching after a delivery or an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Nothing changes.
    Continue,
    /// The window is full: stop fetching this partition.
    Pause,
    /// The window has drained to half: fetch again.
    Resume,
}

/// The result of an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// The next offset to consume, to be stored and committed, when the acked
    /// prefix moved (the prefix + 1); `None` when it did not.
    pub commit: Option<i64>,
    /// Whether the partition can be resumed.
    pub flow: Flow,
}

/// One partition's deliveries that are not yet covered by a commit.
#[derive(Debug, Default, Clone)]
struct Window {
    /// Offset → acked, for every offset handed out after the prefix.
    pending: BTreeMap<i64, bool>,
    /// Highest offset such that it and every offset handed out before it are acked.
    prefix: Option<i64>,
    /// Whether the source paused fetching of this partition.
    paused: bool,
}

/// Per-partition offsets handed out and acked, and the pause decisions that
/// bound them. Keyed by topic, then partition, so lookups need no allocation.
#[derive(Debug, Clone)]
pub struct OffsetTracker {
    /// A partition pauses when this many deliveries are not yet committable.
    max_in_flight: usize,
    partitions: BTreeMap<String, BTreeMap<i32, Window>>,
}

impl OffsetTracker {
    /// A tracker that pauses a partition at `max_in_flight` uncommittable
    /// deliveries and resumes it at half of that (at least 1 is allowed).
    pub fn new(max_in_flight: usize) -> OffsetTracker {
        OffsetTracker {
            max_in_flight: max_in_flight.max(1),
            partitions: BTreeMap::new(),
        }
    }

    /// Records that `offset` was handed to the caller. The window counts
    /// deliveries not yet committable: unacked ones and acked ones behind an
    /// unacked one. Bounding that (not only the unacked) also bounds how much
    /// is delivered again after a crash.
    pub fn delivered(&mut self, topic: &str, partition: i32, offset: i64) -> Flow {
        let max = self.max_in_flight;
        let window = self.window_mut(topic, partition);
        if window.prefix.is_some_and(|p| offset <= p) {
            // Redelivered below the prefix (a seek or a reset): already done.
            return Flow::Continue;
        }
        window.pending.entry(offset).or_insert(false);
        if !window.paused && window.pending.len() >= max {
            window.paused = true;
            Flow::Pause
        } else {
            Flow::Continue
        }
    }

    /// Records that the effects of `offset` are durable. Acks of offsets not
    /// handed out in the current assignment (before a rebalance) and repeated
    /// acks change nothing.
    pub fn ack(&mut self, topic: &str, partition: i32, offset: i64) -> Acked {
        let max = self.max_in_flight;
        let unchanged = Acked {
            commit: None,
            flow: Flow::Continue,
        };
        let Some(window) = self
            .partitions
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition))
        else {
            return unchanged;
        };
        match window.pending.get_mut(&offset) {
            Some(acked) => *acked = true,
            None => return unchanged,
        }
        let mut moved = false;
        while let Some(entry) = window.pending.first_entry() {
            if !*entry.get() {
                break;
            }
            window.prefix = Some(*entry.key());
            entry.remove();
            moved = true;
        }
        let flow = if window.paused && window.pending.len() <= max / 2 {
            window.paused = false;
            Flow::Resume
        } else {
            Flow::Continue
        };
        Acked {
            commit: if moved {
                window.prefix.map(|p| p + 1)
            } else {
                None
            },
            flow,
        }
    }

    /// The highest acked offset with everything handed out before it acked.
    pub fn prefix(&self, topic: &str, partition: i32) -> Option<i64> {
        self.window(topic, partition).and_then(|w| w.prefix)
    }

    /// Deliveries of a partition not yet committable.
    pub fn in_flight(&self, topic: &str, partition: i32) -> usize {
        self.window(topic, partition).map_or(0, |w| w.pending.len())
    }

    /// Whether the tracker decided to pause the partition.
    pub fn paused(&self, topic: &str, partition: i32) -> bool {
        self.window(topic, partition).is_some_and(|w| w.paused)
    }

    /// The offsets to commit, `(topic, partition, prefix + 1)`, for every
    /// partition with an acked prefix.
    pub fn commits(&self) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for (topic, partitions) in &self.partitions {
            for (partition, window) in partitions {
                if let Some(prefix) = window.prefix {
                    out.push((topic.clone(), *partition, prefix + 1));
                }
            }
        }
        out
    }

    /// Forgets revoked partitions and returns the offsets to commit for them
    /// before they go: a new owner starts from the acked prefix.
    pub fn revoke(&mut self, revoked: &[(String, i32)]) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for (topic, partition) in revoked {
            let Some(partitions) = self.partitions.get_mut(topic) else {
                continue;
            };
            if let Some(prefix) = partitions.remove(partition).and_then(|w| w.prefix) {
                out.push((topic.clone(), *partition, prefix + 1));
            }
            if partitions.is_empty() {
                self.partitions.remove(topic);
            }
        }
        out
    }

    /// Starts assigned partitions afresh: what was handed out before belongs
    /// to an older assignment and is delivered again from the committed offset.
    pub fn assign(&mut self, assigned: &[(String, i32)]) {
        for (topic, partition) in assigned {
            self.partitions
                .entry(topic.clone())
                .or_default()
                .insert(*partition, Window::default());
        }
    }

    fn window(&self, topic: &str, partition: i32) -> Option<&Window> {
        self.partitions.get(topic).and_then(|p| p.get(&partition))
    }

    fn window_mut(&mut self, topic: &str, partition: i32) -> &mut Window {
        self.partitions
            .entry(topic.to_string())
            .or_default()
            .entry(partition)
            .or_default()
    }
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
