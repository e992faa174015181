//! The hub: which socket follows which chat, and delivery of bus events to them.
//!
//! One router task per process reads the event bus in order and, for each event,
//! encodes the event's frame once and pushes it (`Bytes`, shared) into the bounded
//! outbox of every socket that follows the event's chat or user. A full queue never blocks the
//! router: that socket is told to close as lagging, and recovers by sequence number.
//!
//! Membership changes are applied as their events pass: `chat.member_joined` adds the
//! user's `/ws` sockets to the chat, `chat.member_left` removes them (and closes the
//! user's sockets opened on that chat), `chat.deleted` drops the chat,
//! `session.revoked` closes the session's sockets.
//!
//! `chat.message` events are delivered in `seq` order per chat: concurrent senders can
//! publish out of order, so a message whose predecessor has not arrived waits (at most
//! [`GAP_WAIT`]) for it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use chat_services::events::BusMessage;
use serde::Deserialize;
use tokio::sync::{Notify, broadcast};

use crate::close::Closing;
use crate::frames;
use crate::outbox::{Outbox, Refused};

/// Outbound frames a socket may have queued before it counts as lagging.
pub const OUTBOUND_QUEUE: usize = 1024;
/// How long a message waits for a missing predecessor before it is delivered anyway
/// (the predecessor was lost, e.g. in a Redis outage; clients recover by seq).
pub const GAP_WAIT: Duration = Duration::from_millis(250);
/// How often held-back messages are checked.
const GAP_TICK: Duration = Duration::from_millis(50);

/// Identifies one socket.
pub type ConnId = u64;

/// What a socket follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/ws`: every chat of the user, and the user's notifications.
    AllChats,
    /// `/ws/chats/{id}` or `/ws/direct/{user_id}`: one chat.
    Chat(i64),
}

/// Tells a socket task to close, and why.
#[derive(Default)]
pub struct CloseSignal {
    reason: Mutex<Option<Closing>>,
    notify: Notify,
}

impl CloseSignal {
    /// Asks the socket to close (the first reason wins).
    pub fn close(&self, reason: Closing) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
            self.notify.notify_one();
        }
    }

    /// No close was asked for yet.
    pub fn is_open(&self) -> bool {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Waits until [`CloseSignal::close`] is called.
    pub async fn closed(&self) -> Closing {
        loop {
            if let Some(reason) = *self.reason.lock().unwrap_or_else(|p| p.into_inner()) {
                return reason;
            }
            self.notify.notified().await;
        }
    }
}

struct Conn {
    user_id: i64,
    session_id: String,
    scope: Scope,
    /// The chats it follows (so unregistering touches only those).
    chats: HashSet<i64>,
    outbox: Arc<Outbox>,
    close: Arc<CloseSignal>,
}

impl Conn {
    /// Tells the socket to close. From now on it takes no event: a revoked session or a
    /// removed member must not receive what is published after the decision (nor, for
    /// those, what is queued and not yet written).
    fn shut(&self, reason: Closing) {
        let discard = matches!(
            reason,
            Closing::SessionRevoked | Closing::Reauthenticate | Closing::RemovedFromChat
        );
        self.outbox.seal(discard);
        self.close.close(reason);
    }
}

#[derive(Default)]
struct ChatOrder {
    next: Option<i64>,
    held: BTreeMap<i64, (Bytes, Instant)>,
}

#[derive(Default)]
struct State {
    conns: HashMap<ConnId, Conn>,
    by_chat: HashMap<i64, HashSet<ConnId>>,
    by_user: HashMap<i64, HashSet<ConnId>>,
    order: HashMap<i64, ChatOrder>,
}

/// A registered socket's ends.
pub struct Registration {
    /// Its id (to unregister).
    pub id: ConnId,
    /// Frames to send (drained by the connection's response body).
    pub outbound: Arc<Outbox>,
    /// Close requests.
    pub close: Arc<CloseSignal>,
}

/// The connection registry and fan-out of one process.
#[derive(Default)]
pub struct Hub {
    state: Mutex<State>,
    next_id: AtomicU64,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    seq: Option<i64>,
    user_id: Option<i64>,
    session_id: Option<String>,
}

impl Hub {
    /// A hub fed by `events`; spawns the router task (call inside a tokio runtime).
    pub fn start(events: broadcast::Receiver<Arc<BusMessage>>) -> Arc<Hub> {
        let hub = Arc::new(Hub::default());
        tokio::spawn(route(hub.clone(), events));
        hub
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every mutation completes before the guard drops: a poisoned state is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a socket following `chats`, given as `(chat id, last seq)`: in-order
    /// delivery of a chat nobody here followed yet starts after that seq.
    pub fn register(
        &self,
        user_id: i64,
        session_id: &str,
        scope: Scope,
        chats: &[(i64, i64)],
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let outbound = Outbox::held(OUTBOUND_QUEUE);
        let close = Arc::new(CloseSignal::default());
        let mut state = self.lock();
        state.by_user.entry(user_id).or_default().insert(id);
        state.conns.insert(
            id,
            Conn {
                user_id,
                session_id: session_id.to_owned(),
                scope,
                chats: HashSet::new(),
                outbox: outbound.clone(),
                close: close.clone(),
            },
        );
        state.add_chats(id, chats);
        Registration {
            id,
            outbound,
            close,
        }
    }

    /// Makes a registered socket follow more chats (a `/ws` socket re-reading its
    /// memberships right after registering).
    pub fn follow_chats(&self, id: ConnId, chats: &[(i64, i64)]) {
        self.lock().add_chats(id, chats);
    }

    /// Forgets a socket.
    pub fn unregister(&self, id: ConnId) {
        let mut state = self.lock();
        if let Some(conn) = state.conns.remove(&id) {
            remove_from(&mut state.by_user, conn.user_id, id);
            for chat in conn.chats {
                remove_from(&mut state.by_chat, chat, id);
                if !state.by_chat.contains_key(&chat) {
                    state.order.remove(&chat);
                }
            }
        }
    }

    /// Sockets open in this process.
    pub fn connections(&self) -> usize {
        self.lock().conns.len()
    }

    fn handle(&self, message: &BusMessage) {
        if message.topic == chat_services::events::GAP_TOPIC {
            tracing::warn!(
                "events may have been missed (broker reconnected); closing sockets so they recover"
            );
            self.close_all(Closing::Lagging);
            return;
        }
        let payload = frames::text(&message.payload);
        let head: Option<Head> = serde_json::from_str(&message.payload).ok();
        let mut state = self.lock();
        if let Some(chat) = message
            .topic
            .strip_prefix("chat.")
            .and_then(|c| c.parse::<i64>().ok())
        {
            let Some(head) = head else { return };
            match head.kind.as_str() {
                "chat.message" => match head.seq {
                    Some(seq) => state.deliver_in_order(chat, seq, payload),
                    None => state.deliver_to_chat(chat, &payload),
                },
                "chat.member_joined" => {
                    if let Some(user) = head.user_id {
                        state.follow(chat, user);
                    }
                    state.deliver_to_chat(chat, &payload);
                }
                "chat.member_left" => {
                    state.deliver_to_chat(chat, &payload);
                    if let Some(user) = head.user_id {
                        state.unfollow(chat, user);
                    }
                }
                "chat.typing" => state.deliver_to_chat_except(chat, &payload, head.user_id),
                "chat.deleted" => {
                    state.flush_held(chat);
                    state.deliver_to_chat(chat, &payload);
                    state.drop_chat(chat);
                }
                _ => state.deliver_to_chat(chat, &payload),
            }
        } else if let Some(user) = message
            .topic
            .strip_prefix("user.")
            .and_then(|u| u.parse::<i64>().ok())
        {
            match head.as_ref().map(|h| h.kind.as_str()) {
                Some("session.revoked") => {
                    let session = head.and_then(|h| h.session_id).unwrap_or_default();
                    state.close_session(user, &session);
                }
                Some("user.permissions_changed") => state.close_user(user, Closing::Reauthenticate),
                Some(_) => state.deliver_to_user(user, &payload),
                None => {}
            }
        }
    }

    fn release_held(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        let overdue: Vec<i64> = state
            .order
            .iter()
            .filter(|(_, order)| {
                order
                    .held
                    .values()
                    .next()
                    .is_some_and(|(_, since)| now.duration_since(*since) >= GAP_WAIT)
            })
            .map(|(chat, _)| *chat)
            .collect();
        for chat in overdue {
            state.flush_held(chat);
        }
    }

    fn close_all(&self, reason: Closing) {
        for conn in self.lock().conns.values() {
            conn.shut(reason);
        }
    }
}

fn remove_from(map: &mut HashMap<i64, HashSet<ConnId>>, key: i64, id: ConnId) {
    if let Some(ids) = map.get_mut(&key) {
        ids.remove(&id);
        if ids.is_empty() {
            map.remove(&key);
        }
    }
}

impl State {
    fn send(&self, id: ConnId, payload: &Bytes) {
        if let Some(conn) = self.conns.get(&id) {
            match conn.outbox.push(payload.clone()) {
                Ok(()) => {}
                Err(Refused::Full) => conn.shut(Closing::Lagging),
                // The socket is ending; its task unregisters it.
                Err(Refused::Closed) => {}
            }
        }
    }

    fn deliver_to_chat(&self, chat: i64, payload: &Bytes) {
        self.deliver_to_chat_except(chat, payload, None);
    }

    /// Delivers to the chat's sockets, except those of `except_user` (typing notices
    /// go to the other members).
    fn deliver_to_chat_except(&self, chat: i64, payload: &Bytes, except_user: Option<i64>) {
        if let Some(ids) = self.by_chat.get(&chat) {
            for id in ids {
                if except_user
                    .is_none_or(|user| self.conns.get(id).is_some_and(|c| c.user_id != user))
                {
                    self.send(*id, payload);
                }
            }
        }
    }

    fn add_chats(&mut self, id: ConnId, chats: &[(i64, i64)]) {
        for (chat, last_seq) in chats {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.chats.insert(*chat) {
                self.by_chat.entry(*chat).or_default().insert(id);
                let order = self.order.entry(*chat).or_default();
                if order.next.is_none() {
                    order.next = Some(last_seq + 1);
                }
            }
        }
    }

    fn close_user(&self, user: i64, reason: Closing) {
        for id in self.by_user.get(&user).into_iter().flatten() {
            if let Some(conn) = self.conns.get(id) {
                conn.shut(reason);
            }
        }
    }

    fn deliver_to_user(&self, user: i64, payload: &Bytes) {
        if let Some(ids) = self.by_user.get(&user) {
            for id in ids {
                if self
                    .conns
                    .get(id)
                    .is_some_and(|c| c.scope == Scope::AllChats)
                {
                    self.send(*id, payload);
                }
            }
        }
    }

    fn deliver_in_order(&mut self, chat: i64, seq: i64, payload: Bytes) {
        if !self.by_chat.contains_key(&chat) {
            // Nobody here follows the chat: nothing to order. Forget its position so a
            // later follower starts fresh.
            self.order.remove(&chat);
            return;
        }
        let order = self.order.entry(chat).or_default();
        match order.next {
            Some(next) if seq > next => {
                order.held.insert(seq, (payload, Instant::now()));
                return;
            }
            Some(next) if seq < next => {}
            _ => order.next = Some(seq + 1),
        }
        self.deliver_to_chat(chat, &payload);
        self.release_consecutive(chat);
    }

    fn release_consecutive(&mut self, chat: i64) {
        loop {
            let Some(order) = self.order.get_mut(&chat) else {
                return;
            };
            let Some(next) = order.next else { return };
            let Some((payload, _)) = order.held.remove(&next) else {
                return;
            };
            order.next = Some(next + 1);
            self.deliver_to_chat(chat, &payload);
        }
    }

    fn flush_held(&mut self, chat: i64) {
        let Some(order) = self.order.get_mut(&chat) else {
            return;
        };
        let held = std::mem::take(&mut order.held);
        if let Some((last, _)) = held.last_key_value() {
            order.next = Some(last + 1);
        }
        for (_, (payload, _)) in held {
            self.deliver_to_chat(chat, &payload);
        }
    }

    fn follow(&mut self, chat: i64, user: i64) {
        let ids: Vec<ConnId> = self
            .by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter(|id| {
                self.conns
                    .get(id)
                    .is_some_and(|c| c.scope == Scope::AllChats)
            })
            .copied()
            .collect();
        for id in ids {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.chats.insert(chat);
            }
            self.by_chat.entry(chat).or_default().insert(id);
        }
    }

    fn unfollow(&mut self, chat: i64, user: i64) {
        let ids: Vec<ConnId> = self
            .by_user
            .get(&user)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        for id in ids {
            remove_from(&mut self.by_chat, chat, id);
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.chats.remove(&chat);
                if conn.scope == Scope::Chat(chat) {
                    conn.shut(Closing::RemovedFromChat);
                }
            }
        }
    }

    fn drop_chat(&mut self, chat: i64) {
        if let Some(ids) = self.by_chat.remove(&chat) {
            for id in ids {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.chats.remove(&chat);
                    if conn.scope == Scope::Chat(chat) {
                        conn.shut(Closing::ChatDeleted);
                    }
                }
            }
        }
        self.order.remove(&chat);
    }

    fn close_session(&self, user: i64, session: &str) {
        for id in self.by_user.get(&user).into_iter().flatten() {
            if let Some(conn) = self.conns.get(id).filter(|c| c.session_id == session) {
                conn.shut(Closing::SessionRevoked);
            }
        }
    }
}

async fn route(hub: Arc<Hub>, mut events: broadcast::Receiver<Arc<BusMessage>>) {
    let mut tick = tokio::time::interval(GAP_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(message) => hub.handle(&message),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Events were lost for every socket here: make them all recover.
                    tracing::error!(missed, "websocket hub fell behind the event bus; closing sockets so they recover");
                    hub.close_all(Closing::Lagging);
                }
                Err(broadcast::error::RecvError::Closed) => {
                    hub.close_all(Closing::GoingAway);
                    return;
                }
            },
            _ = tick.tick() => hub.release_held(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, payload: serde_json::Value) -> BusMessage {
        BusMessage {
            topic: topic.to_owned(),
            payload: payload.to_string(),
        }
    }

    fn seqs(outbox: &Outbox) -> Vec<i64> {
        outbox
            .take_all()
            .iter()
            .map(|frame| {
                let text = frames::text_payload(frame).unwrap_or_default();
                let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                value["seq"].as_i64().unwrap_or(-1)
            })
            .collect()
    }

    #[test]
    fn messages_are_delivered_in_seq_order() {
        let hub = Hub::default();
        let reg = hub.register(1, "s", Scope::Chat(7), &[(7, 0)]);
        for seq in [1, 3, 2, 5, 4] {
            hub.handle(&message(
                "chat.7",
                serde_json::json!({"type": "chat.message", "seq": seq}),
            ));
        }
        assert_eq!(seqs(&reg.outbound), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_gap_is_released_after_the_wait() {
        let hub = Hub::default();
        let reg = hub.register(1, "s", Scope::AllChats, &[(7, 0)]);
        hub.handle(&message(
            "chat.7",
            serde_json::json!({"type": "chat.message", "seq": 1}),
        ));
        hub.handle(&message(
            "chat.7",
            serde_json::json!({"type": "chat.message", "seq": 3}),
        ));
        assert_eq!(seqs(&reg.outbound), [1]);
        std::thread::sleep(GAP_WAIT + Duration::from_millis(20));
        hub.release_held();
        assert_eq!(seqs(&reg.outbound), [3]);
        hub.handle(&message(
            "chat.7",
            serde_json::json!({"type": "chat.message", "seq": 4}),
        ));
        assert_eq!(seqs(&reg.outbound), [4]);
    }

    #[test]
    fn membership_events_change_who_follows() {
        let hub = Hub::default();
        let all = hub.register(2, "s2", Scope::AllChats, &[]);
        let one = hub.register(2, "s2b", Scope::Chat(9), &[(9, 0)]);
        hub.handle(&message(
            "chat.9",
            serde_json::json!({"type": "chat.member_joined", "user_id": 2}),
        ));
        hub.handle(&message(
            "chat.9",
            serde_json::json!({"type": "chat.message", "seq": 1}),
        ));
        assert_eq!(seqs(&all.outbound), [-1, 1]);
        hub.handle(&message(
            "chat.9",
            serde_json::json!({"type": "chat.member_left", "user_id": 2}),
        ));
        hub.handle(&message(
            "chat.9",
            serde_json::json!({"type": "chat.message", "seq": 2}),
        ));
        assert_eq!(
            seqs(&all.outbound),
            [-1],
            "the leave event arrives, later messages do not"
        );
        assert_eq!(
            *one.close.reason.lock().unwrap_or_else(|p| p.into_inner()),
            Some(Closing::RemovedFromChat)
        );
    }

    #[test]
    fn a_full_queue_closes_only_that_socket_as_lagging() {
        let hub = Hub::default();
        let slow = hub.register(1, "a", Scope::Chat(5), &[(5, 0)]);
        let fast = hub.register(2, "b", Scope::Chat(5), &[(5, 0)]);
        for seq in 1..=(OUTBOUND_QUEUE as i64 + 1) {
            hub.handle(&message(
                "chat.5",
                serde_json::json!({"type": "chat.message", "seq": seq}),
            ));
            let _ = fast.outbound.take_all();
        }
        assert_eq!(
            *slow.close.reason.lock().unwrap_or_else(|p| p.into_inner()),
            Some(Closing::Lagging)
        );
        assert_eq!(
            *fast.close.reason.lock().unwrap_or_else(|p| p.into_inner()),
            None
        );
    }

    #[test]
    fn the_first_messages_of_a_chat_are_ordered_from_its_last_seq() {
        let hub = Hub::default();
        let reg = hub.register(1, "s", Scope::Chat(7), &[(7, 10)]);
        for seq in [12, 11] {
            hub.handle(&message(
                "chat.7",
                serde_json::json!({"type": "chat.message", "seq": seq}),
            ));
        }
        assert_eq!(seqs(&reg.outbound), [11, 12]);
    }

    #[test]
    fn typing_is_not_echoed_and_gaps_close_everything() {
        let hub = Hub::default();
        let typer = hub.register(1, "a", Scope::Chat(3), &[(3, 0)]);
        let other = hub.register(2, "b", Scope::Chat(3), &[(3, 0)]);
        hub.handle(&message(
            "chat.3",
            serde_json::json!({"type": "chat.typing", "user_id": 1}),
        ));
        assert!(typer.outbound.is_empty());
        assert!(!other.outbound.is_empty());
        hub.handle(&BusMessage {
            topic: chat_services::events::GAP_TOPIC.to_owned(),
            payload: String::new(),
        });
        assert_eq!(
            *typer.close.reason.lock().unwrap_or_else(|p| p.into_inner()),
            Some(Closing::Lagging)
        );
    }

    #[test]
    fn revoking_a_session_closes_its_sockets_only() {
        let hub = Hub::default();
        let mine = hub.register(1, "s1", Scope::AllChats, &[]);
        let other = hub.register(1, "s2", Scope::AllChats, &[]);
        hub.handle(&message(
            "user.1",
            serde_json::json!({"type": "session.revoked", "user_id": 1, "session_id": "s1"}),
        ));
        assert_eq!(
            *mine.close.reason.lock().unwrap_or_else(|p| p.into_inner()),
            Some(Closing::SessionRevoked)
        );
        assert_eq!(
            *other.close.reason.lock().unwrap_or_else(|p| p.into_inner()),
            None
        );
        hub.unregister(mine.id);
        assert_eq!(hub.connections(), 1);
    }

    #[test]
    fn a_revoked_session_gets_nothing_queued_or_published_later() {
        let hub = Hub::default();
        let reg = hub.register(1, "s1", Scope::Chat(5), &[(5, 0)]);
        hub.handle(&message(
            "chat.5",
            serde_json::json!({"type": "chat.message", "seq": 1}),
        ));
        assert_eq!(reg.outbound.len(), 1, "queued while the socket is held");
        hub.handle(&message(
            "user.1",
            serde_json::json!({"type": "session.revoked", "user_id": 1, "session_id": "s1"}),
        ));
        hub.handle(&message(
            "chat.5",
            serde_json::json!({"type": "chat.message", "seq": 2}),
        ));
        assert!(reg.outbound.is_empty(), "nothing reaches a revoked session");
    }
}
