//! Who is connected, over every instance, surviving an instance that dies without
//! closing its sockets.
//!
//! Each user has one counter of open sockets over all instances. In production mode each
//! instance also keeps, in Redis, how many sockets it holds per user, and renews a
//! short-lived liveness key on a heartbeat. An instance that finds another's liveness
//! key gone (killed, or cut off from Redis for longer than its lifetime) claims its
//! table once, takes its sockets off the users' counters, and reports the users left
//! with none — so they are shown offline within about three heartbeats instead of when a
//! day-long counter expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::cache::CacheError;
use crate::redis::RedisConnections;

/// The socket counters behind presence.
#[async_trait]
pub trait PresenceRegistry: Send + Sync + 'static {
    /// A socket of `user_id` opened here: the user's open sockets over every instance.
    async fn connected(&self, user_id: i64) -> Result<i64, CacheError>;
    /// A socket of `user_id` closed here: the user's open sockets left (never below 0).
    async fn disconnected(&self, user_id: i64) -> Result<i64, CacheError>;
    /// Renews this instance's liveness and reclaims the sockets of instances whose
    /// liveness expired; returns the users left with no socket anywhere.
    async fn heartbeat(&self) -> Result<Vec<i64>, CacheError>;
}

/// The embedded mode's registry: one process, so one table and nothing to reclaim.
#[derive(Default)]
pub struct MemoryPresence {
    sockets: Mutex<HashMap<i64, i64>>,
}

impl MemoryPresence {
    fn change(&self, user_id: i64, delta: i64) -> i64 {
        // Each operation is one map update: a poisoned lock is still consistent.
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let count = sockets.entry(user_id).or_insert(0);
        *count = (*count + delta).max(0);
        let now = *count;
        if now == 0 {
            sockets.remove(&user_id);
        }
        now
    }
}

#[async_trait]
impl PresenceRegistry for MemoryPresence {
    async fn connected(&self, user_id: i64) -> Result<i64, CacheError> {
        Ok(self.change(user_id, 1))
    }

    async fn disconnected(&self, user_id: i64) -> Result<i64, CacheError> {
        Ok(self.change(user_id, -1))
    }

    async fn heartbeat(&self) -> Result<Vec<i64>, CacheError> {
        Ok(Vec::new())
    }
}

/// How long a user's counter outlives its last change (a safety net only: reclaiming
/// is what corrects counters of dead instances).
const COUNTER_TTL: Duration = Duration::from_secs(24 * 3600);

/// KEYS: the user's counter, this instance's table. ARGV: user id, counter TTL (s).
const CONNECT: &str = "local total = redis.call('INCRBY', KEYS[1], 1) \
    redis.call('EXPIRE', KEYS[1], ARGV[2]) \
    redis.call('HINCRBY', KEYS[2], ARGV[1], 1) \
    return total";

/// KEYS: the user's counter, this instance's table. ARGV: user id, counter TTL (s).
const DISCONNECT: &str = "local total = redis.call('INCRBY', KEYS[1], -1) \
    if total <= 0 then redis.call('DEL', KEYS[1]) total = 0 \
    else redis.call('EXPIRE', KEYS[1], ARGV[2]) end \
    if redis.call('HINCRBY', KEYS[2], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end \
    return total";

/// KEYS: the dead instance's table, the instance set. ARGV: key prefix, instance id.
/// Takes the dead instance's sockets off each user's counter; returns the users left
/// with none.
const RECLAIM: &str = "local rows = redis.call('HGETALL', KEYS[1]) local gone = {} \
    for i = 1, #rows, 2 do \
      local key = ARGV[1] .. ':presence:' .. rows[i] \
      local total = redis.call('INCRBY', key, -tonumber(rows[i + 1])) \
      if total <= 0 then redis.call('DEL', key) table.insert(gone, rows[i]) end \
    end \
    redis.call('DEL', KEYS[1]) redis.call('SREM', KEYS[2], ARGV[2]) \
    return gone";

/// The production registry, in Redis.
pub struct RedisPresence {
    connections: RedisConnections,
    prefix: String,
    instance: String,
    lifetime: Duration,
}

impl RedisPresence {
    /// A registry for this instance (a fresh random id), whose liveness lasts
    /// `lifetime` after each heartbeat (heartbeats should come three times as often).
    pub fn new(connections: RedisConnections, prefix: &str, lifetime: Duration) -> Self {
        Self {
            connections,
            prefix: prefix.to_owned(),
            instance: format!("{:016x}", rand_id()),
            lifetime,
        }
    }

    /// This instance's id in the registry.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    fn table(&self, instance: &str) -> String {
        self.key(&format!("presence_instance:{instance}"))
    }

    async fn is_alive(&self, instance: &str) -> Result<bool, CacheError> {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.key(&format!("instance_alive:{instance}")));
        self.connections
            .run(|mut conn| async move { exists.query_async(&mut conn).await })
            .await
    }

    /// Whether this instance is the one to reclaim `instance` (one claimant per death).
    async fn claim(&self, instance: &str) -> Result<bool, CacheError> {
        let mut claim = redis::cmd("SET");
        claim
            .arg(self.key(&format!("instance_reclaim:{instance}")))
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(self.lifetime.as_millis().saturating_mul(2)).unwrap_or(u64::MAX));
        let claimed: Option<String> = self
            .connections
            .run(|mut conn| async move { claim.query_async(&mut conn).await })
            .await?;
        Ok(claimed.is_some())
    }

    async fn count(&self, script: &'static str, user_id: i64) -> Result<i64, CacheError> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(script)
            .arg(2)
            .arg(self.key(&format!("presence:{user_id}")))
            .arg(self.table(&self.instance))
            .arg(user_id)
            .arg(COUNTER_TTL.as_secs());
        self.connections
            .run(|mut conn| async move { eval.query_async(&mut conn).await })
            .await
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // Seeded per process by the standard library: unique enough to tell instances apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[async_trait]
impl PresenceRegistry for RedisPresence {
    async fn connected(&self, user_id: i64) -> Result<i64, CacheError> {
        self.count(CONNECT, user_id).await
    }

    async fn disconnected(&self, user_id: i64) -> Result<i64, CacheError> {
        self.count(DISCONNECT, user_id).await
    }

    async fn heartbeat(&self) -> Result<Vec<i64>, CacheError> {
        let instances = self.key("presence_instances");
        let lifetime = u64::try_from(self.lifetime.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut renew = redis::pipe();
        renew
            .cmd("SET")
            .arg(self.key(&format!("instance_alive:{}", self.instance)))
            .arg(1)
            .arg("PX")
            .arg(lifetime)
            .ignore()
            .cmd("SADD")
            .arg(&instances)
            .arg(&self.instance)
            .ignore()
            .cmd("SMEMBERS")
            .arg(&instances);
        let (known,): (Vec<String>,) = self
            .connections
            .run(|mut conn| async move { renew.query_async(&mut conn).await })
            .await?;
        let mut gone = Vec::new();
        for other in known.iter().filter(|id| **id != self.instance) {
            if self.is_alive(other).await? || !self.claim(other).await? {
                continue;
            }
            let mut reclaim = redis::cmd("EVAL");
            reclaim
                .arg(RECLAIM)
                .arg(2)
                .arg(self.table(other))
                .arg(&instances)
                .arg(&self.prefix)
                .arg(other);
            let users: Vec<String> = self
                .connections
                .run(|mut conn| async move { reclaim.query_async(&mut conn).await })
                .await?;
            tracing::warn!(
                instance = %other,
                users = users.len(),
                "an instance stopped renewing its presence; its sockets were taken off"
            );
            gone.extend(users.iter().filter_map(|u| u.parse::<i64>().ok()));
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_counts_never_go_below_zero() -> Result<(), CacheError> {
        let registry = MemoryPresence::default();
        assert_eq!(registry.connected(1).await?, 1);
        assert_eq!(registry.connected(1).await?, 2);
        assert_eq!(registry.disconnected(1).await?, 1);
        assert_eq!(registry.disconnected(1).await?, 0);
        assert_eq!(registry.disconnected(1).await?, 0);
        assert_eq!(registry.connected(1).await?, 1);
        assert!(registry.heartbeat().await?.is_empty());
        Ok(())
    }
}
