//! Pure pacing helpers for callers that send to a CRM: a token bucket and an
//! exponential backoff. Neither reads a clock nor draws random numbers: time
//! and randomness are arguments, so the writer's tests are exact.

use std::time::Duration;

/// A token bucket: at most `capacity` calls in a burst, refilled continuously
/// at `refill_per_sec` tokens per second.
///
/// Time is epoch (or any monotonic) milliseconds passed by the caller. A clock
/// that goes backwards refills nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    refill_per_ms: f64,
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(capacity: u32, refill_per_sec: f64, now_ms: u64) -> TokenBucket {
        let capacity = f64::from(capacity);
        TokenBucket {
            capacity,
            refill_per_ms: refill_per_sec.max(0.0) / 1000.0,
            tokens: capacity,
            last_ms: now_ms,
        }
    }

    /// A bucket that lets through `max_calls` per `interval_ms` on average, with
    /// bursts of up to `max_calls`: the shape of HubSpot's rolling window.
    pub fn per_interval(max_calls: u32, interval_ms: u64, now_ms: u64) -> TokenBucket {
        let per_sec = if interval_ms == 0 {
            0.0
        } else {
            f64::from(max_calls) * 1000.0 / interval_ms as f64
        };
        TokenBucket::new(max_calls, per_sec, now_ms)
    }

    /// Takes one token, or says how many milliseconds to wait until one is there.
    pub fn try_take(&mut self, now_ms: u64) -> Result<(), u64> {
        self.try_take_n(1, now_ms)
    }

    /// Takes `n` tokens at once, or says how long until `n` are there. Asking for
    /// more than the capacity can never succeed and answers `u64::MAX`.
    pub fn try_take_n(&mut self, n: u32, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        let want = f64::from(n);
        if want > self.capacity {
            return Err(u64::MAX);
        }
        // A tiny epsilon absorbs float error from many small refills.
        if self.tokens + 1e-9 >= want {
            self.tokens = (self.tokens - want).max(0.0);
            return Ok(());
        }
        if self.refill_per_ms <= 0.0 {
            return Err(u64::MAX);
        }
        let wait = ((want - self.tokens) / self.refill_per_ms).ceil();
        Err((wait as u64).max(1))
    }

    /// Tokens available at `now_ms` (whole tokens, rounded down).
    pub fn available(&mut self, now_ms: u64) -> u32 {
        self.refill(now_ms);
        (self.tokens + 1e-9).floor() as u32
    }

    fn refill(&mut self, now_ms: u64) {
        if now_ms > self.last_ms {
            let elapsed = (now_ms - self.last_ms) as f64;
            self.tokens = (self.tokens + elapsed * self.refill_per_ms).min(self.capacity);
            self.last_ms = now_ms;
        }
    }
}

/// Exponential backoff with "equal jitter": attempt `n` waits between half and
/// all of `min(max, base * 2^n)`. The jitter comes from a random `u64` the
/// caller draws, so a seeded caller gets the same delays every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry's delay.
    pub base: Duration,
    /// No delay exceeds this.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff { base, max }
    }

    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let cap = self.ceiling(attempt).as_millis() as u64;
        let half = cap / 2;
        let jitter = random % (cap - half + 1);
        Duration::from_millis(half + jitter)
    }

    /// Like [`Backoff::delay`] but never shorter than what the CRM asked for
    /// (`Retry-After`), which may exceed `max`.
    pub fn delay_at_least(
        &self,
        attempt: u32,
        random: u64,
        retry_after: Option<Duration>,
    ) -> Duration {
        let d = self.delay(attempt, random);
        retry_after.map_or(d, |r| d.max(r))
    }

    /// `min(max, base * 2^attempt)` without overflow.
    fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_waits_for_refill() {
        // capacity 3, 1 token per second
        let mut b = TokenBucket::new(3, 1.0, 1_000);
        let steps: [(u64, Result<(), u64>); 7] = [
            (1_000, Ok(())),
            (1_000, Ok(())),
            (1_000, Ok(())),
            (1_000, Err(1_000)),
            (1_400, Err(600)),
            (2_000, Ok(())),
            (2_000, Err(1_000)),
        ];
        for (i, (now, want)) in steps.into_iter().enumerate() {
            assert_eq!(b.try_take(now), want, "step {i} at {now}");
        }
    }

    #[test]
    fn bucket_never_exceeds_capacity_and_ignores_backwards_time() {
        let mut b = TokenBucket::new(2, 10.0, 0);
        assert_eq!(b.available(60_000), 2);
        assert_eq!(b.try_take_n(2, 60_000), Ok(()));
        assert_eq!(b.try_take(59_000), Err(100));
        assert_eq!(b.try_take_n(3, 60_000), Err(u64::MAX));
    }

    #[test]
    fn bucket_per_interval_matches_hubspot_windows() {
        let cases = [(100, 10_000, 100), (190, 10_000, 190)];
        for (max, interval, burst) in cases {
            let mut b = TokenBucket::per_interval(max, interval, 0);
            let taken = (0..1_000).filter(|_| b.try_take(0).is_ok()).count();
            assert_eq!(taken, burst);
            // Over one whole further interval, exactly `max` more calls fit.
            let later = (1..=interval).filter(|t| b.try_take(*t).is_ok()).count();
            assert_eq!(later as u32, max, "{max}/{interval}");
        }
    }

    #[test]
    fn bucket_without_refill_waits_forever() {
        let mut b = TokenBucket::new(1, 0.0, 0);
        assert_eq!(b.try_take(0), Ok(()));
        assert_eq!(b.try_take(1_000_000), Err(u64::MAX));
    }

    #[test]
    fn backoff_grows_exponentially_within_jitter_bounds() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        // (attempt, lower bound ms, upper bound ms)
        let cases = [
            (0, 50, 100),
            (1, 100, 200),
            (2, 200, 400),
            (4, 800, 1_600),
            (5, 1_000, 2_000),
            (40, 1_000, 2_000),
        ];
        for (attempt, lo, hi) in cases {
            for random in [0, 1, 7, 12_345, u64::MAX] {
                let d = b.delay(attempt, random).as_millis() as u64;
                assert!(
                    (lo..=hi).contains(&d),
                    "attempt {attempt} random {random}: {d}"
                );
            }
            assert_eq!(b.delay(attempt, 0).as_millis() as u64, lo);
        }
    }

    #[test]
    fn backoff_is_deterministic_and_honours_retry_after() {
        let b = Backoff::default();
        assert_eq!(b.delay(3, 99), b.delay(3, 99));
        let cases = [
            (None, b.delay(0, 5)),
            (Some(Duration::from_secs(10)), Duration::from_secs(10)),
            (Some(Duration::from_millis(1)), b.delay(0, 5)),
        ];
        for (retry_after, want) in cases {
            assert_eq!(b.delay_at_least(0, 5, retry_after), want, "{retry_after:?}");
        }
    }

    #[test]
    fn backoff_with_zero_base_never_waits() {
        let b = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(b.delay(10, u64::MAX), Duration::ZERO);
    }
}
