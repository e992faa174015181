//! Redis adapters: the shared cache and the cross-instance event bus.
//!
//! Every key and channel starts with the configured prefix (`CHAT_REDIS_PREFIX`):
//! pub/sub ignores Redis database numbers, so deployments and parallel test runs
//! sharing one Redis would otherwise hear each other.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::broadcast;

use crate::bus::{BusMessage, EventBus, MemoryBus};
use crate::cache::{Cache, CacheError};

mod connections;

pub use connections::RedisConnections;

/// How long a request waits on Redis before treating it as down and using the
/// database: a Redis outage must cost milliseconds, not the request.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between attempts to re-establish the pub/sub subscription.
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_secs(1);

/// Opens (lazily) the connections the cache and the bus share.
pub fn open_connections(url: &str) -> Result<RedisConnections, String> {
    RedisConnections::open(url, REDIS_TIMEOUT)
}

/// The Redis-backed cache.
#[derive(Clone)]
pub struct RedisCache {
    connections: RedisConnections,
    prefix: String,
}

impl RedisCache {
    /// A cache whose keys are `{prefix}:{key}`.
    pub fn new(connections: RedisConnections, prefix: &str) -> Self {
        Self {
            connections,
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }
}

/// `raise_many`'s per-key step, atomic in Redis: set unless an integer at least as
/// high is there. (`EVAL` with the text: Redis caches the compiled script by its hash.)
const RAISE_SCRIPT: &str = "local cur = tonumber(redis.call('GET', KEYS[1])) \
    if cur == nil or cur < tonumber(ARGV[1]) then \
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end return 0";

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let key = self.key(key);
        self.connections
            .run(|mut conn| async move { conn.get(key).await })
            .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<String>>, CacheError> {
        // An explicit MGET: the reply is an array even for one key.
        let mut mget = redis::cmd("MGET");
        for key in keys {
            mget.arg(self.key(key));
        }
        self.connections
            .run(|mut conn| async move { mget.query_async(&mut conn).await })
            .await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = self.key(key);
        self.connections
            .run(|mut conn| async move { conn.pset_ex(key, value, millis).await })
            .await
    }

    async fn raise_many(&self, entries: &[(String, i64)], ttl: Duration) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        for (key, n) in entries {
            pipe.cmd("EVAL")
                .arg(RAISE_SCRIPT)
                .arg(1)
                .arg(self.key(key))
                .arg(*n)
                .arg(millis)
                .ignore();
        }
        self.connections
            .run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    async fn add(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut set = redis::cmd("SET");
        set.arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis);
        self.connections
            .run(|mut conn| async move {
                set.query_async::<Option<String>>(&mut conn)
                    .await
                    .map(|_| ())
            })
            .await
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, CacheError> {
        let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let key = self.key(key);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("INCRBY")
            .arg(&key)
            .arg(delta)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(seconds);
        self.connections
            .run(|mut conn| async move {
                let (value, _): (i64, i64) = pipe.query_async(&mut conn).await?;
                Ok(value)
            })
            .await
    }

    async fn take(&self, key: &str) -> Result<Option<String>, CacheError> {
        let mut getdel = redis::cmd("GETDEL");
        getdel.arg(self.key(key));
        self.connections
            .run(|mut conn| async move { getdel.query_async(&mut conn).await })
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let key = self.key(key);
        self.connections
            .run(|mut conn| async move { conn.del(key).await })
            .await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.connections
            .run(|mut conn| async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(|_| ())
            })
            .await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// The Redis pub/sub event bus. Publishing goes through the shared command
/// connections; one background task per process holds the subscription and feeds a
/// local broadcast.
pub struct RedisBus {
    connections: RedisConnections,
    prefix: String,
    local: Arc<MemoryBus>,
    /// Subscriptions the subscriber task holds (its one pattern, while subscribed).
    subscribed: Arc<std::sync::atomic::AtomicUsize>,
}

impl RedisBus {
    /// Starts the subscriber task (it reconnects on its own) and returns the bus.
    /// Must be called inside a tokio runtime.
    pub fn start(connections: RedisConnections, prefix: &str) -> Self {
        let local = Arc::new(MemoryBus::new());
        let subscribed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(subscribe_forever(
            connections.client().clone(),
            prefix.to_owned(),
            local.clone(),
            subscribed.clone(),
        ));
        Self {
            connections,
            prefix: prefix.to_owned(),
            local,
            subscribed,
        }
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}:{topic}", self.prefix)
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, topic: &str, payload: String) {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.channel(topic)).arg(&payload);
        let sent = self
            .connections
            .run(|mut conn| async move { publish.query_async::<i64>(&mut conn).await })
            .await;
        if let Err(err) = sent {
            tracing::warn!(error = %err, topic, "redis publish failed; delivering locally only");
            self.local.deliver(BusMessage {
                topic: topic.to_owned(),
                payload,
            });
        }
    }

    async fn publish_many(&self, events: Vec<(String, String)>) {
        if events.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (topic, payload) in &events {
            pipe.cmd("PUBLISH")
                .arg(self.channel(topic))
                .arg(payload)
                .ignore();
        }
        let sent = self
            .connections
            .run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await;
        if let Err(err) = sent {
            tracing::warn!(error = %err, events = events.len(), "redis publish failed; delivering locally only");
            for (topic, payload) in events {
                self.local.deliver(BusMessage { topic, payload });
            }
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<BusMessage>> {
        self.local.subscribe()
    }

    fn subscriptions(&self) -> usize {
        self.subscribed.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// Holds a `PSUBSCRIBE {prefix}:*` and forwards each message to the local bus;
/// re-subscribes after any failure.
async fn subscribe_forever(
    client: redis::Client,
    prefix: String,
    local: Arc<MemoryBus>,
    subscribed: Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let pattern = format!("{prefix}:*");
    let strip = format!("{prefix}:");
    let mut subscribed_before = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.psubscribe(&pattern).await {
                Ok(()) => {
                    subscribed.store(1, Ordering::Relaxed);
                    tracing::info!(pattern, "subscribed to redis events");
                    if subscribed_before {
                        // Events published while we were not subscribed are gone: tell
                        // local subscribers, so they can make their clients recover.
                        local.deliver(BusMessage {
                            topic: crate::bus::GAP_TOPIC.to_owned(),
                            payload: String::new(),
                        });
                    }
                    subscribed_before = true;
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let channel = message.get_channel_name();
                        let Some(topic) = channel.strip_prefix(&strip) else {
                            continue;
                        };
                        match message.get_payload::<String>() {
                            Ok(payload) => local.deliver(BusMessage {
                                topic: topic.to_owned(),
                                payload,
                            }),
                            Err(err) => tracing::warn!(error = %err, "undecodable redis event"),
                        }
                    }
                    subscribed.store(0, Ordering::Relaxed);
                    tracing::warn!("redis subscription ended; re-subscribing");
                }
                Err(err) => tracing::warn!(error = %err, "redis psubscribe failed"),
            },
            Err(err) => tracing::warn!(error = %err, "redis pub/sub connection failed"),
        }
        tokio::time::sleep(RESUBSCRIBE_BACKOFF).await;
    }
}
