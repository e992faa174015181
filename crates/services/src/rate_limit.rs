//! Request budgets per client key (an IP, a user id): governor's GCRA (a token bucket
//! without timers), its per-key state in a bounded moka cache.
//!
//! Budgets are per process: with several instances behind a load balancer each
//! grants its own budget (see docs/decisions.md). That bounds abuse per instance,
//! which is what the login and sign-up limits are for.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::Quota;
use governor::clock::{Clock, MonotonicClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use moka::ops::compute::Op;

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

/// Group creations per user: 10 a minute, 10 at once.
pub const GROUP_CREATE: Limit = Limit {
    name: "group_create",
    per_second: 10.0 / 60.0,
    burst: 10.0,
};
/// Members added to chats, per user adding them: 60 a minute, 60 at once.
pub const MEMBER_ADD: Limit = Limit {
    name: "member_add",
    per_second: 1.0,
    burst: 60.0,
};
/// Times a user is added to chats by others: 30 an hour, 30 at once — so nobody can
/// fill another user's `CHAT_MAX_CHATS_PER_USER` with groups of their own.
pub const MEMBER_ADDED: Limit = Limit {
    name: "member_added",
    per_second: 30.0 / 3600.0,
    burst: 30.0,
};
/// Joins of public groups per user: 30 a minute, 30 at once.
pub const CHAT_JOIN: Limit = Limit {
    name: "chat_join",
    per_second: 30.0 / 60.0,
    burst: 30.0,
};
/// WebSocket handshakes per user: 1 a second, 30 at once (a reconnect of every tab).
pub const WS_HANDSHAKE_USER: Limit = Limit {
    name: "ws_handshake_user",
    per_second: 1.0,
    burst: 30.0,
};
/// WebSocket handshakes per client address, counted before authentication: 5 a
/// second, 100 at once (many users may share an address behind a NAT).
pub const WS_HANDSHAKE_ADDRESS: Limit = Limit {
    name: "ws_handshake_address",
    per_second: 5.0,
    burst: 100.0,
};
/// WebSocket tickets per user: 1 a second, 30 at once (one per browser handshake).
pub const WS_TICKET: Limit = Limit {
    name: "ws_ticket",
    per_second: 1.0,
    burst: 30.0,
};
/// Message edits per user (REST and WebSocket together): 1 a second, 20 at once.
pub const MESSAGE_EDIT: Limit = Limit {
    name: "message_edit",
    per_second: 1.0,
    burst: 20.0,
};
/// Reactions added or taken back per user (REST and WebSocket together): 2 a second,
/// 30 at once. Each is a write, a broadcast and a reload of the chat's kept history.
pub const REACTIONS: Limit = Limit {
    name: "reactions",
    per_second: 2.0,
    burst: 30.0,
};
/// File uploads per user: 1 a second, 10 at once (each up to `CHAT_MAX_UPLOAD_MB`).
pub const UPLOADS: Limit = Limit {
    name: "uploads",
    per_second: 1.0,
    burst: 10.0,
};
/// Message searches per user (one chat or all of mine): 2 a second, 20 at once. A
/// search reads an index rather than a page by key: costlier than history.
pub const SEARCH: Limit = Limit {
    name: "search",
    per_second: 2.0,
    burst: 20.0,
};
/// Friend requests per user: 30 an hour, 20 at once.
pub const FRIEND_REQUEST: Limit = Limit {
    name: "friend_request",
    per_second: 30.0 / 3600.0,
    burst: 20.0,
};

/// Clients whose budgets one limit tracks at most; past it the least recently used are
/// forgotten (an idle client's budget is full again anyway, and forgetting one only
/// gives that client a fresh budget).
pub const TRACKED_CLIENTS: u64 = 100_000;

/// governor's per-key GCRA state kept in a bounded moka cache: each entry lives as long
/// as it differs from a fresh budget (`burst / rate` after its last change), and past
/// [`TRACKED_CLIENTS`] the least recently used are evicted — never the whole table.
struct BoundedStore {
    states: moka::sync::Cache<String, Nanos>,
}

impl StateStore for BoundedStore {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut outcome = None;
        self.states.entry(key.clone()).and_compute_with(|current| {
            match f(current.map(|entry| entry.into_value())) {
                Ok((value, next)) => {
                    outcome = Some(Ok(value));
                    Op::Put(next)
                }
                Err(refused) => {
                    outcome = Some(Err(refused));
                    Op::Nop
                }
            }
        });
        // moka runs the closure exactly once; measuring afresh is the safe fallback.
        outcome.unwrap_or_else(|| f(None).map(|(value, _)| value))
    }
}

type Keyed = governor::RateLimiter<String, BoundedStore, MonotonicClock>;

/// One limit's limiter and a handle on its states (to count them).
#[derive(Clone)]
struct Tracked {
    limiter: Arc<Keyed>,
    states: moka::sync::Cache<String, Nanos>,
}

/// The budgets of one process.
pub struct RateLimiter {
    enabled: bool,
    /// Budgets configured instead of the built-in ones, by name.
    overrides: Vec<Limit>,
    limiters: Mutex<HashMap<&'static str, Tracked>>,
    clock: MonotonicClock,
}

impl RateLimiter {
    /// `enabled = false` (`CHAT_RATE_LIMITS=off`) lets everything through.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            overrides: Vec::new(),
            limiters: Mutex::new(HashMap::new()),
            clock: MonotonicClock,
        }
    }

    /// Uses `limit` instead of the built-in budget of the same name (configuration).
    pub fn with_override(mut self, limit: Limit) -> Self {
        self.overrides.retain(|l| l.name != limit.name);
        self.overrides.push(limit);
        self
    }

    /// The budget in force for `limit`'s name.
    pub fn effective(&self, limit: Limit) -> Limit {
        self.overrides
            .iter()
            .find(|l| l.name == limit.name)
            .copied()
            .unwrap_or(limit)
    }

    /// Takes one token from `key`'s bucket under `limit`, or answers 429 with how long
    /// to wait.
    pub fn check(&self, limit: Limit, key: &str) -> Result<(), ServiceError> {
        self.try_take(limit, key).map_err(|wait| {
            tracing::info!(limit = limit.name, "rate limit exceeded");
            ServiceError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }

    /// Waits until `key`'s bucket under `limit` has a token, and takes it: the caller is
    /// slowed to the budget instead of refused (a WebSocket sender, whose socket is not
    /// read meanwhile).
    pub async fn acquire(&self, limit: Limit, key: &str) {
        while let Err(wait) = self.try_take(limit, key) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes one token, or says exactly how long until one is there.
    pub fn try_take(&self, limit: Limit, key: &str) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        self.tracked(self.effective(limit))
            .limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Clients `limit` tracks now (after pending evictions).
    pub fn tracked_clients(&self, limit: Limit) -> u64 {
        let states = self.tracked(self.effective(limit)).states;
        states.run_pending_tasks();
        states.entry_count()
    }

    /// The keyed limiter of `limit`, made on first use.
    fn tracked(&self, limit: Limit) -> Tracked {
        // Each operation leaves the map consistent, so a poisoned lock is usable.
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        limiters
            .entry(limit.name)
            .or_insert_with(|| {
                let period = Duration::from_secs_f64(1.0 / limit.per_second.max(1e-9));
                let burst = NonZeroU32::new(limit.burst.clamp(1.0, f64::from(u32::MAX)) as u32)
                    .unwrap_or(NonZeroU32::MIN);
                let quota = Quota::with_period(period)
                    .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                    .allow_burst(burst);
                // A client's state differs from a fresh budget for at most this long.
                let refill = period.saturating_mul(burst.get());
                let states = moka::sync::Cache::builder()
                    .eviction_policy(moka::policy::EvictionPolicy::lru())
                    .max_capacity(TRACKED_CLIENTS)
                    .time_to_live(refill.max(Duration::from_secs(1)))
                    .build();
                let store = BoundedStore {
                    states: states.clone(),
                };
                Tracked {
                    limiter: Arc::new(governor::RateLimiter::new(quota, store, MonotonicClock)),
                    states,
                }
            })
            .clone()
    }
}

/// Parses a budget as configured: `RATE/UNIT[:BURST]`, e.g. `20/s:40`, `10/min:20`
/// (no burst: the rate's one-second or one-minute worth, at least 1).
pub fn parse_limit(name: &'static str, raw: &str) -> Result<Limit, String> {
    let bad = || format!("'{raw}' is not a rate like 20/s:40 or 10/min:20");
    let (rate, burst) = match raw.trim().split_once(':') {
        Some((rate, burst)) => (rate, Some(burst)),
        None => (raw.trim(), None),
    };
    let (count, unit) = rate.split_once('/').ok_or_else(bad)?;
    let count: f64 = count.trim().parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let burst = match burst {
        Some(b) => b.trim().parse::<f64>().map_err(|_| bad())?,
        None => count.max(1.0),
    };
    if !(count.is_finite() && count > 0.0 && burst.is_finite() && burst >= 1.0) {
        return Err(format!(
            "'{raw}': the rate must be above 0 and the burst at least 1"
        ));
    }
    Ok(Limit {
        name,
        per_second: count / seconds,
        burst,
    })
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
    fn overrides_replace_the_built_in_budget_by_name() {
        let limiter = RateLimiter::new(true).with_override(Limit { burst: 1.0, ..TINY });
        assert!(limiter.check(TINY, "k").is_ok());
        assert!(limiter.check(TINY, "k").is_err(), "burst 1, not 3");
        assert!(limiter.check(MESSAGES, "k").is_ok(), "others unchanged");
    }

    #[test]
    fn the_wait_is_exact() {
        let limiter = RateLimiter::new(true);
        let fast = Limit {
            name: "fast",
            per_second: 100.0,
            burst: 1.0,
        };
        assert!(limiter.try_take(fast, "k").is_ok());
        let wait = limiter.try_take(fast, "k").err().unwrap_or_default();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(10),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn acquire_waits_for_a_token_instead_of_refusing() {
        let limiter = RateLimiter::new(true);
        let fast = Limit {
            name: "fast",
            per_second: 200.0,
            burst: 2.0,
        };
        let started = std::time::Instant::now();
        for _ in 0..10 {
            limiter.acquire(fast, "k").await;
        }
        // Two came from the burst; each of the other eight waited for its token (5 ms at
        // 200/s). A lower bound: a busy machine only makes the waits longer.
        assert!(
            started.elapsed() >= Duration::from_millis(35),
            "{:?} for 10 tokens at 200/s with a burst of 2",
            started.elapsed()
        );
    }

    #[test]
    fn a_flood_of_clients_is_bounded_and_touches_no_other_limit() {
        let limiter = RateLimiter::new(true);
        let slow = Limit {
            name: "slow",
            per_second: 0.001,
            burst: 2.0,
        };
        let other = Limit {
            name: "other",
            ..slow
        };
        // A user spends their budget under one limit …
        for _ in 0..2 {
            assert!(limiter.check(other, "user:1").is_ok());
        }
        assert!(limiter.check(other, "user:1").is_err());
        // … while a flood of client addresses hits another limit.
        for i in 0..(TRACKED_CLIENTS + 20_000) {
            let _ = limiter.try_take(slow, &format!("10.0.{i}"));
        }
        let tracked = limiter.tracked_clients(slow);
        assert!(
            (TRACKED_CLIENTS / 2..=TRACKED_CLIENTS).contains(&tracked),
            "bounded, not cleared: {tracked}"
        );
        assert!(
            limiter.check(other, "user:1").is_err(),
            "the flood reset nobody's budget under another limit"
        );
    }

    #[test]
    fn limits_parse_from_configuration() {
        assert_eq!(
            parse_limit("m", "20/s:40"),
            Ok(Limit {
                name: "m",
                per_second: 20.0,
                burst: 40.0
            })
        );
        assert_eq!(parse_limit("m", "30/min").map(|l| l.burst), Ok(30.0));
        for bad in ["", "20", "20/week", "0/s", "5/s:0", "x/s", "5/s:y"] {
            assert!(parse_limit("m", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn disabled_limiter_allows_everything() {
        let limiter = RateLimiter::new(false);
        for _ in 0..100 {
            assert!(limiter.check(TINY, "k").is_ok());
        }
    }
}
