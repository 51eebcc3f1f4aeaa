//! The one backoff of the project: exponential from `min` to `max`, with
//! jitter so that many clients (or hub instances) do not retry in lockstep.
//! Reconnects to the broker use it, and so does the hub for its database.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub const fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max }
    }

    /// How long to wait before attempt `attempt + 1` (the first retry is
    /// attempt 0): `min · 2^attempt`, at most `max`, times a random factor in
    /// [0.5, 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = self
            .min
            .saturating_mul(2u32.saturating_pow(attempt.min(20)));
        doubled.min(self.max).mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_below_them() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        for (attempt, ceiling_ms) in [(0, 100), (1, 200), (3, 800), (6, 5_000), (30, 5_000)] {
            let d = b.delay(attempt);
            let ceiling = Duration::from_millis(ceiling_ms);
            assert!(d <= ceiling && d >= ceiling / 2, "attempt {attempt}: {d:?}");
        }
    }
}
