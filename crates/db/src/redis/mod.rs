//! Redis adapters: the shared cache and the cross-instance event bus.
//!
//! Every key and channel starts with the configured prefix (`CHAT_REDIS_PREFIX`):
//! pub/sub ignores Redis database numbers, so deployments and parallel test runs
//! sharing one Redis would otherwise hear each other.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::bus::{BROADCAST_PREFIXES, BusMessage, EventBus, MemoryBus};
use crate::cache::{Cache, CacheError};

mod cluster_subscriber;
mod connections;

pub use connections::{RedisConn, RedisConnections, RedisTarget};

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
        let raise = |key: &str, n: i64| {
            let mut eval = redis::cmd("EVAL");
            eval.arg(RAISE_SCRIPT)
                .arg(1)
                .arg(self.key(key))
                .arg(n)
                .arg(millis);
            eval
        };
        if self.connections.is_cluster() {
            // A pipeline must stay in one slot: each key's step goes on its own, all at
            // once over the multiplexed connections.
            let raises = entries.iter().map(|(key, n)| {
                let eval = raise(key, *n);
                self.connections
                    .run(|mut conn| async move { eval.query_async::<()>(&mut conn).await })
            });
            return futures_util::future::try_join_all(raises).await.map(|_| ());
        }
        let mut pipe = redis::pipe();
        for (key, n) in entries {
            pipe.add_command(raise(key, *n)).ignore();
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

    fn failures(&self) -> crate::cache::BackendFailures {
        self.connections.failures()
    }
}

/// The Redis pub/sub event bus. Publishing goes through the shared command
/// connections; one background task per process holds the subscriptions — a channel per
/// topic some local socket follows, plus the patterns every instance hears
/// ([`BROADCAST_PREFIXES`]) — and feeds a local broadcast.
pub struct RedisBus {
    connections: RedisConnections,
    prefix: String,
    local: Arc<MemoryBus>,
    /// Subscriptions the subscriber task holds now (channels and patterns).
    subscribed: Arc<AtomicUsize>,
    /// Follow/unfollow requests, in call order, to the subscriber task.
    interest: mpsc::UnboundedSender<Interest>,
}

/// A change of what this instance follows, or a wait for the changes before it.
#[derive(Debug)]
enum Interest {
    Follow(Vec<String>),
    Unfollow(Vec<String>),
    Barrier(oneshot::Sender<()>),
}

impl RedisBus {
    /// Starts the subscriber task (it reconnects on its own) and returns the bus.
    /// Must be called inside a tokio runtime.
    pub fn start(connections: RedisConnections, prefix: &str) -> Self {
        let local = Arc::new(MemoryBus::new());
        let subscribed = Arc::new(AtomicUsize::new(0));
        let (interest, requests) = mpsc::unbounded_channel();
        match connections.target() {
            RedisTarget::Single(client) => {
                tokio::spawn(subscribe_forever(
                    client.clone(),
                    Channels::new(prefix),
                    local.clone(),
                    subscribed.clone(),
                    requests,
                ));
            }
            RedisTarget::Cluster(nodes) => {
                tokio::spawn(cluster_subscriber::subscribe_forever(
                    nodes.clone(),
                    connections.timeout(),
                    Channels::new(prefix),
                    local.clone(),
                    subscribed.clone(),
                    requests,
                ));
            }
        }
        Self {
            connections,
            prefix: prefix.to_owned(),
            local,
            subscribed,
            interest,
        }
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}:{topic}", self.prefix)
    }

    /// The publish command for `topic`: on a cluster, `SPUBLISH` (the shard that owns
    /// the channel's slot carries it) except for broadcast topics, which every instance
    /// hears through a pattern and so go cluster-wide with `PUBLISH`.
    fn publish_command(&self, topic: &str) -> &'static str {
        if self.connections.is_cluster() && !is_broadcast(topic) {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// A cluster's publish of many events: a pipeline per channel (a pipeline must stay
    /// in one slot; one channel's events keep their order), the channels at once. The
    /// events of a channel whose pipeline failed are delivered locally only (those of
    /// the others come back over the subscription, and must not twice).
    async fn publish_many_sharded(&self, events: Vec<(String, String)>) {
        let mut channels: Vec<(String, Vec<String>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (topic, payload) in events {
            let at = *index.entry(topic.clone()).or_insert_with(|| {
                channels.push((topic, Vec::new()));
                channels.len() - 1
            });
            channels[at].1.push(payload);
        }
        let sends = channels.iter().map(|(topic, payloads)| {
            let mut pipe = redis::pipe();
            for payload in payloads {
                pipe.cmd(self.publish_command(topic))
                    .arg(self.channel(topic))
                    .arg(payload)
                    .ignore();
            }
            self.connections
                .run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
        });
        let outcomes = futures_util::future::join_all(sends).await;
        for ((topic, payloads), outcome) in channels.into_iter().zip(outcomes) {
            if let Err(err) = outcome {
                tracing::warn!(error = %err, topic, events = payloads.len(), "redis publish failed; delivering locally only");
                for payload in payloads {
                    self.local.deliver(BusMessage {
                        topic: topic.clone(),
                        payload,
                    });
                }
            }
        }
    }
}

/// Whether every instance hears `topic` whatever its sockets follow.
fn is_broadcast(topic: &str) -> bool {
    BROADCAST_PREFIXES.iter().any(|p| topic.starts_with(p))
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, topic: &str, payload: String) {
        let mut publish = redis::cmd(self.publish_command(topic));
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
        if self.connections.is_cluster() {
            return self.publish_many_sharded(events).await;
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
        self.subscribed.load(Ordering::Relaxed)
    }

    fn follow(&self, topics: Vec<String>) {
        // The task ends only with the runtime; a send after that has nobody to tell.
        let _ = self.interest.send(Interest::Follow(topics));
    }

    fn unfollow(&self, topics: Vec<String>) {
        let _ = self.interest.send(Interest::Unfollow(topics));
    }

    fn barrier(&self) -> Option<oneshot::Receiver<()>> {
        let (done, wait) = oneshot::channel();
        self.interest.send(Interest::Barrier(done)).ok()?;
        Some(wait)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// How long a round of (un)subscriptions may take before the connection counts as dead
/// (messages are not forwarded while a round waits for its confirmations).
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Channels per `SUBSCRIBE` command when (re)subscribing many at once.
const SUBSCRIBE_CHUNK: usize = 1_000;

/// Channel names of one deployment: `{prefix}:{topic}`.
struct Channels {
    prefix: String,
    patterns: Vec<String>,
}

impl Channels {
    fn new(prefix: &str) -> Self {
        Channels {
            prefix: format!("{prefix}:"),
            patterns: BROADCAST_PREFIXES
                .iter()
                .map(|p| format!("{prefix}:{p}*"))
                .collect(),
        }
    }

    fn of<'a>(&self, topics: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        topics
            .into_iter()
            .map(|t| format!("{}{t}", self.prefix))
            .collect()
    }

    fn topic<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(&self.prefix)
    }
}

/// What one round of requests changes: topics to subscribe and to unsubscribe, net of
/// requests that cancel out (followed and unfollowed again before the round ran), and
/// who waits for the round to be in effect.
#[derive(Debug, Default)]
struct Changes {
    add: Vec<String>,
    remove: Vec<String>,
    waiting: Vec<oneshot::Sender<()>>,
}

impl Changes {
    /// Tells the barriers of the round that it is in effect.
    fn done(self) {
        for waiter in self.waiting {
            // A handshake that stopped waiting has nobody to tell.
            let _ = waiter.send(());
        }
    }
}

/// Applies `request` and every request already waiting to `wanted` (the topics
/// subscribed, each with the number of follows not yet unfollowed), returning the net
/// change.
fn take_changes(
    first: Interest,
    queued: &mut mpsc::UnboundedReceiver<Interest>,
    wanted: &mut HashMap<String, usize>,
) -> Changes {
    let mut add: HashSet<String> = HashSet::new();
    let mut remove: HashSet<String> = HashSet::new();
    let mut waiting = Vec::new();
    let mut request = Some(first);
    while let Some(next) = request.take().or_else(|| queued.try_recv().ok()) {
        match next {
            Interest::Follow(topics) => {
                for topic in topics {
                    let follows = wanted.entry(topic.clone()).or_insert(0);
                    *follows += 1;
                    if *follows == 1 && !remove.remove(&topic) {
                        add.insert(topic);
                    }
                }
            }
            Interest::Unfollow(topics) => {
                for topic in topics {
                    let Some(follows) = wanted.get_mut(&topic) else {
                        continue;
                    };
                    *follows -= 1;
                    if *follows == 0 {
                        wanted.remove(&topic);
                        if !add.remove(&topic) {
                            remove.insert(topic);
                        }
                    }
                }
            }
            Interest::Barrier(waiter) => waiting.push(waiter),
        }
    }
    Changes {
        add: add.into_iter().collect(),
        remove: remove.into_iter().collect(),
        waiting,
    }
}

/// Holds this instance's subscriptions and forwards each message to the local bus;
/// re-subscribes (everything still wanted) after any failure.
async fn subscribe_forever(
    client: redis::Client,
    channels: Channels,
    local: Arc<MemoryBus>,
    subscribed: Arc<AtomicUsize>,
    mut requests: mpsc::UnboundedReceiver<Interest>,
) {
    let mut wanted: HashMap<String, usize> = HashMap::new();
    let mut subscribed_before = false;
    // Barriers that came while there was no subscription: answered once there is one.
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        // What changed while there was no subscription.
        while let Ok(request) = requests.try_recv() {
            waiting.extend(take_changes(request, &mut requests, &mut wanted).waiting);
        }
        let connected = tokio::time::timeout(
            SUBSCRIBE_TIMEOUT,
            subscribe_all(&client, &channels, &wanted),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out()));
        match connected {
            Ok((mut sink, mut stream)) => {
                Changes {
                    waiting: std::mem::take(&mut waiting),
                    ..Changes::default()
                }
                .done();
                subscribed.store(wanted.len() + channels.patterns.len(), Ordering::Relaxed);
                tracing::info!(channels = wanted.len(), "subscribed to redis events");
                if subscribed_before {
                    // Events published while we were not subscribed are gone: tell
                    // local subscribers, so they can make their clients recover.
                    local.deliver(BusMessage {
                        topic: crate::bus::GAP_TOPIC.to_owned(),
                        payload: String::new(),
                    });
                }
                subscribed_before = true;
                loop {
                    tokio::select! {
                        message = stream.next() => {
                            let Some(message) = message else { break };
                            let channel = message.get_channel_name();
                            let Some(topic) = channels.topic(channel) else { continue };
                            match message.get_payload::<String>() {
                                Ok(payload) => local.deliver_paced(BusMessage {
                                    topic: topic.to_owned(),
                                    payload,
                                }).await,
                                Err(err) => tracing::warn!(error = %err, "undecodable redis event"),
                            }
                        }
                        request = requests.recv() => {
                            // The bus is gone (the process is stopping).
                            let Some(request) = request else { return };
                            let mut changes = take_changes(request, &mut requests, &mut wanted);
                            let applied = tokio::time::timeout(SUBSCRIBE_TIMEOUT, apply(&mut sink, &channels, &changes))
                                .await
                                .unwrap_or_else(|_| Err(timed_out()));
                            if let Err(err) = applied {
                                tracing::warn!(error = %err, "redis subscribe failed");
                                // Answered after the re-subscription.
                                waiting.append(&mut changes.waiting);
                                break;
                            }
                            subscribed.store(wanted.len() + channels.patterns.len(), Ordering::Relaxed);
                            changes.done();
                        }
                    }
                }
                subscribed.store(0, Ordering::Relaxed);
                tracing::warn!("redis subscription ended; re-subscribing");
            }
            Err(err) => tracing::warn!(error = %err, "redis pub/sub connection failed"),
        }
        tokio::time::sleep(RESUBSCRIBE_BACKOFF).await;
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "redis did not confirm the subscriptions in time",
    ))
}

/// A pub/sub connection subscribed to the broadcast patterns and every wanted channel.
async fn subscribe_all(
    client: &redis::Client,
    channels: &Channels,
    wanted: &HashMap<String, usize>,
) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    sink.psubscribe(&channels.patterns).await?;
    let names = channels.of(wanted.keys());
    for chunk in names.chunks(SUBSCRIBE_CHUNK) {
        sink.subscribe(chunk).await?;
    }
    Ok((sink, stream))
}

/// Sends one round's changes: unsubscribes first, so a connection never holds more than
/// what is wanted plus what is being added.
async fn apply(
    sink: &mut PubSubSink,
    channels: &Channels,
    changes: &Changes,
) -> redis::RedisResult<()> {
    for chunk in channels.of(&changes.remove).chunks(SUBSCRIBE_CHUNK) {
        sink.unsubscribe(chunk).await?;
    }
    for chunk in channels.of(&changes.add).chunks(SUBSCRIBE_CHUNK) {
        sink.subscribe(chunk).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn requests_that_cancel_out_change_nothing() {
        let (send, mut waiting) = mpsc::unbounded_channel();
        let mut wanted: HashMap<String, usize> = HashMap::from([("chat.1".to_owned(), 1)]);
        for request in [
            Interest::Follow(topics(&["chat.2", "chat.3"])),
            Interest::Unfollow(topics(&["chat.2", "chat.1"])),
            Interest::Follow(topics(&["chat.1", "chat.4"])),
            Interest::Unfollow(topics(&["chat.9"])),
        ] {
            let _ = send.send(request);
        }
        let first = waiting.try_recv().unwrap_or(Interest::Follow(Vec::new()));
        let mut changes = take_changes(first, &mut waiting, &mut wanted);
        changes.add.sort();
        assert_eq!(
            (changes.add, changes.remove),
            (topics(&["chat.3", "chat.4"]), Vec::<String>::new())
        );
        let mut now: Vec<&String> = wanted.keys().collect();
        now.sort();
        assert_eq!(now, ["chat.1", "chat.3", "chat.4"]);
        let changes = take_changes(
            Interest::Unfollow(topics(&["chat.3"])),
            &mut waiting,
            &mut wanted,
        );
        assert_eq!(changes.remove, ["chat.3"]);
    }

    #[test]
    fn a_topic_followed_twice_stays_until_unfollowed_twice() {
        let (_send, mut queued) = mpsc::unbounded_channel();
        let mut wanted = HashMap::new();
        let follow = || Interest::Follow(topics(&["chat.1"]));
        let unfollow = || Interest::Unfollow(topics(&["chat.1"]));
        assert_eq!(
            take_changes(follow(), &mut queued, &mut wanted).add,
            ["chat.1"]
        );
        assert!(
            take_changes(follow(), &mut queued, &mut wanted)
                .add
                .is_empty()
        );
        assert!(
            take_changes(unfollow(), &mut queued, &mut wanted)
                .remove
                .is_empty()
        );
        assert_eq!(
            take_changes(unfollow(), &mut queued, &mut wanted).remove,
            ["chat.1"]
        );
        assert!(
            take_changes(unfollow(), &mut queued, &mut wanted)
                .remove
                .is_empty()
        );
        assert!(wanted.is_empty());
    }

    #[test]
    fn channels_carry_the_prefix_and_patterns_cover_broadcast_topics() {
        let channels = Channels::new("staging");
        assert_eq!(channels.of(&topics(&["chat.7"])), ["staging:chat.7"]);
        assert_eq!(channels.topic("staging:user.3"), Some("user.3"));
        assert_eq!(channels.topic("other:user.3"), None);
        assert_eq!(channels.patterns, ["staging:presence.*"]);
    }
}
