//! The event bus: services publish domain events on topics; the WebSocket layer
//! subscribes and fans them out. In-process in embedded mode; Redis pub/sub in
//! production, so an event published on one instance reaches every instance that
//! follows its topic: an instance subscribes to a chat's or a user's channel only while
//! one of its sockets follows it ([`EventBus::follow`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::broadcast;

/// How many events a slow local subscriber may fall behind before it misses some
/// (it then learns how many via `RecvError::Lagged` and can resynchronise).
pub const LOCAL_BUS_CAPACITY: usize = 16_384;

/// Events the slowest local subscriber may have left unread before a paced delivery
/// ([`MemoryBus::deliver_paced`]) waits for it: the rest of the capacity absorbs what
/// is delivered without waiting.
pub const PACE_AT: usize = LOCAL_BUS_CAPACITY * 3 / 4;

/// Longest a paced delivery waits for a subscriber that does not read; it then overtakes
/// it (the subscriber learns how many it missed and recovers).
pub const PACE_LIMIT: Duration = Duration::from_secs(2);

/// Topic of the local notice that events may have been missed (the broker connection
/// was lost and re-established); never published by services.
pub const GAP_TOPIC: &str = "bus.gap";

/// One published event: a topic (e.g. `chat.42`, `user.7`) and its JSON payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// Routing key, without any deployment prefix.
    pub topic: String,
    /// The serialized event, shared by every receiver.
    pub payload: String,
}

/// Publish/subscribe for domain events.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes to every subscriber of every instance. Never fails the caller: if the
    /// broker is down, the event is still delivered to this instance's subscribers
    /// and the failure is logged (clients recover missed events by sequence number).
    async fn publish(&self, topic: &str, payload: String);
    /// Publishes `(topic, payload)` events in this order, in one broker round trip
    /// where the broker allows (Redis: one pipeline). Same failure rule as `publish`.
    async fn publish_many(&self, events: Vec<(String, String)>) {
        for (topic, payload) in events {
            self.publish(&topic, payload).await;
        }
    }
    /// A receiver of every event published from now on, from any instance.
    fn subscribe(&self) -> broadcast::Receiver<Arc<BusMessage>>;
    /// `redis` or `memory`.
    fn backend(&self) -> &'static str;
    /// Broker subscriptions (channels or patterns) this instance holds now; 0 without a
    /// broker.
    fn subscriptions(&self) -> usize {
        0
    }
    /// This instance now needs the events of `topics` (a local socket follows them).
    /// With a broker the subscription follows asynchronously, in call order with
    /// [`EventBus::unfollow`]; without one every event is local and this is a no-op.
    /// Topics under [`BROADCAST_PREFIXES`] are always received and need no call.
    fn follow(&self, _topics: Vec<String>) {}
    /// This instance no longer needs the events of `topics`.
    fn unfollow(&self, _topics: Vec<String>) {}
    /// Resolves once every follow and unfollow requested before it is in effect with the
    /// broker (a socket's handshake waits for it, so the socket hears everything
    /// published after it is answered); `None` when there is nothing to wait for.
    fn barrier(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        None
    }
}

/// Topic prefixes every instance receives whatever its sockets follow (presence:
/// a user's friends and chat partners may be connected anywhere).
pub const BROADCAST_PREFIXES: &[&str] = &["presence."];

/// The in-process bus of the embedded mode.
pub struct MemoryBus {
    sender: broadcast::Sender<Arc<BusMessage>>,
    /// Set when a paced delivery gave up waiting for a subscriber: later ones do not
    /// wait again until that subscriber is back under [`PACE_AT`] (a subscriber that
    /// never reads would otherwise cost every delivery [`PACE_LIMIT`]).
    overtaking: AtomicBool,
}

impl MemoryBus {
    /// A bus with no subscriber yet.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(LOCAL_BUS_CAPACITY);
        Self {
            sender,
            overtaking: AtomicBool::new(false),
        }
    }

    /// Delivers to this process's subscribers (also the Redis bus's local leg).
    pub(crate) fn deliver(&self, message: BusMessage) {
        // No subscriber is not an error: nobody is listening yet.
        let _ = self.sender.send(Arc::new(message));
    }

    /// Delivers like [`MemoryBus::deliver`], after waiting (at most [`PACE_LIMIT`])
    /// while the slowest subscriber has [`PACE_AT`] events or more unread. Publishers
    /// and the broker's subscriber run beside the hub's router, on other threads: without
    /// the wait a burst overtakes the router, which then drops what it missed and sends
    /// every socket to recover it. Waiting here slows the writers' publishers (and so
    /// the writers) in embedded mode; with Redis the events wait in the subscriber's
    /// connection for a moment. A subscriber still behind after the limit is overtaken:
    /// it learns how many events it missed and recovers, as before.
    pub(crate) async fn deliver_paced(&self, message: BusMessage) {
        if self.sender.len() >= PACE_AT {
            if !self.overtaking.load(Ordering::Relaxed) {
                let deadline = Instant::now() + PACE_LIMIT;
                while self.sender.len() >= PACE_AT {
                    if Instant::now() >= deadline {
                        self.overtaking.store(true, Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        } else {
            self.overtaking.store(false, Ordering::Relaxed);
        }
        self.deliver(message);
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, topic: &str, payload: String) {
        self.deliver_paced(BusMessage {
            topic: topic.to_owned(),
            payload,
        })
        .await;
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<BusMessage>> {
        self.sender.subscribe()
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_bus_delivers_to_every_subscriber() -> anyhow::Result<()> {
        let bus = MemoryBus::new();
        let mut first = bus.subscribe();
        let mut second = bus.subscribe();
        bus.publish("chat.1", "{}".to_owned()).await;
        for receiver in [&mut first, &mut second] {
            let message = receiver.recv().await?;
            assert_eq!(message.topic, "chat.1");
            assert_eq!(message.payload, "{}");
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishers_wait_for_a_subscriber_that_falls_behind() -> anyhow::Result<()> {
        let bus = Arc::new(MemoryBus::new());
        let mut slow = bus.subscribe();
        for i in 0..PACE_AT {
            bus.publish("chat.1", i.to_string()).await;
        }
        let publisher = tokio::spawn({
            let bus = bus.clone();
            async move { bus.publish("chat.1", "next".to_owned()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!publisher.is_finished(), "published past a full subscriber");
        // The subscriber reads one: the publisher goes on, and nothing was skipped.
        assert_eq!(slow.recv().await?.payload, "0");
        tokio::time::timeout(Duration::from_secs(1), publisher).await??;
        let mut last = String::new();
        while let Ok(message) = slow.try_recv() {
            last = message.payload.clone();
        }
        assert_eq!(last, "next");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_that_never_reads_is_overtaken_once_after_the_limit() -> anyhow::Result<()>
    {
        let bus = MemoryBus::new();
        let _never = bus.subscribe();
        let mut reader = bus.subscribe();
        for i in 0..PACE_AT {
            bus.publish("chat.1", i.to_string()).await;
        }
        // The reader keeps up; the other one holds the bus at its pace limit.
        while reader.try_recv().is_ok() {}
        let started = Instant::now();
        bus.publish("chat.1", "late".to_owned()).await;
        assert!(
            started.elapsed() >= PACE_LIMIT,
            "did not wait for the subscriber"
        );
        // Given up on: the next deliveries do not wait again.
        let started = Instant::now();
        for i in 0..100 {
            bus.publish("chat.1", format!("after {i}")).await;
        }
        assert!(
            started.elapsed() < PACE_LIMIT,
            "waited again for a lost cause"
        );
        assert_eq!(reader.recv().await?.payload, "late");
        assert_eq!(reader.recv().await?.payload, "after 0");
        // Once no subscriber is that far behind, a slow one is waited for again.
        drop(_never);
        while reader.try_recv().is_ok() {}
        bus.publish("chat.1", "caught up".to_owned()).await;
        for i in 1..PACE_AT {
            bus.publish("chat.1", i.to_string()).await;
        }
        let bus = Arc::new(bus);
        let publisher = tokio::spawn({
            let bus = bus.clone();
            async move { bus.publish("chat.1", "waits".to_owned()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !publisher.is_finished(),
            "still overtaking after the catch-up"
        );
        assert_eq!(reader.recv().await?.payload, "caught up");
        tokio::time::timeout(Duration::from_secs(1), publisher).await??;
        Ok(())
    }
}
