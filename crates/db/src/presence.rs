//! Who is connected, over every instance, surviving an instance that dies without
//! closing its sockets.
//!
//! Each user has one counter of open sockets over all instances. In production mode each
//! instance also keeps, in Redis, how many sockets it holds per user (its table), and on
//! each heartbeat renews a short-lived liveness key and brings its table and the users'
//! counters back in line with what it really holds (its local count is the truth: a
//! Redis call that failed or timed out, or a table reclaimed while the instance was
//! cut off, is corrected there). An instance that finds another's liveness key gone
//! (killed, or cut off from Redis for longer than its lifetime) empties its table in one
//! atomic step, takes its sockets off the users' counters, and reports the users left with none — so
//! they are shown offline within about three heartbeats instead of when a day-long
//! counter expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::cache::CacheError;
use crate::redis::RedisConnections;

/// Users whose presence a heartbeat changed: counters that crossed zero.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changed {
    /// Now counted online (their sockets here were missing from the counters).
    pub online: Vec<i64>,
    /// Now counted offline (sockets of a dead instance, or counted twice).
    pub offline: Vec<i64>,
}

/// The socket counters behind presence.
#[async_trait]
pub trait PresenceRegistry: Send + Sync + 'static {
    /// A socket of `user_id` opened here: the user's open sockets over every instance.
    async fn connected(&self, user_id: i64) -> Result<i64, CacheError>;
    /// A socket of `user_id` closed here: the user's open sockets left (never below 0),
    /// or `-1` when this socket was no longer counted (its instance was reclaimed): then
    /// there is nothing to announce.
    async fn disconnected(&self, user_id: i64) -> Result<i64, CacheError>;
    /// Renews this instance's liveness, corrects its own counts, and reclaims the
    /// sockets of instances whose liveness expired.
    async fn heartbeat(&self) -> Result<Changed, CacheError>;
    /// Whether each of `user_ids` has a socket open anywhere, in order, in one read
    /// (one Redis `MGET`): what lists of people show next to each name.
    async fn online(&self, user_ids: &[i64]) -> Result<Vec<bool>, CacheError>;
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

    async fn heartbeat(&self) -> Result<Changed, CacheError> {
        Ok(Changed::default())
    }

    async fn online(&self, user_ids: &[i64]) -> Result<Vec<bool>, CacheError> {
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        Ok(user_ids
            .iter()
            .map(|id| sockets.get(id).is_some_and(|n| *n > 0))
            .collect())
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
/// A socket the table no longer holds (reclaimed) leaves the counter alone: -1.
const DISCONNECT: &str = "local mine = redis.call('HINCRBY', KEYS[2], ARGV[1], -1) \
    if mine <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end \
    if mine < 0 then return -1 end \
    local total = redis.call('INCRBY', KEYS[1], -1) \
    if total <= 0 then redis.call('DEL', KEYS[1]) total = 0 \
    else redis.call('EXPIRE', KEYS[1], ARGV[2]) end \
    return total";

/// KEYS: this instance's liveness key, its table, the instance set. ARGV: lifetime (ms),
/// instance id, counter key prefix, counter TTL (s), then `user, sockets` pairs of what this
/// instance holds. Renews the liveness, then moves table and counters to those numbers;
/// returns the users whose counter crossed zero upwards, then downwards.
const SYNC: &str = "redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) \
    redis.call('SADD', KEYS[3], ARGV[2]) \
    local want = {} for i = 5, #ARGV, 2 do want[ARGV[i]] = tonumber(ARGV[i + 1]) end \
    local have = {} local rows = redis.call('HGETALL', KEYS[2]) \
    for i = 1, #rows, 2 do have[rows[i]] = tonumber(rows[i + 1]) end \
    local up, down = {}, {} \
    local function adjust(user, delta) \
      local key = ARGV[3] .. user \
      local before = tonumber(redis.call('GET', key) or '0') \
      local after = before + delta \
      if after <= 0 then redis.call('DEL', key) after = 0 \
      else redis.call('SET', key, after, 'EX', ARGV[4]) end \
      if before <= 0 and after > 0 then table.insert(up, user) end \
      if before > 0 and after <= 0 then table.insert(down, user) end \
    end \
    for user, n in pairs(want) do \
      local d = n - (have[user] or 0) \
      if d ~= 0 then adjust(user, d) redis.call('HSET', KEYS[2], user, n) end \
    end \
    for user, n in pairs(have) do \
      if want[user] == nil then adjust(user, -n) redis.call('HDEL', KEYS[2], user) end \
    end \
    return {up, down}";

/// KEYS: the dead instance's table, the instance set, its liveness key. ARGV: counter
/// key prefix, instance id. Unless it renewed meanwhile, takes the dead instance's sockets
/// off each user's counter; returns the users left with none.
const RECLAIM: &str = "if redis.call('EXISTS', KEYS[3]) == 1 then return {} end \
    local rows = redis.call('HGETALL', KEYS[1]) local gone = {} \
    for i = 1, #rows, 2 do \
      local key = ARGV[1] .. rows[i] \
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
    /// What this instance really holds, per user: the truth each heartbeat restores.
    /// Held across each Redis update, so a heartbeat never sees one half-applied.
    local: tokio::sync::Mutex<HashMap<i64, i64>>,
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
            local: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// This instance's id in the registry.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Every presence key carries the `{presence}` hash tag: in a Redis Cluster they all
    /// live in one slot, so the scripts that touch tables and counters together run on
    /// one node. (Presence changes at the rate sockets open and close, not messages.)
    fn key(&self, rest: &str) -> String {
        format!("{}:{{presence}}:{rest}", self.prefix)
    }

    /// The prefix of the per-user counters; a user's counter is this and the id.
    fn counters(&self) -> String {
        self.key("user:")
    }

    fn table(&self, instance: &str) -> String {
        self.key(&format!("instance:{instance}"))
    }

    fn alive(&self, instance: &str) -> String {
        self.key(&format!("alive:{instance}"))
    }

    async fn is_alive(&self, instance: &str) -> Result<bool, CacheError> {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.alive(instance));
        self.connections
            .run(|mut conn| async move { exists.query_async(&mut conn).await })
            .await
    }

    async fn count(&self, script: &'static str, user_id: i64) -> Result<i64, CacheError> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(script)
            .arg(2)
            .arg(format!("{}{user_id}", self.counters()))
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
        let mut local = self.local.lock().await;
        *local.entry(user_id).or_insert(0) += 1;
        self.count(CONNECT, user_id).await
    }

    async fn disconnected(&self, user_id: i64) -> Result<i64, CacheError> {
        let mut local = self.local.lock().await;
        if let Some(count) = local.get_mut(&user_id) {
            *count -= 1;
            if *count <= 0 {
                local.remove(&user_id);
            }
        }
        self.count(DISCONNECT, user_id).await
    }

    async fn heartbeat(&self) -> Result<Changed, CacheError> {
        let instances = self.key("instances");
        let lifetime = u64::try_from(self.lifetime.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut sync = redis::cmd("EVAL");
        sync.arg(SYNC)
            .arg(3)
            .arg(self.alive(&self.instance))
            .arg(self.table(&self.instance))
            .arg(&instances)
            .arg(lifetime)
            .arg(&self.instance)
            .arg(self.counters())
            .arg(COUNTER_TTL.as_secs());
        let (up, down): (Vec<String>, Vec<String>) = {
            let local = self.local.lock().await;
            for (user, sockets) in local.iter() {
                sync.arg(*user).arg(*sockets);
            }
            self.connections
                .run(|mut conn| async move { sync.query_async(&mut conn).await })
                .await?
        };
        let ids = |users: Vec<String>| -> Vec<i64> {
            users.iter().filter_map(|u| u.parse::<i64>().ok()).collect()
        };
        let mut changed = Changed {
            online: ids(up),
            offline: ids(down),
        };
        let mut members = redis::cmd("SMEMBERS");
        members.arg(&instances);
        let known: Vec<String> = self
            .connections
            .run(|mut conn| async move { members.query_async(&mut conn).await })
            .await?;
        let mut gone = Vec::new();
        for other in known.iter().filter(|id| **id != self.instance) {
            // RECLAIM checks liveness again and empties the table in one step: two
            // instances reclaiming the same one announce its users once.
            if self.is_alive(other).await? {
                continue;
            }
            let mut reclaim = redis::cmd("EVAL");
            reclaim
                .arg(RECLAIM)
                .arg(3)
                .arg(self.table(other))
                .arg(&instances)
                .arg(self.alive(other))
                .arg(self.counters())
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
        changed.offline.extend(gone);
        Ok(changed)
    }

    async fn online(&self, user_ids: &[i64]) -> Result<Vec<bool>, CacheError> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        // An explicit MGET: the reply is an array even for one key. A counter is
        // deleted when it reaches zero, so a missing key is "offline".
        let mut mget = redis::cmd("MGET");
        let counters = self.counters();
        for user_id in user_ids {
            mget.arg(format!("{counters}{user_id}"));
        }
        let counts: Vec<Option<i64>> = self
            .connections
            .run(|mut conn| async move { mget.query_async(&mut conn).await })
            .await?;
        Ok(counts.into_iter().map(|n| n.unwrap_or(0) > 0).collect())
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
        assert_eq!(registry.online(&[1, 2]).await?, vec![true, false]);
        assert_eq!(registry.heartbeat().await?, Changed::default());
        Ok(())
    }
}
