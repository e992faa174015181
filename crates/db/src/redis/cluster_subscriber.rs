//! The bus's subscriber on a Redis Cluster.
//!
//! Chat and user channels are sharded (`SSUBSCRIBE`): each is held on the shard that
//! owns its slot, so the channels, and the work of carrying them, spread over the
//! shards. The broadcast topics (presence) stay classic pub/sub (`PSUBSCRIBE`): a
//! classic `PUBLISH` reaches every node, and sharded pub/sub has no patterns.
//!
//! The cluster client re-subscribes by itself when it reconnects to a node; events
//! published to that node meanwhile are lost, so the subscriber tells local subscribers
//! (the gap topic) once the re-subscriptions have settled.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{
    Changes, Channels, Interest, RESUBSCRIBE_BACKOFF, RedisTarget, SUBSCRIBE_TIMEOUT, take_changes,
    timed_out,
};
use crate::bus::{BusMessage, GAP_TOPIC, MemoryBus};

/// Sharded subscriptions in flight at once (each is one command to one shard).
const SUBSCRIBE_CONCURRENCY: usize = 64;
/// After a node's connection dropped, how long the re-subscriptions must have been
/// quiet before local subscribers are told to recover.
const GAP_SETTLE: Duration = Duration::from_millis(250);

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
                    deliver_gap(&local);
                }
                subscribed_before = true;
                let mut gap = Gap::default();
                loop {
                    tokio::select! {
                        push = pushes.recv() => {
                            // The client is gone: start over.
                            let Some(push) = push else { break };
                            forward(&channels, &local, &mut gap, push);
                        }
                        () = gap.settled() => {
                            gap.due = None;
                            deliver_gap(&local);
                        }
                        request = requests.recv() => {
                            let Some(request) = request else { return };
                            let mut changes = take_changes(request, &mut requests, &mut wanted);
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

/// A pending "events may have been lost" notice after a node's connection dropped.
#[derive(Default)]
struct Gap {
    /// When to tell local subscribers, unless more re-subscriptions come first.
    due: Option<Instant>,
}

impl Gap {
    fn dropped(&mut self) {
        self.due = Some(Instant::now() + GAP_SETTLE);
    }

    /// A subscription confirmed while a notice is pending is the client re-subscribing:
    /// wait for it to finish.
    fn confirmed(&mut self) {
        if self.due.is_some() {
            self.due = Some(Instant::now() + GAP_SETTLE);
        }
    }

    async fn settled(&self) {
        match self.due {
            Some(due) => tokio::time::sleep_until(due).await,
            None => std::future::pending().await,
        }
    }
}

fn deliver_gap(local: &MemoryBus) {
    // Events published while a subscription was down are gone: local subscribers
    // make their clients recover.
    local.deliver(BusMessage {
        topic: GAP_TOPIC.to_owned(),
        payload: String::new(),
    });
}

/// Hands a pushed message to the local bus, or notes a dropped node connection.
fn forward(channels: &Channels, local: &MemoryBus, gap: &mut Gap, push: PushInfo) {
    let (channel, payload) = match (push.kind, push.data.as_slice()) {
        (PushKind::Message | PushKind::SMessage, [channel, payload])
        | (PushKind::PMessage, [_, channel, payload]) => (channel, payload),
        (PushKind::Disconnection, _) => {
            tracing::warn!("a redis cluster node's connection dropped; re-subscribing");
            gap.dropped();
            return;
        }
        (PushKind::Subscribe | PushKind::SSubscribe | PushKind::PSubscribe, _) => {
            gap.confirmed();
            return;
        }
        _ => return,
    };
    let (Some(channel), Some(payload)) = (text(channel), text(payload)) else {
        tracing::warn!("undecodable redis event");
        return;
    };
    if let Some(topic) = channels.topic(&channel) {
        local.deliver(BusMessage {
            topic: topic.to_owned(),
            payload,
        });
    }
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
