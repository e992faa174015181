//! Production mode on a Redis Cluster: a three-master cluster of `redis-server`
//! processes started for each test (`CHAT_REDIS_URL` lists its nodes). The cache's keys
//! and the bus's sharded channels spread over the shards; two instances on the cluster
//! deliver, revoke and count presence across each other.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_db::bus::EventBus;
use chat_db::cache::Cache;
use chat_db::presence::{Changed, PresenceRegistry, RedisPresence};
use chat_db::redis::{RedisBus, RedisCache, open_connections};
use chat_test_support::{RedisCluster, TestApp, follow_topics, random_suffix};

fn prefix() -> String {
    format!("test-{}", random_suffix())
}

/// An instance's event bus on the cluster.
fn bus(cluster: &RedisCluster, prefix: &str) -> anyhow::Result<Arc<dyn EventBus>> {
    let connections = open_connections(&cluster.url()).map_err(anyhow::Error::msg)?;
    Ok(Arc::new(RedisBus::start(connections, prefix)))
}

/// How many of the cluster's nodes answer `command` (a count) with more than zero, and
/// the counts' sum.
async fn spread(cluster: &RedisCluster, command: &[&str]) -> anyhow::Result<(usize, i64)> {
    let counts = cluster.count_on_each_node(command).await?;
    Ok((
        counts.iter().filter(|n| **n > 0).count(),
        counts.iter().sum(),
    ))
}

#[actix_web::test]
async fn the_cache_and_presence_work_on_a_cluster() -> anyhow::Result<()> {
    let cluster = RedisCluster::start().await?;
    let prefix = prefix();
    let connections = open_connections(&cluster.url()).map_err(anyhow::Error::msg)?;
    let cache = RedisCache::new(connections.clone(), &prefix);
    let ttl = Duration::from_secs(60);
    cache.ping().await?;
    // Keys of many slots, read back in one call, in order, a miss included.
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        cache.set(key, &i.to_string(), ttl).await?;
    }
    let mut wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
    wanted.push("missing");
    let expected: Vec<Option<String>> =
        (0..40).map(|i| Some(i.to_string())).chain([None]).collect();
    assert_eq!(cache.get_many(&wanted).await?, expected);
    let (holding, total) = spread(&cluster, &["DBSIZE"]).await?;
    assert!(
        holding >= 2 && total >= 40,
        "keys were not spread: {holding} nodes, {total} keys"
    );
    // Raises of keys on different shards in one call, never lowering.
    cache
        .raise_many(&[("a".to_owned(), 5), ("b".to_owned(), 7)], ttl)
        .await?;
    cache
        .raise_many(&[("a".to_owned(), 3), ("b".to_owned(), 9)], ttl)
        .await?;
    assert_eq!(
        cache.get_many(&["a", "b"]).await?,
        [Some("5".to_owned()), Some("9".to_owned())]
    );
    assert_eq!(cache.incr("n", 2, ttl).await?, 2);
    cache.add("once", "t", ttl).await?;
    assert_eq!(cache.take("once").await?.as_deref(), Some("t"));
    assert_eq!(cache.take("once").await?, None);
    cache.delete("a").await?;
    assert_eq!(cache.get("a").await?, None);
    // Presence: two instances' registries count one user's sockets together.
    let lifetime = Duration::from_secs(30);
    let one = RedisPresence::new(connections.clone(), &prefix, lifetime);
    let two = RedisPresence::new(
        open_connections(&cluster.url()).map_err(anyhow::Error::msg)?,
        &prefix,
        lifetime,
    );
    assert_eq!(one.heartbeat().await?, Changed::default());
    assert_eq!(two.heartbeat().await?, Changed::default());
    assert_eq!(one.connected(1).await?, 1);
    assert_eq!(two.connected(1).await?, 2);
    assert_eq!(two.connected(2).await?, 1);
    assert_eq!(one.online(&[1, 2, 3]).await?, [true, true, false]);
    assert_eq!(two.disconnected(2).await?, 0);
    assert_eq!(one.online(&[2]).await?, [false]);
    assert_eq!(one.heartbeat().await?, Changed::default());
    assert_eq!(two.heartbeat().await?, Changed::default());
    Ok(())
}

#[actix_web::test]
async fn events_cross_instances_on_sharded_channels() -> anyhow::Result<()> {
    let cluster = RedisCluster::start().await?;
    let prefix = prefix();
    let (one, two) = (bus(&cluster, &prefix)?, bus(&cluster, &prefix)?);
    let mut heard = two.subscribe();
    let topics: Vec<String> = (0..30).map(|i| format!("chat.{i}")).collect();
    follow_topics(&two, &mut heard, &topics).await?;
    // The chat channels are held on the shards that own them, spread over the nodes.
    let (holding, channels) = spread(&cluster, &["PUBSUB", "SHARDCHANNELS"]).await?;
    assert!(
        holding >= 2 && channels >= 30,
        "sharded channels: {channels} on {holding} nodes"
    );
    // Many chats' events in one publish, interleaved; and a broadcast nobody followed.
    let events: Vec<(String, String)> = (0..5)
        .flat_map(|round| topics.iter().map(move |t| (t.clone(), round.to_string())))
        .collect();
    one.publish_many(events).await;
    one.publish("presence.7", "online".to_owned()).await;
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    let mut presence = 0;
    while got.values().map(Vec::len).sum::<usize>() < 150 || presence == 0 {
        let message = tokio::time::timeout(Duration::from_secs(10), heard.recv()).await??;
        if message.topic == "presence.7" {
            presence += 1;
        } else if message.topic.starts_with("chat.") {
            got.entry(message.topic.clone())
                .or_default()
                .push(message.payload.clone());
        }
    }
    for topic in &topics {
        assert_eq!(
            got.get(topic).map(Vec::as_slice),
            Some(&["0", "1", "2", "3", "4"].map(str::to_owned)[..]),
            "{topic}'s events in order"
        );
    }
    // Unfollowed, a chat is no longer heard; the broadcast pattern stays.
    two.unfollow(topics.clone());
    if let Some(done) = two.barrier() {
        done.await?;
    }
    assert_eq!(two.subscriptions(), 1);
    one.publish("chat.0", "late".to_owned()).await;
    one.publish("presence.8", "online".to_owned()).await;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), heard.recv()).await??;
        assert_ne!(message.topic, "chat.0", "an unfollowed chat was heard");
        if message.topic == "presence.8" {
            break;
        }
    }
    Ok(())
}

#[actix_web::test]
async fn a_dropped_shard_connection_is_announced_and_subscribed_again() -> anyhow::Result<()> {
    let cluster = RedisCluster::start().await?;
    let prefix = prefix();
    let (one, two) = (bus(&cluster, &prefix)?, bus(&cluster, &prefix)?);
    let mut heard = two.subscribe();
    let topics: Vec<String> = (0..12).map(|i| format!("chat.{i}")).collect();
    follow_topics(&two, &mut heard, &topics).await?;
    // Every node cuts its subscribed clients (a restart or a network cut would).
    let killed: i64 = cluster
        .count_on_each_node(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .await?
        .iter()
        .sum();
    assert!(killed >= 1, "no subscribed client was cut");
    // Local subscribers are told that events may have been missed …
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), heard.recv()).await??;
        if message.topic == chat_db::bus::GAP_TOPIC {
            break;
        }
    }
    // … once every channel is held again.
    for topic in &topics {
        one.publish(topic, "after".to_owned()).await;
    }
    let mut again: Vec<String> = Vec::new();
    while again.len() < topics.len() {
        let message = tokio::time::timeout(Duration::from_secs(10), heard.recv()).await??;
        if message.payload == "after" {
            again.push(message.topic.clone());
        }
    }
    again.sort();
    let mut expected = topics.clone();
    expected.sort();
    assert_eq!(again, expected);
    Ok(())
}

#[actix_web::test]
async fn two_instances_on_a_cluster_deliver_presence_and_logouts() -> anyhow::Result<()> {
    let cluster = RedisCluster::start().await?;
    let a = TestApp::spawn_on_cluster(&cluster).await?;
    let b = a.spawn_peer().await?;
    crate::ws::sockets_hear_each_other_across_instances(a, b).await
}

#[actix_web::test]
async fn a_logout_on_a_cluster_is_refused_by_the_other_instance() -> anyhow::Result<()> {
    let cluster = RedisCluster::start().await?;
    let a = TestApp::spawn_on_cluster(&cluster).await?;
    let b = a.spawn_peer().await?;
    // Readiness pings every master.
    let ready = a.get("/readyz", None).await?;
    ready.expect_status(200)?;
    crate::infra::logout_is_refused_across_instances(a, b).await
}

#[actix_web::test]
async fn an_instance_on_a_cluster_receives_only_what_it_follows() -> anyhow::Result<()> {
    let cluster = RedisCluster::start().await?;
    let a = TestApp::spawn_on_cluster(&cluster).await?;
    let b = a.spawn_peer().await?;
    crate::scaleout::receives_only_what_it_follows(a, b).await
}
