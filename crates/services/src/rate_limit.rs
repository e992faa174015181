//! Token-bucket request budgets, per client key (an IP, a user id).
//!
//! Budgets are per process: with several instances behind a load balancer each
//! grants its own budget (see docs/decisions.md). That bounds abuse per instance,
//! which is what the login and sign-up limits are for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::ServiceError;

/// A budget: sustained rate and burst size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Name, used as the key's namespace and in logs.
    pub name: &'static str,
    /// Tokens regained per second.
    pub per_second: f64,
    /// Bucket size: requests allowed at once after a quiet period.
    pub burst: f64,
}

/// Log-ins per client IP: 10 a minute, 20 at once.
pub const LOGIN: Limit = Limit {
    name: "login",
    per_second: 10.0 / 60.0,
    burst: 20.0,
};
/// Sign-ups per client IP: 5 a minute, 10 at once.
pub const REGISTER: Limit = Limit {
    name: "register",
    per_second: 5.0 / 60.0,
    burst: 10.0,
};
/// Messages per user (REST and WebSocket together): 20 a second, 40 at once.
pub const MESSAGES: Limit = Limit {
    name: "messages",
    per_second: 20.0,
    burst: 40.0,
};
/// Old-password checks (password change) per user: 10 a minute, 10 at once.
pub const PASSWORD_CHECK: Limit = Limit {
    name: "password_check",
    per_second: 10.0 / 60.0,
    burst: 10.0,
};
/// Token refreshes per client IP: 1 a second, 30 at once.
pub const REFRESH: Limit = Limit {
    name: "refresh",
    per_second: 1.0,
    burst: 30.0,
};

/// Above this many buckets, full (idle) ones are dropped.
const SWEEP_THRESHOLD: usize = 50_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
    limit: Limit,
}

impl Bucket {
    fn refilled(&self, now: Instant) -> f64 {
        (self.tokens + now.duration_since(self.updated).as_secs_f64() * self.limit.per_second)
            .min(self.limit.burst)
    }
}

/// The budgets of one process.
pub struct RateLimiter {
    enabled: bool,
    buckets: Mutex<HashMap<(&'static str, String), Bucket>>,
}

impl RateLimiter {
    /// `enabled = false` (`CHAT_RATE_LIMITS=off`) lets everything through.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket under `limit`, or says how long to wait.
    pub fn check(&self, limit: Limit, key: &str) -> Result<(), ServiceError> {
        if !self.enabled {
            return Ok(());
        }
        let now = Instant::now();
        // Each operation leaves the map consistent, so a poisoned lock is usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= SWEEP_THRESHOLD {
            // A full bucket is the same as no bucket: drop those. If an address flood
            // keeps the map full even so, start over rather than grow without bound.
            buckets.retain(|_, bucket| bucket.refilled(now) < bucket.limit.burst);
            if buckets.len() >= SWEEP_THRESHOLD {
                tracing::warn!("rate-limit table full; resetting it");
                buckets.clear();
            }
        }
        let bucket = buckets
            .entry((limit.name, key.to_owned()))
            .or_insert(Bucket {
                tokens: limit.burst,
                updated: now,
                limit,
            });
        bucket.tokens = bucket.refilled(now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / limit.per_second;
            tracing::info!(limit = limit.name, "rate limit exceeded");
            Err(ServiceError::RateLimited {
                retry_after_secs: wait.ceil().max(1.0) as u64,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Limit = Limit {
        name: "tiny",
        per_second: 0.001,
        burst: 3.0,
    };

    #[test]
    fn allows_the_burst_then_refuses() {
        let limiter = RateLimiter::new(true);
        for _ in 0..3 {
            assert!(limiter.check(TINY, "1.2.3.4").is_ok());
        }
        assert!(matches!(
            limiter.check(TINY, "1.2.3.4"),
            Err(ServiceError::RateLimited { retry_after_secs }) if retry_after_secs > 0
        ));
        // Another client has its own bucket.
        assert!(limiter.check(TINY, "5.6.7.8").is_ok());
    }

    #[test]
    fn disabled_limiter_allows_everything() {
        let limiter = RateLimiter::new(false);
        for _ in 0..100 {
            assert!(limiter.check(TINY, "k").is_ok());
        }
    }
}
