//! The handles every read needs.

use std::sync::Arc;

use chat_db::DbPool;
use chat_db::cache::Cache;

/// Database pool plus cache: what selectors read through.
#[derive(Clone)]
pub struct Store {
    /// The database.
    pub db: DbPool,
    /// The cache (Redis or in-process).
    pub cache: Arc<dyn Cache>,
}

impl Store {
    /// Reads `key`; a cache failure is logged and reported as a miss.
    pub async fn cache_get(&self, key: &str) -> Option<String> {
        match self.cache.get(key).await {
            Ok(value) => value,
            Err(err) => {
                tracing::warn!(error = %err, key, "cache read failed; using the database");
                None
            }
        }
    }

    /// Reads `keys` in one round trip; a cache failure is logged and reported as misses.
    pub async fn cache_get_many(&self, keys: &[&str]) -> Vec<Option<String>> {
        match self.cache.get_many(keys).await {
            Ok(values) if values.len() == keys.len() => values,
            Ok(_) => {
                tracing::warn!("cache returned the wrong number of values; using the database");
                vec![None; keys.len()]
            }
            Err(err) => {
                tracing::warn!(error = %err, "cache read failed; using the database");
                vec![None; keys.len()]
            }
        }
    }

    /// Fills `key` unless something (e.g. an invalidation marker) is already there.
    pub async fn cache_fill(&self, key: &str, value: &str, ttl: std::time::Duration) {
        if let Err(err) = self.cache.add(key, value, ttl).await {
            tracing::warn!(error = %err, key, "cache fill failed");
        }
    }

    /// Overwrites `key`: used for invalidation markers.
    pub async fn cache_put(&self, key: &str, value: &str, ttl: std::time::Duration) {
        if let Err(err) = self.cache.set(key, value, ttl).await {
            tracing::warn!(error = %err, key, "cache write failed");
        }
    }
}
