//! The event bus: services publish domain events on topics; the WebSocket layer
//! subscribes and fans them out. In-process in embedded mode; Redis pub/sub in
//! production, so an event published on one instance reaches every instance that
//! follows its topic: an instance subscribes to a chat's or a user's channel only while
//! one of its sockets follows it ([`EventBus::follow`]).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

/// How many events a slow local subscriber may fall behind before it misses some
/// (it then learns how many via `RecvError::Lagged` and can resynchronise).
pub const LOCAL_BUS_CAPACITY: usize = 16_384;

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
}

impl MemoryBus {
    /// A bus with no subscriber yet.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(LOCAL_BUS_CAPACITY);
        Self { sender }
    }

    /// Delivers to this process's subscribers (also the Redis bus's local leg).
    pub(crate) fn deliver(&self, message: BusMessage) {
        // No subscriber is not an error: nobody is listening yet.
        let _ = self.sender.send(Arc::new(message));
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
        self.deliver(BusMessage {
            topic: topic.to_owned(),
            payload,
        });
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
}
