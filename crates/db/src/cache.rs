//! A small key/value cache with expiry: Redis in production (shared by every
//! instance), in-process in embedded mode. Callers treat every error as a miss.

use std::time::{Duration, Instant};

use async_trait::async_trait;

/// A cache failure. Callers log it and fall through to the database.
#[derive(Debug, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(pub String);

/// Cache operations the selectors need.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError>;
    /// The values under `keys`, in order, in one round trip (Redis `MGET`): the hot
    /// paths read several entries per request.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<String>>, CacheError>;
    /// Stores `value` under `key` for `ttl`.
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError>;
    /// For every `(key, n)`: stores `n` for `ttl` unless the key holds an integer of at
    /// least `n` already — a value that only ever rises, whatever order concurrent
    /// writers' updates land in. One round trip for all (a pipeline; each key atomic).
    async fn raise_many(&self, entries: &[(String, i64)], ttl: Duration) -> Result<(), CacheError>;
    /// Stores `value` only if `key` is absent. Cache-aside fills use this, so a fill
    /// racing with an invalidation marker (e.g. "revoked") can never overwrite it.
    async fn add(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError>;
    /// Adds `delta` to the integer under `key` (missing: 0) and returns the result; the
    /// key then expires after `ttl`. Counters shared by every instance (presence).
    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, CacheError>;
    /// Reads and removes `key` in one step (single-use values such as tickets).
    async fn take(&self, key: &str) -> Result<Option<String>, CacheError>;
    /// Removes `key`.
    async fn delete(&self, key: &str) -> Result<(), CacheError>;
    /// Checks the backend is reachable (readiness).
    async fn ping(&self) -> Result<(), CacheError>;
    /// `redis` or `memory`.
    fn backend(&self) -> &'static str;
    /// Commands the backend did not answer since start (never, in process).
    fn failures(&self) -> BackendFailures {
        BackendFailures::default()
    }
}

/// Commands that got no answer from a remote cache since start: each fell back to the
/// database, or was skipped, as its caller decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendFailures {
    /// Commands that waited the whole timeout.
    pub timed_out: u64,
    /// Commands answered with an error (connection refused or dropped, Redis errors).
    pub errors: u64,
}

/// Default bytes the in-process cache may hold (keys, values and per-entry overhead)
/// before it evicts: expired entries first, then the least recently used (SPEC §6).
pub const MEMORY_CACHE_BYTES: u64 = 64 << 20;
/// Entries the pinned part may hold (sessions and tickets, both bounded by other limits:
/// log-in and ticket budgets, and their TTLs).
const PINNED_ENTRIES: u64 = 4_000_000;
/// What each entry costs besides its key and value.
const ENTRY_OVERHEAD: usize = 96;

/// A stored value and how long it lives from its last write.
#[derive(Clone)]
struct Stored {
    value: String,
    ttl: Duration,
}

/// Each entry expires `ttl` after its last write (reads do not extend it).
struct WriteExpiry;

impl moka::Expiry<String, Stored> for WriteExpiry {
    fn expire_after_create(&self, _: &String, stored: &Stored, _: Instant) -> Option<Duration> {
        Some(stored.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        stored: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(stored.ttl)
    }
}

type Store = moka::sync::Cache<String, Stored>;

/// The in-process cache of the embedded mode: bounded in bytes, evicting expired
/// entries first and then the least recently used — never everything at once. Keys
/// under the pinned prefixes (sessions and their revocation markers, single-use
/// tickets) live apart, so no flood of other keys can evict them.
pub struct MemoryCache {
    general: Store,
    pinned: Store,
    pinned_prefixes: Vec<String>,
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(MEMORY_CACHE_BYTES, &[])
    }
}

impl MemoryCache {
    /// A cache of at most `max_bytes` for ordinary keys; keys starting with one of
    /// `pinned_prefixes` are kept apart and evicted only by expiry.
    pub fn new(max_bytes: u64, pinned_prefixes: &[&str]) -> Self {
        let general = Store::builder()
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .max_capacity(max_bytes)
            .weigher(|key: &String, stored: &Stored| {
                u32::try_from(key.len() + stored.value.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(WriteExpiry)
            .build();
        let pinned = Store::builder()
            .max_capacity(PINNED_ENTRIES)
            .expire_after(WriteExpiry)
            .build();
        Self {
            general,
            pinned,
            pinned_prefixes: pinned_prefixes.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn store(&self, key: &str) -> &Store {
        if self.pinned_prefixes.iter().any(|p| key.starts_with(p)) {
            &self.pinned
        } else {
            &self.general
        }
    }

    /// Entries held now (after pending evictions are applied).
    pub fn entry_count(&self) -> u64 {
        self.general.run_pending_tasks();
        self.pinned.run_pending_tasks();
        self.general.entry_count() + self.pinned.entry_count()
    }

    /// Runs `f` over the live value of `key` (none if absent or expired) and stores what
    /// it returns, atomically for that key. Returns `f`'s result (moka runs it once).
    fn update<T>(
        &self,
        key: &str,
        f: impl FnOnce(Option<&str>) -> (Option<Stored>, T),
    ) -> Option<T> {
        let mut out = None;
        self.store(key)
            .entry(key.to_owned())
            .and_compute_with(|current| {
                let (next, result) = f(current.as_ref().map(|e| e.value().value.as_str()));
                out = Some(result);
                match next {
                    Some(stored) => moka::ops::compute::Op::Put(stored),
                    None => moka::ops::compute::Op::Nop,
                }
            });
        out
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        Ok(self.store(key).get(key).map(|stored| stored.value))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<String>>, CacheError> {
        Ok(keys
            .iter()
            .map(|key| self.store(key).get(*key).map(|stored| stored.value))
            .collect())
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        self.store(key).insert(
            key.to_owned(),
            Stored {
                value: value.to_owned(),
                ttl,
            },
        );
        Ok(())
    }

    async fn raise_many(&self, entries: &[(String, i64)], ttl: Duration) -> Result<(), CacheError> {
        for (key, n) in entries {
            self.update(key, |current| {
                let current = current.and_then(|value| value.parse::<i64>().ok());
                let next = current.is_none_or(|current| current < *n).then(|| Stored {
                    value: n.to_string(),
                    ttl,
                });
                (next, ())
            });
        }
        Ok(())
    }

    async fn add(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        self.update(key, |current| {
            let next = current.is_none().then(|| Stored {
                value: value.to_owned(),
                ttl,
            });
            (next, ())
        });
        Ok(())
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, CacheError> {
        self.update(key, |current| {
            let next = current
                .and_then(|value| value.parse::<i64>().ok())
                .unwrap_or(0)
                + delta;
            (
                Some(Stored {
                    value: next.to_string(),
                    ttl,
                }),
                next,
            )
        })
        .ok_or_else(|| CacheError("the counter was not updated".to_owned()))
    }

    async fn take(&self, key: &str) -> Result<Option<String>, CacheError> {
        Ok(self.store(key).remove(key).map(|stored| stored.value))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.store(key).invalidate(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_cache_raise_many_only_ever_raises() -> anyhow::Result<()> {
        let cache = MemoryCache::default();
        let ttl = Duration::from_secs(60);
        cache
            .raise_many(&[("a".to_owned(), 10), ("b".to_owned(), 3)], ttl)
            .await?;
        cache.set("c", "1", Duration::from_millis(1)).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        cache
            .raise_many(
                &[
                    ("a".to_owned(), 9),
                    ("b".to_owned(), 4),
                    ("c".to_owned(), 0),
                ],
                ttl,
            )
            .await?;
        assert_eq!(
            cache.get_many(&["a", "b", "c"]).await?,
            [
                Some("10".to_owned()),
                Some("4".to_owned()),
                Some("0".to_owned())
            ],
            "late lower values change nothing; an expired key is set"
        );
        Ok(())
    }

    #[tokio::test]
    async fn memory_cache_expires_and_deletes() -> anyhow::Result<()> {
        let cache = MemoryCache::default();
        cache.set("a", "1", Duration::from_secs(60)).await?;
        cache.set("b", "2", Duration::from_millis(1)).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(cache.get("a").await?.as_deref(), Some("1"));
        assert_eq!(cache.get("b").await?, None);
        cache.add("a", "other", Duration::from_secs(60)).await?;
        assert_eq!(
            cache.get("a").await?.as_deref(),
            Some("1"),
            "add must not overwrite"
        );
        cache.add("b", "3", Duration::from_secs(60)).await?;
        assert_eq!(
            cache.get("b").await?.as_deref(),
            Some("3"),
            "add fills an expired key"
        );
        assert_eq!(
            cache.get_many(&["b", "x", "a"]).await?,
            [Some("3".to_owned()), None, Some("1".to_owned())]
        );
        cache.delete("a").await?;
        assert_eq!(cache.get("a").await?, None);
        assert_eq!(cache.get_many(&["a"]).await?, [None]);
        Ok(())
    }
}

#[cfg(test)]
mod bounds {
    use super::*;

    #[tokio::test]
    async fn a_flood_of_keys_evicts_some_never_all_and_never_pinned_ones() -> anyhow::Result<()> {
        let cache = MemoryCache::new(1 << 20, &["presence:", "ws_ticket:"]);
        let ttl = Duration::from_secs(600);
        cache.incr("presence:1", 1, ttl).await?;
        cache.set("ws_ticket:t", "7", ttl).await?;
        // ~20 MB of "not found" entries for random ids into a 1 MiB cache.
        for i in 0..100_000 {
            cache
                .set(&format!("chat:{i}"), &"n".repeat(100), ttl)
                .await?;
        }
        let held = cache.entry_count();
        assert!(held > 1_000, "not cleared: {held} entries remain");
        assert!(held < 20_000, "bounded: {held} entries");
        assert_eq!(
            cache.incr("presence:1", 1, ttl).await?,
            2,
            "counters survive"
        );
        assert_eq!(cache.take("ws_ticket:t").await?.as_deref(), Some("7"));
        Ok(())
    }

    #[tokio::test]
    async fn increments_are_atomic_under_concurrency() -> anyhow::Result<()> {
        let cache = std::sync::Arc::new(MemoryCache::default());
        let ttl = Duration::from_secs(60);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
                    runtime.block_on(async {
                        for _ in 0..1000 {
                            cache.incr("n", 1, ttl).await?;
                        }
                        Ok::<_, anyhow::Error>(())
                    })
                })
            })
            .collect();
        for task in tasks {
            task.join()
                .map_err(|_| anyhow::anyhow!("thread panicked"))??;
        }
        assert_eq!(cache.get("n").await?.as_deref(), Some("8000"));
        Ok(())
    }
}
