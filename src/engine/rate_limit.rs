//! Per-identity command rate limit, checked by adapters on the ack path
//! before anything is stored: one identity typing a command 1,000 times
//! must not queue 1,000 executions and posts ahead of everyone else.
//! A token bucket per wire identity (governor): `per_minute` sustained,
//! `burst` at once. Kept in memory, per instance.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Forget identities idle long enough to have a full bucket again, every
/// this many checks (the map would otherwise grow with every identity seen).
const SWEEP_EVERY: u64 = 4096;

#[derive(Clone)]
pub struct ActorRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    checks: Arc<AtomicU64>,
    per_minute: u32,
}

impl ActorRateLimit {
    /// `per_minute` commands per minute sustained, `burst` at once (both ≥ 1).
    pub fn new(per_minute: u32, burst: u32) -> ActorRateLimit {
        let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(nz(per_minute)).allow_burst(nz(burst));
        ActorRateLimit {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            checks: Arc::default(),
            per_minute,
        }
    }

    /// Takes one command from `actor`'s bucket; `Err(wait)` when it is
    /// empty, with how long until the next command is allowed.
    pub fn check(&self, actor: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let now = governor::clock::Clock::now(self.limiter.clock());
        self.limiter
            .check_key(&actor.to_string())
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// The friendly refusal for a limited actor.
    pub fn refusal(&self, wait: Duration) -> String {
        format!(
            "slow down: at most {} commands a minute per person; try again in {}s",
            self.per_minute,
            wait.as_secs().max(1)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_per_identity() {
        let l = ActorRateLimit::new(20, 3);
        for _ in 0..3 {
            assert_eq!(l.check("chat:U1"), Ok(()));
        }
        let wait = l.check("chat:U1").unwrap_err();
        assert!(wait <= Duration::from_secs(3), "{wait:?}");
        assert_eq!(l.check("chat:U2"), Ok(()), "others are not affected");
        assert_eq!(
            l.refusal(Duration::from_millis(2100)),
            "slow down: at most 20 commands a minute per person; try again in 2s"
        );
    }
}
