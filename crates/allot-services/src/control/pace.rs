//! Pacing of background work by (given) time.

use allot_core::Millis;

/// Grants work at `rate` items per second of (given) time, at most one
/// second's worth at once, so a stall never turns into a burst.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: u32,
    tokens: f64,
    last: Option<Millis>,
}

impl Pacer {
    pub fn new(rate_per_sec: u32) -> Pacer {
        Pacer {
            rate: rate_per_sec.max(1),
            tokens: 0.0,
            last: None,
        }
    }

    /// Items allowed now.
    pub fn grant(&mut self, now: Millis) -> usize {
        let last = *self.last.get_or_insert(now);
        let elapsed = (now - last).max(0) as f64 / 1000.0;
        self.last = Some(now);
        let rate = f64::from(self.rate);
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        let n = self.tokens.floor();
        self.tokens -= n;
        n as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_grants_the_rate_and_never_bursts() {
        let mut p = Pacer::new(200);
        let cases: [(Millis, usize); 6] = [
            (1_000, 0),
            (1_500, 100),
            (1_505, 1),
            (2_505, 200),
            (60_000, 200),
            (60_000, 0),
        ];
        for (now, want) in cases {
            assert_eq!(p.grant(now), want, "at {now}");
        }
    }
}
