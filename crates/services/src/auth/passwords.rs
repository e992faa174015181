//! bcrypt, always on the blocking pool: one hash costs ~360 ms at cost 12 and
//! would stall every connection sharing the worker thread.

use std::sync::OnceLock;

use chat_domain::Password;

use crate::ServiceError;

/// A hash of a random password, verified against when the user does not exist, so
/// an unknown username costs the same time as a wrong password.
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

/// At most this many hashes run at once (one per core): a burst of log-ins queues
/// here instead of filling the blocking pool that SQLite queries also need.
static HASHING: OnceLock<tokio::sync::Semaphore> = OnceLock::new();

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    let permits = HASHING.get_or_init(|| {
        tokio::sync::Semaphore::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        )
    });
    let _permit = permits
        .acquire()
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("password semaphore closed: {e}")))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("password task failed: {e}")))
}

/// Hashes a new password.
pub async fn hash(password: &Password, cost: u32) -> Result<String, ServiceError> {
    let secret = password.expose().to_owned();
    blocking(move || bcrypt::hash(secret, cost))
        .await?
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("bcrypt: {e}")))
}

/// Checks `candidate` against `hash`; `None` checks against a dummy hash and
/// returns false. Malformed stored hashes count as a mismatch (and are logged).
pub async fn verify(candidate: &str, hash: Option<&str>, cost: u32) -> Result<bool, ServiceError> {
    let candidate = candidate.to_owned();
    let hash = hash.map(str::to_owned);
    blocking(move || {
        let (hash, real) = match &hash {
            Some(h) => (h.as_str(), true),
            None => (
                DUMMY_HASH
                    .get_or_init(|| bcrypt::hash("dummy password", cost).unwrap_or_default())
                    .as_str(),
                false,
            ),
        };
        match bcrypt::verify(candidate, hash) {
            Ok(matches) => matches && real,
            Err(err) => {
                tracing::error!(error = %err, "stored password hash is unreadable");
                false
            }
        }
    })
    .await
}
