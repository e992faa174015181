//! Is this session live? Asked on every authenticated request, so it is cached.

use std::time::Duration;

use chat_db::models::SessionRow;
use chat_db::{DbError, now};
use serde::{Deserialize, Serialize};

use crate::{Store, keys};

/// How long a "live" answer may be served from the cache. Revocation does not wait
/// for it: `invalidate_session` overwrites the entry with a revoked marker at once.
pub const SESSION_TTL: Duration = Duration::from_secs(60);
/// How long the revoked marker stays; it must outlive any cached "live" entry and
/// any access token of the session, after which the database answers anyway.
pub const REVOKED_TTL: Duration = Duration::from_secs(24 * 3600);

/// A live session and who it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSession {
    /// The user.
    pub user_id: i64,
    /// Whether the user is a site admin.
    pub is_admin: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "s", rename_all = "lowercase")]
enum Cached {
    Live(LiveSession),
    Revoked,
}

/// The session if it is live: not revoked, not expired, its user active.
pub async fn live_session(store: &Store, session_id: &str) -> Result<Option<LiveSession>, DbError> {
    let raw = store.cache_get(&keys::session(session_id)).await;
    resolve_session(store, session_id, raw).await
}

/// [`live_session`] from a cache entry the caller has already read (`None`: a miss),
/// e.g. in one round trip with other keys.
pub async fn resolve_session(
    store: &Store,
    session_id: &str,
    cached: Option<String>,
) -> Result<Option<LiveSession>, DbError> {
    let key = keys::session(session_id);
    if let Some(raw) = cached {
        match serde_json::from_str::<Cached>(&raw) {
            Ok(Cached::Live(session)) => return Ok(Some(session)),
            Ok(Cached::Revoked) => return Ok(None),
            Err(err) => tracing::warn!(error = %err, key, "unreadable cache entry"),
        }
    }
    let found = SessionRow::find_with_user(&store.db, session_id).await?;
    let now = now();
    let live = found.and_then(|(session, user)| {
        (session.revoked_at.is_none() && session.expires_at > now && user.is_active).then_some(
            LiveSession {
                user_id: user.id,
                is_admin: user.is_admin,
            },
        )
    });
    let (entry, ttl) = match &live {
        Some(session) => (Cached::Live(session.clone()), SESSION_TTL),
        None => (Cached::Revoked, REVOKED_TTL),
    };
    if let Ok(raw) = serde_json::to_string(&entry) {
        store.cache_fill(&key, &raw, ttl).await;
    }
    Ok(live)
}

/// Marks the session revoked in the cache, so every instance refuses it at once.
/// Tried twice: if the marker cannot be written, a cached "live" entry could outlive
/// the logout by up to [`SESSION_TTL`] (logged as an error; the database stays right).
pub async fn invalidate_session(store: &Store, session_id: &str) {
    if let Ok(raw) = serde_json::to_string(&Cached::Revoked) {
        overwrite(store, session_id, &raw, REVOKED_TTL).await;
    }
}

/// Overwrites the cached state of a live session with what the database says after a
/// change (the user's admin flag). Written, never deleted: a request that read the old
/// state just before the change fills only an empty key, so it cannot bring the old
/// flag back for [`SESSION_TTL`]. Tried twice, like [`invalidate_session`].
pub async fn put_session(store: &Store, session_id: &str, session: &LiveSession) {
    if let Ok(raw) = serde_json::to_string(&Cached::Live(session.clone())) {
        overwrite(store, session_id, &raw, SESSION_TTL).await;
    }
}

async fn overwrite(store: &Store, session_id: &str, raw: &str, ttl: Duration) {
    let key = keys::session(session_id);
    for attempt in 1..=2 {
        match store.cache.set(&key, raw, ttl).await {
            Ok(()) => return,
            Err(err) if attempt == 2 => {
                tracing::error!(error = %err, "cannot overwrite a session's cached state; other instances may use the old one until the entry expires");
            }
            Err(_) => {}
        }
    }
}
