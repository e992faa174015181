//! The Redis adapters against a real Redis (`CHAT_TEST_REDIS_URL`, default local).

use std::time::Duration;

use chat_db::bus::EventBus;
use chat_db::cache::Cache;
use chat_db::redis::{RedisBus, RedisCache, open_connections};

fn url() -> String {
    std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn prefix() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

#[tokio::test]
async fn cache_set_add_get_delete_and_expiry() -> anyhow::Result<()> {
    let prefix = prefix();
    let cache = RedisCache::new(
        open_connections(&url()).map_err(anyhow::Error::msg)?,
        &prefix,
    );
    cache.ping().await?;
    cache.set("k", "v1", Duration::from_secs(60)).await?;
    assert_eq!(cache.get("k").await?.as_deref(), Some("v1"));
    cache.add("k", "v2", Duration::from_secs(60)).await?;
    assert_eq!(
        cache.get("k").await?.as_deref(),
        Some("v1"),
        "add must not overwrite"
    );
    cache.delete("k").await?;
    assert_eq!(cache.get("k").await?, None);
    cache.add("k", "v3", Duration::from_secs(60)).await?;
    assert_eq!(cache.get("k").await?.as_deref(), Some("v3"));
    assert_eq!(cache.incr("n", 1, Duration::from_secs(60)).await?, 1);
    assert_eq!(cache.incr("n", 2, Duration::from_secs(60)).await?, 3);
    assert_eq!(cache.incr("n", -3, Duration::from_secs(60)).await?, 0);
    cache.set("once", "t", Duration::from_secs(60)).await?;
    assert_eq!(cache.take("once").await?.as_deref(), Some("t"));
    assert_eq!(cache.take("once").await?, None, "take is single-use");
    cache.set("short", "x", Duration::from_millis(50)).await?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(cache.get("short").await?, None);
    // Keys live under the prefix, so another deployment does not see them.
    let other = RedisCache::new(
        open_connections(&url()).map_err(anyhow::Error::msg)?,
        &format!("{prefix}-other"),
    );
    assert_eq!(other.get("k").await?, None);
    cache.delete("k").await?;
    Ok(())
}

#[tokio::test]
async fn get_many_answers_each_key_in_order() -> anyhow::Result<()> {
    let cache = RedisCache::new(
        open_connections(&url()).map_err(anyhow::Error::msg)?,
        &prefix(),
    );
    cache.set("a", "1", Duration::from_secs(60)).await?;
    cache.set("c", "3", Duration::from_secs(60)).await?;
    assert_eq!(
        cache.get_many(&["a", "b", "c"]).await?,
        [Some("1".to_owned()), None, Some("3".to_owned())]
    );
    assert_eq!(
        cache.get_many(&["c"]).await?,
        [Some("3".to_owned())],
        "one key"
    );
    assert_eq!(cache.get_many(&["b"]).await?, [None]);
    cache.delete("a").await?;
    cache.delete("c").await?;
    Ok(())
}

#[tokio::test]
async fn raise_many_only_ever_raises() -> anyhow::Result<()> {
    let cache = RedisCache::new(
        open_connections(&url()).map_err(anyhow::Error::msg)?,
        &prefix(),
    );
    let ttl = Duration::from_secs(60);
    let raise = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
        pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    };
    cache
        .raise_many(&raise(&[("a", 10), ("b", 3)]), ttl)
        .await?;
    // A lower value landing late changes nothing; a higher one and a missing key are set.
    cache
        .raise_many(&raise(&[("a", 9), ("b", 4), ("c", 1)]), ttl)
        .await?;
    cache.raise_many(&[], ttl).await?;
    assert_eq!(
        cache.get_many(&["a", "b", "c"]).await?,
        [
            Some("10".to_owned()),
            Some("4".to_owned()),
            Some("1".to_owned())
        ]
    );
    for key in ["a", "b", "c"] {
        cache.delete(key).await?;
    }
    Ok(())
}

#[tokio::test]
async fn cache_errors_fast_when_redis_is_down() -> anyhow::Result<()> {
    let cache = RedisCache::new(
        open_connections("redis://127.0.0.1:1").map_err(anyhow::Error::msg)?,
        "down",
    );
    let started = std::time::Instant::now();
    assert!(cache.get("k").await.is_err());
    assert!(cache.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}

type Receiver = tokio::sync::broadcast::Receiver<std::sync::Arc<chat_db::bus::BusMessage>>;

/// A receiver on `bus` once its (asynchronous) PSUBSCRIBE is in place: probes are
/// published until one comes back, then drained. The instance follows `topics` (and the
/// probe, after them: once the probe is heard, so are they).
async fn subscribed(bus: &RedisBus, topics: &[&str]) -> anyhow::Result<Receiver> {
    let mut receiver = bus.subscribe();
    let probe = format!("probe-{:016x}", rand::random::<u64>());
    bus.follow(topics.iter().map(|t| (*t).to_owned()).collect());
    bus.follow(vec![probe.clone()]);
    for _ in 0..100 {
        bus.publish(&probe, String::new()).await;
        let heard = tokio::time::timeout(Duration::from_millis(100), receiver.recv()).await;
        if matches!(&heard, Ok(Ok(message)) if message.topic == probe) {
            while receiver.try_recv().is_ok() {}
            return Ok(receiver);
        }
    }
    anyhow::bail!("the redis subscription never came up")
}

/// The next event that is not a readiness probe (other buses' probes arrive too).
async fn next_event(
    receiver: &mut Receiver,
) -> anyhow::Result<std::sync::Arc<chat_db::bus::BusMessage>> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await??;
        if !message.topic.starts_with("probe-") {
            return Ok(message);
        }
    }
}

#[tokio::test]
async fn events_cross_instances_and_stay_within_their_prefix() -> anyhow::Result<()> {
    let prefix = prefix();
    let pool = || open_connections(&url()).map_err(anyhow::Error::msg);
    let a = RedisBus::start(pool()?, &prefix);
    let b = RedisBus::start(pool()?, &prefix);
    let stranger = RedisBus::start(pool()?, &format!("{prefix}-x"));
    let mut on_a = subscribed(&a, &["chat.7"]).await?;
    let mut on_b = subscribed(&b, &["chat.7"]).await?;
    let mut on_stranger = subscribed(&stranger, &["chat.7"]).await?;
    a.publish("chat.7", r#"{"n":1}"#.to_owned()).await;
    a.publish("chat.7", r#"{"n":2}"#.to_owned()).await;
    for receiver in [&mut on_a, &mut on_b] {
        for n in 1..=2 {
            let message = next_event(receiver).await?;
            assert_eq!(message.topic, "chat.7");
            assert_eq!(
                message.payload,
                format!(r#"{{"n":{n}}}"#),
                "events arrive in publish order"
            );
        }
    }
    let leaked =
        tokio::time::timeout(Duration::from_millis(300), next_event(&mut on_stranger)).await;
    assert!(leaked.is_err(), "an event crossed into another prefix");
    Ok(())
}

#[tokio::test]
async fn publish_many_keeps_its_order_across_instances() -> anyhow::Result<()> {
    let prefix = prefix();
    let pool = || open_connections(&url()).map_err(anyhow::Error::msg);
    let a = RedisBus::start(pool()?, &prefix);
    let b = RedisBus::start(pool()?, &prefix);
    let mut on_b = subscribed(&b, &["chat.0", "chat.1", "chat.2"]).await?;
    let batch: Vec<(String, String)> = (1..=20)
        .map(|n| (format!("chat.{}", n % 3), format!(r#"{{"n":{n}}}"#)))
        .collect();
    a.publish_many(batch.clone()).await;
    for (topic, payload) in batch {
        let message = next_event(&mut on_b).await?;
        assert_eq!(
            (message.topic.as_str(), message.payload.as_str()),
            (topic.as_str(), payload.as_str())
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_instance_hears_only_the_topics_it_follows_and_every_presence() -> anyhow::Result<()> {
    let prefix = prefix();
    let pool = || open_connections(&url()).map_err(anyhow::Error::msg);
    let (a, b) = (
        RedisBus::start(pool()?, &prefix),
        RedisBus::start(pool()?, &prefix),
    );
    let mut on_b = subscribed(&b, &["chat.1", "user.5"]).await?;
    assert_eq!(
        b.subscriptions(),
        4,
        "chat.1, user.5, the probe and presence.*"
    );
    a.publish_many(vec![
        ("chat.2".to_owned(), "not followed".to_owned()),
        ("chat.1".to_owned(), "followed".to_owned()),
        ("user.6".to_owned(), "not followed".to_owned()),
        (
            "presence.6".to_owned(),
            "everyone hears presence".to_owned(),
        ),
        ("user.5".to_owned(), "followed".to_owned()),
    ])
    .await;
    let mut heard = Vec::new();
    for _ in 0..3 {
        let message = next_event(&mut on_b).await?;
        heard.push((message.topic.clone(), message.payload.clone()));
    }
    assert_eq!(
        heard,
        [
            ("chat.1".to_owned(), "followed".to_owned()),
            (
                "presence.6".to_owned(),
                "everyone hears presence".to_owned()
            ),
            ("user.5".to_owned(), "followed".to_owned()),
        ]
    );
    // Unfollowed, then something followed after it is heard: the unfollow took effect.
    b.unfollow(vec!["chat.1".to_owned()]);
    let mut on_b = subscribed(&b, &["chat.3"]).await?;
    a.publish_many(vec![
        ("chat.1".to_owned(), "no longer followed".to_owned()),
        ("chat.3".to_owned(), "followed".to_owned()),
    ])
    .await;
    let message = next_event(&mut on_b).await?;
    assert_eq!(
        (message.topic.as_str(), message.payload.as_str()),
        ("chat.3", "followed")
    );
    Ok(())
}

#[tokio::test]
async fn publish_many_without_redis_still_reaches_local_subscribers() -> anyhow::Result<()> {
    let bus = RedisBus::start(
        open_connections("redis://127.0.0.1:1").map_err(anyhow::Error::msg)?,
        "down",
    );
    let mut receiver = bus.subscribe();
    bus.publish_many(vec![
        ("chat.1".to_owned(), "1".to_owned()),
        ("chat.1".to_owned(), "2".to_owned()),
    ])
    .await;
    for expected in ["1", "2"] {
        let message = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await??;
        assert_eq!(message.payload, expected);
    }
    Ok(())
}

#[tokio::test]
async fn publishing_without_redis_still_reaches_local_subscribers() -> anyhow::Result<()> {
    let bus = RedisBus::start(
        open_connections("redis://127.0.0.1:1").map_err(anyhow::Error::msg)?,
        "down",
    );
    let mut receiver = bus.subscribe();
    bus.publish("user.1", "{}".to_owned()).await;
    let message = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await??;
    assert_eq!(message.topic, "user.1");
    Ok(())
}

#[tokio::test]
async fn a_killed_connection_is_replaced_and_costs_at_most_one_command() -> anyhow::Result<()> {
    let connections = open_connections(&url()).map_err(anyhow::Error::msg)?;
    let cache = RedisCache::new(connections.clone(), &prefix());
    cache.set("k", "v", Duration::from_secs(60)).await?;
    let client_id = || {
        connections.run(|mut conn| async move {
            redis::cmd("CLIENT")
                .arg("ID")
                .query_async::<i64>(&mut conn)
                .await
        })
    };
    let first = client_id().await?;
    // Cut this thread's connection from the server side (only this one: other tests
    // share the Redis).
    let mut admin = redis::Client::open(url())?
        .get_multiplexed_async_connection()
        .await?;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(first)
        .query_async(&mut admin)
        .await?;
    assert_eq!(killed, 1);
    let mut failures = 0;
    let mut value = None;
    for _ in 0..3 {
        match cache.get("k").await {
            Ok(got) => {
                value = got;
                break;
            }
            Err(_) => failures += 1,
        }
    }
    assert!(failures <= 1, "{failures} commands failed after the kill");
    assert_eq!(value.as_deref(), Some("v"));
    assert_ne!(client_id().await?, first, "a new connection was opened");
    cache.delete("k").await?;
    Ok(())
}

/// An instance's presence registry under `prefix`.
fn presence_registry(
    prefix: &str,
    lifetime: Duration,
) -> anyhow::Result<chat_db::presence::RedisPresence> {
    Ok(chat_db::presence::RedisPresence::new(
        open_connections(&url()).map_err(anyhow::Error::msg)?,
        prefix,
        lifetime,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instances_sockets_are_reclaimed_once() -> anyhow::Result<()> {
    use chat_db::presence::{Changed, PresenceRegistry};
    let prefix = prefix();
    let lifetime = Duration::from_millis(1000);
    let open = || presence_registry(&prefix, lifetime);
    let (live, dying, other) = (open()?, open()?, open()?);
    for registry in [&live, &dying, &other] {
        assert_eq!(registry.heartbeat().await?, Changed::default());
    }
    // User 1 has sockets on the live and the dying instance, user 2 only on the dying one.
    assert_eq!(live.connected(1).await?, 1);
    assert_eq!(dying.connected(1).await?, 2);
    assert_eq!(dying.connected(2).await?, 1);
    assert_eq!(dying.connected(2).await?, 2);
    // The dying instance stops renewing; the others keep renewing well within their
    // lifetime (had they slept through it too, either could reclaim the other's table).
    // Whichever heartbeat first finds it expired reclaims it.
    let mut gone = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(lifetime / 4).await;
        let (first, second) = tokio::join!(live.heartbeat(), other.heartbeat());
        gone.extend(first?.offline);
        gone.extend(second?.offline);
    }
    assert_eq!(
        gone,
        [2],
        "reclaimed once, by one instance; user 1 is still online"
    );
    assert_eq!(live.disconnected(1).await?, 0);
    assert_eq!(
        live.heartbeat().await?,
        Changed::default(),
        "nothing left to reclaim"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_reclaimed_while_alive_restores_its_sockets() -> anyhow::Result<()> {
    use chat_db::presence::{Changed, PresenceRegistry};
    let prefix = prefix();
    let lifetime = Duration::from_millis(300);
    let open = || presence_registry(&prefix, lifetime);
    let (a, b) = (open()?, open()?);
    a.heartbeat().await?;
    b.heartbeat().await?;
    assert_eq!(b.connected(7).await?, 1);
    // B is cut off for longer than its lifetime: A takes its sockets off.
    tokio::time::sleep(lifetime + Duration::from_millis(100)).await;
    assert_eq!(a.heartbeat().await?.offline, [7]);
    // U opens a socket on A meanwhile.
    assert_eq!(a.connected(7).await?, 1);
    // B comes back: its next heartbeat counts its socket again (no announcement, the
    // user is online through A already).
    assert_eq!(b.heartbeat().await?, Changed::default());
    // Closing the socket on B leaves the one on A counted.
    assert_eq!(b.disconnected(7).await?, 1);
    assert_eq!(a.disconnected(7).await?, 0);
    // A socket closed while its table was reclaimed leaves the counter alone.
    assert_eq!(b.connected(8).await?, 1);
    tokio::time::sleep(lifetime + Duration::from_millis(100)).await;
    assert_eq!(a.heartbeat().await?.offline, [8]);
    assert_eq!(
        b.disconnected(8).await?,
        -1,
        "no longer counted: nothing to announce"
    );
    assert_eq!(b.heartbeat().await?, Changed::default());
    assert_eq!(a.heartbeat().await?, Changed::default());
    Ok(())
}
