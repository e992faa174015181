//! A small key/value cache with expiry: Redis in production (shared by every
//! instance), in-process in embedded mode. Callers treat every error as a miss.

use std::collections::HashMap;
use std::sync::Mutex;
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
}

/// Above this many entries, a write first sweeps out the expired ones.
const MEMORY_SWEEP_THRESHOLD: usize = 100_000;

/// The in-process cache of the embedded mode.
#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

impl MemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        // A panic while holding the lock cannot leave the map half-updated (every
        // operation is a single insert/remove), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((value, expires)) if *expires > Instant::now() => Ok(Some(value.clone())),
            Some(_) => {
                entries.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<String>>, CacheError> {
        let entries = self.lock();
        let now = Instant::now();
        // Expired entries read as misses here; `get` and writes sweep them.
        Ok(keys
            .iter()
            .map(|key| match entries.get(*key) {
                Some((value, expires)) if *expires > now => Some(value.clone()),
                _ => None,
            })
            .collect())
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let mut entries = self.lock();
        let now = Instant::now();
        if entries.len() >= MEMORY_SWEEP_THRESHOLD {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= MEMORY_SWEEP_THRESHOLD {
                entries.clear();
            }
        }
        entries.insert(key.to_owned(), (value.to_owned(), now + ttl));
        Ok(())
    }

    async fn raise_many(&self, entries: &[(String, i64)], ttl: Duration) -> Result<(), CacheError> {
        let now = Instant::now();
        let mut entries_now = self.lock();
        for (key, n) in entries {
            let current = entries_now
                .get(key.as_str())
                .filter(|(_, expires)| *expires > now)
                .and_then(|(value, _)| value.parse::<i64>().ok());
            if current.is_none_or(|current| current < *n) {
                entries_now.insert(key.clone(), (n.to_string(), now + ttl));
            }
        }
        Ok(())
    }

    async fn add(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let now = Instant::now();
        let mut entries = self.lock();
        match entries.get(key) {
            Some((_, expires)) if *expires > now => {}
            _ => {
                entries.insert(key.to_owned(), (value.to_owned(), now + ttl));
            }
        }
        Ok(())
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, CacheError> {
        let now = Instant::now();
        let mut entries = self.lock();
        let current = entries
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .and_then(|(value, _)| value.parse::<i64>().ok())
            .unwrap_or(0);
        let next = current + delta;
        entries.insert(key.to_owned(), (next.to_string(), now + ttl));
        Ok(next)
    }

    async fn take(&self, key: &str) -> Result<Option<String>, CacheError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .remove(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(value, _)| value))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.lock().remove(key);
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
        let cache = MemoryCache::new();
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
        let cache = MemoryCache::new();
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
