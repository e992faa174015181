//! The bus's subscriber on a Redis Cluster.
//!
//! Chat and user channels are sharded (`SSUBSCRIBE`): each is held on the shard that
//! owns its slot, so the channels, and the work of carrying them, spread over the
//! shards. The broadcast topics (presence) stay classic pub/sub (`PSUBSCRIBE`): a
//! classic `PUBLISH` reaches every node, and sharded pub/sub has no patterns.
//!
//! When a node's connection drops, the subscriber starts over with a new cluster
//! connection and subscribes everything again, as the single-node subscriber does, then
//! tells local subscribers that events may have been missed (the gap topic). It does not
//! leave this to the cluster client's own re-subscription: redis-rs 1.8 re-subscribes a
//! reconnected node's sharded channels in one `SSUBSCRIBE`, which Redis refuses
//! (`CROSSSLOT`) as soon as they span more than one slot.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

use super::{
    Changes, Channels, Interest, RESUBSCRIBE_BACKOFF, RedisTarget, SUBSCRIBE_TIMEOUT, take_changes,
    timed_out,
};
use crate::bus::{BusMessage, GAP_TOPIC, MemoryBus};

/// Sharded subscriptions in flight at once (each is one command to one shard).
const SUBSCRIBE_CONCURRENCY: usize = 64;

/// Holds this instance's subscriptions on the cluster and forwards each message to the
/// local bus; starts over with a new cluster connection after any failure it sees.
pub(super) async fn subscribe_forever(
    nodes: Vec<String>,
    timeout: Duration,
    channels: Channels,
    local: Arc<MemoryBus>,
    subscribed: Arc<AtomicUsize>,
    mut requests: mpsc::UnboundedReceiver<Interest>,
) {
    let mut wanted: HashMap<String, usize> = HashMap::new();
    let mut subscribed_before = false;
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        while let Ok(request) = requests.try_recv() {
            waiting.extend(take_changes(request, &mut requests, &mut wanted).waiting);
        }
        let (push, mut pushes) = mpsc::unbounded_channel();
        let connected = tokio::time::timeout(
            SUBSCRIBE_TIMEOUT,
            subscribe_all(&nodes, timeout, push, &channels, &wanted),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out()));
        match connected {
            Ok(mut conn) => {
                Changes {
                    waiting: std::mem::take(&mut waiting),
                    ..Changes::default()
                }
                .done();
                subscribed.store(wanted.len() + channels.patterns.len(), Ordering::Relaxed);
                tracing::info!(
                    channels = wanted.len(),
                    "subscribed to redis cluster events"
                );
                if subscribed_before {
                    // Events published while we were not subscribed are gone: tell
                    // local subscribers, so they can make their clients recover.
                    local.deliver(BusMessage {
                        topic: GAP_TOPIC.to_owned(),
                        payload: String::new(),
                    });
                }
                subscribed_before = true;
                // Unsubscriptions sent and not yet confirmed, per topic: a confirmation
                // beyond these is a shard giving a channel up.
                let mut unsubscribing: HashMap<String, usize> = HashMap::new();
                loop {
                    tokio::select! {
                        push = pushes.recv() => {
                            // No push (the client is gone), a dropped node, or a channel
                            // still wanted that a shard gave up: start over.
                            let Some(push) = push else { break };
                            match forward(&channels, &local, push).await {
                                Forwarded::Handled => {}
                                Forwarded::Dropped => {
                                    tracing::warn!("a redis cluster node's connection dropped");
                                    break;
                                }
                                Forwarded::Unsubscribed(topic) => {
                                    let asked = match unsubscribing.get_mut(&topic) {
                                        Some(pending) => {
                                            *pending -= 1;
                                            if *pending == 0 {
                                                unsubscribing.remove(&topic);
                                            }
                                            true
                                        }
                                        None => false,
                                    };
                                    if !asked && wanted.contains_key(&topic) {
                                        tracing::warn!(topic, "a redis cluster shard dropped a subscription (failover or slot move)");
                                        break;
                                    }
                                }
                            }
                        }
                        request = requests.recv() => {
                            let Some(request) = request else { return };
                            let mut changes = take_changes(request, &mut requests, &mut wanted);
                            for topic in &changes.remove {
                                *unsubscribing.entry(topic.clone()).or_insert(0) += 1;
                            }
                            let applied = tokio::time::timeout(
                                SUBSCRIBE_TIMEOUT,
                                apply(&mut conn, &channels, &changes),
                            )
                            .await
                            .unwrap_or_else(|_| Err(timed_out()));
                            if let Err(err) = applied {
                                tracing::warn!(error = %err, "redis cluster subscribe failed");
                                waiting.append(&mut changes.waiting);
                                break;
                            }
                            subscribed.store(wanted.len() + channels.patterns.len(), Ordering::Relaxed);
                            changes.done();
                        }
                    }
                }
                subscribed.store(0, Ordering::Relaxed);
                tracing::warn!("redis cluster subscription ended; re-subscribing");
            }
            Err(err) => tracing::warn!(error = %err, "redis cluster pub/sub connection failed"),
        }
        tokio::time::sleep(RESUBSCRIBE_BACKOFF).await;
    }
}

/// What a push was.
#[derive(Debug, PartialEq, Eq)]
enum Forwarded {
    /// A message (handed on) or a confirmation (nothing to do).
    Handled,
    /// A node's connection dropped.
    Dropped,
    /// A sharded channel's subscription ended: asked for, or by the shard (Redis ends
    /// the subscriptions of a slot its node no longer owns, and the cluster client's
    /// own re-subscription of them fails as a cross-slot command).
    Unsubscribed(String),
}

/// Hands a pushed message to the local bus.
async fn forward(channels: &Channels, local: &MemoryBus, push: PushInfo) -> Forwarded {
    let (channel, payload) = match (push.kind, push.data.as_slice()) {
        (PushKind::Message | PushKind::SMessage, [channel, payload])
        | (PushKind::PMessage, [_, channel, payload]) => (channel, payload),
        (PushKind::Disconnection, _) => return Forwarded::Dropped,
        (PushKind::SUnsubscribe, [channel, ..]) => {
            return match text(channel).as_deref().and_then(|c| channels.topic(c)) {
                Some(topic) => Forwarded::Unsubscribed(topic.to_owned()),
                None => Forwarded::Handled,
            };
        }
        _ => return Forwarded::Handled,
    };
    let (Some(channel), Some(payload)) = (text(channel), text(payload)) else {
        tracing::warn!("undecodable redis event");
        return Forwarded::Handled;
    };
    if let Some(topic) = channels.topic(&channel) {
        local
            .deliver_paced(BusMessage {
                topic: topic.to_owned(),
                payload,
            })
            .await;
    }
    Forwarded::Handled
}

fn text(value: &Value) -> Option<String> {
    redis::from_redis_value_ref::<String>(value).ok()
}

/// A cluster connection subscribed to the broadcast patterns and every wanted channel.
async fn subscribe_all(
    nodes: &[String],
    timeout: Duration,
    push: mpsc::UnboundedSender<PushInfo>,
    channels: &Channels,
    wanted: &HashMap<String, usize>,
) -> RedisResult<ClusterConnection> {
    let mut conn = RedisTarget::cluster_client(nodes, timeout, Some(push))?
        .get_async_connection()
        .await?;
    conn.psubscribe(&channels.patterns).await?;
    sharded(&conn, channels.of(wanted.keys()), true).await?;
    Ok(conn)
}

/// Sends one round's changes, unsubscribing first.
async fn apply(
    conn: &mut ClusterConnection,
    channels: &Channels,
    changes: &Changes,
) -> RedisResult<()> {
    sharded(conn, channels.of(&changes.remove), false).await?;
    sharded(conn, channels.of(&changes.add), true).await
}

/// (Un)subscribes each channel on its own shard: one `SSUBSCRIBE` names channels of
/// one slot only, so each goes alone, many at once.
async fn sharded(
    conn: &ClusterConnection,
    channels: Vec<String>,
    subscribe: bool,
) -> RedisResult<()> {
    futures_util::stream::iter(channels)
        .map(|channel| {
            let mut conn = conn.clone();
            async move {
                if subscribe {
                    conn.ssubscribe(channel).await
                } else {
                    conn.sunsubscribe(channel).await
                }
            }
        })
        .buffer_unordered(SUBSCRIBE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
}
