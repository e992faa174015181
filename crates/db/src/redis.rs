//! Redis adapters: the shared cache and the cross-instance event bus.
//!
//! Every key and channel starts with the configured prefix (`CHAT_REDIS_PREFIX`):
//! pub/sub ignores Redis database numbers, so deployments and parallel test runs
//! sharing one Redis would otherwise hear each other.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use futures_util::StreamExt;
use tokio::sync::broadcast;

use crate::bus::{BusMessage, EventBus, MemoryBus};
use crate::cache::{Cache, CacheError};

/// How long a request waits on Redis before treating it as down and using the
/// database: a Redis outage must cost milliseconds, not the request.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between attempts to re-establish the pub/sub subscription.
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_secs(1);
/// Connections in the command pool.
const REDIS_POOL_SIZE: usize = 32;

/// Opens the command pool (lazily: nothing connects until first use).
pub fn connect_pool(url: &str) -> Result<Pool, String> {
    let mut config = Config::from_url(url);
    let mut pool = PoolConfig::new(REDIS_POOL_SIZE);
    pool.timeouts = Timeouts {
        wait: Some(REDIS_TIMEOUT),
        create: Some(REDIS_TIMEOUT),
        recycle: Some(REDIS_TIMEOUT),
    };
    config.pool = Some(pool);
    config
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|e| e.to_string())
}

/// The Redis-backed cache.
#[derive(Clone)]
pub struct RedisCache {
    pool: Pool,
    prefix: String,
}

impl RedisCache {
    /// A cache whose keys are `{prefix}:{key}`.
    pub fn new(pool: Pool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, CacheError> {
        self.pool.get().await.map_err(|e| CacheError(e.to_string()))
    }
}

fn redis_err(err: redis::RedisError) -> CacheError {
    CacheError(err.to_string())
}

/// Bounds a Redis round trip: a hung Redis must not hang the request.
async fn bounded<T>(fut: impl Future<Output = Result<T, CacheError>>) -> Result<T, CacheError> {
    tokio::time::timeout(REDIS_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(CacheError("timed out".to_owned())))
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        bounded(async {
            let mut conn = self.conn().await?;
            conn.get(self.key(key)).await.map_err(redis_err)
        })
        .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<String>>, CacheError> {
        let keys: Vec<String> = keys.iter().map(|key| self.key(key)).collect();
        bounded(async {
            let mut conn = self.conn().await?;
            // An explicit MGET: the reply is an array even for one key.
            redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut *conn)
                .await
                .map_err(redis_err)
        })
        .await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        bounded(async {
            let mut conn = self.conn().await?;
            conn.pset_ex(self.key(key), value, millis)
                .await
                .map_err(redis_err)
        })
        .await
    }

    async fn add(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        bounded(async {
            let mut conn = self.conn().await?;
            redis::cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async::<Option<String>>(&mut *conn)
                .await
                .map(|_| ())
                .map_err(redis_err)
        })
        .await
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, CacheError> {
        let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        bounded(async {
            let mut conn = self.conn().await?;
            let (value, _): (i64, i64) = redis::pipe()
                .atomic()
                .cmd("INCRBY")
                .arg(self.key(key))
                .arg(delta)
                .cmd("EXPIRE")
                .arg(self.key(key))
                .arg(seconds)
                .query_async(&mut *conn)
                .await
                .map_err(redis_err)?;
            Ok(value)
        })
        .await
    }

    async fn take(&self, key: &str) -> Result<Option<String>, CacheError> {
        bounded(async {
            let mut conn = self.conn().await?;
            redis::cmd("GETDEL")
                .arg(self.key(key))
                .query_async::<Option<String>>(&mut *conn)
                .await
                .map_err(redis_err)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        bounded(async {
            let mut conn = self.conn().await?;
            conn.del(self.key(key)).await.map_err(redis_err)
        })
        .await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        bounded(async {
            let mut conn = self.conn().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut *conn)
                .await
                .map(|_| ())
                .map_err(redis_err)
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// The Redis pub/sub event bus. Publishing goes through the command pool; one
/// background task per process holds the subscription and feeds a local broadcast.
pub struct RedisBus {
    pool: Pool,
    prefix: String,
    local: Arc<MemoryBus>,
}

impl RedisBus {
    /// Starts the subscriber task (it reconnects on its own) and returns the bus.
    /// Must be called inside a tokio runtime.
    pub fn start(url: &str, pool: Pool, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let local = Arc::new(MemoryBus::new());
        tokio::spawn(subscribe_forever(client, prefix.to_owned(), local.clone()));
        Ok(Self {
            pool,
            prefix: prefix.to_owned(),
            local,
        })
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}:{topic}", self.prefix)
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, topic: &str, payload: String) {
        let channel = self.channel(topic);
        let sent = bounded(async {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| CacheError(e.to_string()))?;
            conn.publish::<_, _, i64>(&channel, &payload)
                .await
                .map_err(redis_err)
        })
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
        let sent = bounded(async {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| CacheError(e.to_string()))?;
            pipe.query_async::<()>(&mut *conn).await.map_err(redis_err)
        })
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

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// Holds a `PSUBSCRIBE {prefix}:*` and forwards each message to the local bus;
/// re-subscribes after any failure.
async fn subscribe_forever(client: redis::Client, prefix: String, local: Arc<MemoryBus>) {
    let pattern = format!("{prefix}:*");
    let strip = format!("{prefix}:");
    let mut subscribed_before = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.psubscribe(&pattern).await {
                Ok(()) => {
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
                    tracing::warn!("redis subscription ended; re-subscribing");
                }
                Err(err) => tracing::warn!(error = %err, "redis psubscribe failed"),
            },
            Err(err) => tracing::warn!(error = %err, "redis pub/sub connection failed"),
        }
        tokio::time::sleep(RESUBSCRIBE_BACKOFF).await;
    }
}
