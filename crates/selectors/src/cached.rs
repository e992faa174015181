//! The shared cache-aside shape: read the cache, else load from the database and
//! fill (`SET NX`); writers overwrite the entry with the new truth (`put`), never just
//! delete it, so a fill that raced with the write cannot leave the old state behind.

use std::time::Duration;

use chat_db::DbError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Store;

/// How long a cached entry may be served. Writers overwrite entries at once; the TTL
/// only bounds memory and the damage of a missed invalidation.
pub const ENTITY_TTL: Duration = Duration::from_secs(300);

/// How long a remembered absence filled by a read may be served: anyone can make the
/// server look up ids that do not exist, so those entries leave soon.
pub const ABSENT_TTL: Duration = Duration::from_secs(30);

/// What the cache holds for one key: the value, or a remembered absence.
#[derive(Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Entry<T> {
    Present(T),
    Absent(Absent),
}

#[derive(Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Absent {
    None,
}

/// Reads `key` through the cache, loading with `load` on a miss.
pub(crate) async fn read_through<T, F>(
    store: &Store,
    key: &str,
    load: F,
) -> Result<Option<T>, DbError>
where
    T: Serialize + DeserializeOwned,
    F: AsyncFnOnce() -> Result<Option<T>, DbError>,
{
    let raw = store.cache_get(key).await;
    resolve(store, key, raw, load).await
}

/// Like [`read_through`], with the cache's answer for `key` already read (e.g. by one
/// `MGET` for several keys): decodes it, or loads and fills on a miss.
pub(crate) async fn resolve<T, F>(
    store: &Store,
    key: &str,
    cached: Option<String>,
    load: F,
) -> Result<Option<T>, DbError>
where
    T: Serialize + DeserializeOwned,
    F: AsyncFnOnce() -> Result<Option<T>, DbError>,
{
    if let Some(raw) = cached {
        match serde_json::from_str::<Entry<T>>(&raw) {
            Ok(Entry::Present(value)) => return Ok(Some(value)),
            Ok(Entry::Absent(_)) => return Ok(None),
            Err(err) => tracing::warn!(error = %err, key, "unreadable cache entry"),
        }
    }
    let loaded = load().await?;
    if let Ok(raw) = serde_json::to_string(&entry(loaded.as_ref())) {
        let ttl = if loaded.is_some() {
            ENTITY_TTL
        } else {
            ABSENT_TTL
        };
        store.cache_fill(key, &raw, ttl).await;
    }
    Ok(loaded)
}

fn entry<T: Serialize>(value: Option<&T>) -> Entry<&T> {
    match value {
        Some(value) => Entry::Present(value),
        None => Entry::Absent(Absent::None),
    }
}

/// Overwrites `key` with the new truth (a value, or its absence).
pub(crate) async fn put<T: Serialize>(store: &Store, key: &str, value: Option<&T>) {
    if let Ok(raw) = serde_json::to_string(&entry(value)) {
        store.cache_put(key, &raw, ENTITY_TTL).await;
    }
}
