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
//! `session.revoked` closes the session's sockets. A socket re-reading its memberships
//! ([`Hub::begin_revalidation`] / [`Hub::finish_revalidation`]) has its followed set
//! **replaced** by what it read, with the membership events that passed meanwhile
//! applied on top — so a leave that raced the read is never lost.
//!
//! Presence is one event per connect or disconnect on the user's topic, whatever the
//! number of their chats: the event names the chats and friends it concerns, and each
//! hub delivers it once to every local socket following one of those chats or owned by
//! one of those friends.
//!
//! `chat.message` events are delivered in `seq` order per chat: concurrent senders can
//! publish out of order, so a message whose predecessor has not arrived waits (at most
//! [`GAP_WAIT`]) for it; when it does not come, the chat's sockets get a `resync` hint
//! with the seq to recover from.
//!
//! If the hub falls behind the event bus (or the broker reconnects), it cannot know which
//! events it missed: every socket gets a `resync` hint and re-reads its access and
//! memberships; none is closed for it.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use chat_domain::{ChatId, Seq, UserId};
use chat_services::chats::ChatPosition;
use chat_services::events::{
    BusMessage, EventBus, EventKind, PresenceChange, chat_topic, user_topic,
};
use chat_services::history_cache::NewestSeqs;
use chat_services::metrics::Metrics;
use serde::Deserialize;
use tokio::sync::{Notify, broadcast};

use crate::close::Closing;
use crate::frames;
use crate::outbox::{Outbox, Refused};

/// Default of `CHAT_WS_MAX_QUEUED_BYTES`: outbound bytes a socket may have queued
/// before it counts as lagging.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 1 << 20;
/// Default of `CHAT_MAX_SOCKETS_PER_USER`: open sockets per user in one process.
pub const DEFAULT_MAX_SOCKETS_PER_USER: usize = 32;
/// How long a message waits for a missing predecessor before it is delivered anyway
/// (the predecessor was lost, e.g. in a Redis outage; clients recover by seq).
pub const GAP_WAIT: Duration = Duration::from_millis(250);
/// How often held-back messages are checked.
const GAP_TICK: Duration = Duration::from_millis(50);
/// Longest wait for the bus to confirm the subscription of a chat joined mid-stream.
const JOIN_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Identifies one socket.
pub type ConnId = u64;

/// What a socket follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/ws`: every chat of the user, and the user's notifications.
    AllChats,
    /// `/ws/chats/{id}` or `/ws/direct/{user_id}`: one chat.
    Chat(ChatId),
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

/// What the hub bounds per socket and per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    /// Bytes a socket's outbound queue may hold (`CHAT_WS_MAX_QUEUED_BYTES`).
    pub max_queued_bytes: usize,
    /// Sockets one user may hold open in this process (`CHAT_MAX_SOCKETS_PER_USER`).
    pub max_sockets_per_user: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            max_sockets_per_user: DEFAULT_MAX_SOCKETS_PER_USER,
        }
    }
}

/// A registration refused: the user holds the most sockets allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManySockets {
    /// The cap.
    pub max: usize,
}

struct Conn {
    user_id: UserId,
    session_id: String,
    scope: Scope,
    /// The chats it follows (so unregistering touches only those).
    chats: HashSet<ChatId>,
    /// While the socket re-reads its memberships: the membership changes applied to it
    /// since (`true`: joined), replayed over what it read.
    journal: Option<Vec<(ChatId, bool)>>,
    outbox: Arc<Outbox>,
    close: Arc<CloseSignal>,
    revalidate: Arc<Notify>,
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
    next: Option<Seq>,
    held: BTreeMap<Seq, (Bytes, Instant)>,
    /// Checks of memberships begun here before the bus confirmed the chat's
    /// subscription, still running: until they end, later joiners are checked too.
    confirming: u32,
}

#[derive(Default)]
struct State {
    conns: HashMap<ConnId, Conn>,
    by_chat: HashMap<ChatId, HashSet<ConnId>>,
    by_user: HashMap<UserId, HashSet<ConnId>>,
    order: HashMap<ChatId, ChatOrder>,
    /// Frames queued to sockets since [`Hub::count`] last ran.
    delivered: std::cell::Cell<u64>,
    /// Unfilled seq gaps announced since [`Hub::count`] last ran.
    gaps: u64,
    /// Topics that gained their first local follower (`true`) or lost their last
    /// (`false`) since [`Hub::flush_interest`] last ran, in order.
    interest: Vec<(bool, String)>,
    /// Memberships begun on a chat this instance did not follow yet (or whose
    /// subscription is not confirmed yet), to check once the bus confirms it
    /// ([`Hub::confirm_joins`]).
    joins: Vec<PendingJoin>,
}

/// What sockets that just began following a chat may have missed.
enum Joined {
    /// Nothing: they follow it in order from the membership's start.
    Nothing,
    /// Seqs after this one passed before them (the chat, the seq, the sockets).
    Missed(ChatId, Seq, Vec<ConnId>),
    /// Unknown until the bus confirms the chat's subscription.
    Unconfirmed(PendingJoin),
}

/// Sockets that began following `chat` after its seq `after`, when nothing here
/// followed it: a message published before the bus subscription took effect never
/// reaches them, and nothing else would tell them if no later message came.
struct PendingJoin {
    chat: ChatId,
    after: Seq,
    conns: Vec<ConnId>,
}

/// A registered socket's ends.
pub struct Registration {
    /// Its id (to unregister).
    pub id: ConnId,
    /// Frames to send (drained by the socket's writer task).
    pub outbound: Arc<Outbox>,
    /// Close requests.
    pub close: Arc<CloseSignal>,
    /// Asks the socket task to re-check its session and re-read its memberships (events
    /// may have been missed).
    pub revalidate: Arc<Notify>,
}

/// Sockets re-reading their access at once after a bus lag: the rest wait their turn,
/// so a lag costs the database a steady trickle, not one query per socket at once.
pub const CONCURRENT_REVALIDATIONS: usize = 8;

/// The connection registry and fan-out of one process.
pub struct Hub {
    state: Mutex<State>,
    next_id: AtomicU64,
    limits: HubLimits,
    revalidations: tokio::sync::Semaphore,
    /// The process is stopping: every socket, a late one too, closes with 1001.
    stopping: AtomicBool,
    /// Where deliveries, latencies and lags are counted (none in unit tests).
    metrics: Option<Arc<Metrics>>,
    /// Told which topics this instance's sockets follow (none in unit tests that do not
    /// look at it).
    bus: Option<Arc<dyn EventBus>>,
    /// Chats' newest committed seqs, for memberships begun mid-stream (none in unit
    /// tests: such a socket is told to fetch unless a message reached it since).
    newest: Option<NewestSeqs>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            state: Mutex::default(),
            next_id: AtomicU64::default(),
            limits: HubLimits::default(),
            revalidations: tokio::sync::Semaphore::new(CONCURRENT_REVALIDATIONS),
            stopping: AtomicBool::new(false),
            metrics: None,
            bus: None,
            newest: None,
        }
    }
}

/// What the hub reads of an event to route it: its kind (typed: the one list in
/// [`EventKind`]) and the few fields routing needs. The rest of the payload is forwarded
/// as it is, never parsed.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: EventKind,
    seq: Option<Seq>,
    user_id: Option<UserId>,
    /// The chat of a `chat.member_joined` on a user's topic.
    chat_id: Option<ChatId>,
    /// Its newest seq when that membership began.
    last_seq: Option<Seq>,
    session_id: Option<String>,
    /// When the message was accepted (`chat.message`), for the delivery latency.
    created_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Hub {
    /// A hub fed by `bus`, which it tells what its sockets follow; spawns the router
    /// task (call inside a tokio runtime). `newest` reads chats' newest committed seqs.
    pub fn start(
        bus: Arc<dyn EventBus>,
        newest: NewestSeqs,
        limits: HubLimits,
        metrics: Arc<Metrics>,
    ) -> Arc<Hub> {
        let events = bus.subscribe();
        let hub = Arc::new(Hub {
            metrics: Some(metrics),
            bus: Some(bus),
            newest: Some(newest),
            ..Hub::with_limits(limits)
        });
        tokio::spawn(route(hub.clone(), events));
        hub
    }

    /// A hub with these limits and no router (tests drive [`Hub::handle`] directly).
    pub fn with_limits(limits: HubLimits) -> Hub {
        Hub {
            limits,
            ..Hub::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every mutation completes before the guard drops: a poisoned state is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the bus which topics gained or lost their local followers. Called with the
    /// state locked, so the bus hears the changes of all threads in the order they
    /// happened (it subscribes and unsubscribes in that order).
    fn flush_interest(&self, state: &mut State) {
        if state.interest.is_empty() {
            return;
        }
        let Some(bus) = &self.bus else {
            state.interest.clear();
            return;
        };
        let mut changes = std::mem::take(&mut state.interest).into_iter().peekable();
        while let Some((follow, topic)) = changes.next() {
            let mut run = vec![topic];
            while let Some((_, topic)) = changes.next_if(|(f, _)| *f == follow) {
                run.push(topic);
            }
            if follow {
                bus.follow(run);
            } else {
                bus.unfollow(run);
            }
        }
    }

    /// Registers a socket following `chats`, given as `(chat id, last seq)`: in-order
    /// delivery of a chat nobody here followed yet starts after that seq. Refused when
    /// the user already holds [`HubLimits::max_sockets_per_user`] sockets here.
    pub fn register(
        &self,
        user_id: UserId,
        session_id: &str,
        scope: Scope,
        chats: &[ChatPosition],
    ) -> Result<Registration, TooManySockets> {
        let mut state = self.lock();
        let max = self.limits.max_sockets_per_user;
        if state.by_user.get(&user_id).map_or(0, HashSet::len) >= max {
            return Err(TooManySockets { max });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let outbound = Outbox::held(self.limits.max_queued_bytes);
        let close = Arc::new(CloseSignal::default());
        let revalidate = Arc::new(Notify::new());
        state.add_user_conn(user_id, id);
        state.conns.insert(
            id,
            Conn {
                user_id,
                session_id: session_id.to_owned(),
                scope,
                chats: HashSet::new(),
                journal: None,
                outbox: outbound.clone(),
                close: close.clone(),
                revalidate: revalidate.clone(),
            },
        );
        state.add_chats(id, chats);
        self.flush_interest(&mut state);
        drop(state);
        // Registered after the stop began (its handshake was already under way): it
        // closes like the others rather than keep the process waiting.
        if self.stopping.load(Ordering::SeqCst) {
            close.close(Closing::GoingAway);
        }
        Ok(Registration {
            id,
            outbound,
            close,
            revalidate,
        })
    }

    /// A turn to re-read a socket's access after a bus lag (at most
    /// [`CONCURRENT_REVALIDATIONS`] at once).
    pub async fn revalidation_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.revalidations.acquire().await.ok()
    }

    /// Starts recording the membership changes applied to socket `id`, before it
    /// re-reads its memberships.
    pub fn begin_revalidation(&self, id: ConnId) {
        if let Some(conn) = self.lock().conns.get_mut(&id) {
            conn.journal = Some(Vec::new());
        }
    }

    /// Replaces the chats socket `id` follows with `chats` (what it read after
    /// [`Hub::begin_revalidation`]), then re-applies the membership changes that passed
    /// since. `None` (the read failed) keeps what it follows.
    pub fn finish_revalidation(&self, id: ConnId, chats: Option<&[ChatPosition]>) {
        let mut state = self.lock();
        let Some(journal) = state.conns.get_mut(&id).and_then(|c| c.journal.take()) else {
            return;
        };
        let Some(chats) = chats else { return };
        let mut wanted: HashMap<ChatId, Seq> =
            chats.iter().map(|p| (p.chat_id, p.last_seq)).collect();
        for (chat, joined) in journal {
            if joined {
                wanted.entry(chat).or_insert(Seq(0));
            } else {
                wanted.remove(&chat);
            }
        }
        let followed: Vec<ChatId> = state
            .conns
            .get(&id)
            .map(|c| c.chats.iter().copied().collect())
            .unwrap_or_default();
        for chat in followed {
            if !wanted.contains_key(&chat) {
                state.stop_following(id, chat);
            }
        }
        let added: Vec<ChatPosition> = wanted
            .into_iter()
            .map(|(chat_id, last_seq)| ChatPosition { chat_id, last_seq })
            .collect();
        state.add_chats(id, &added);
        self.flush_interest(&mut state);
    }

    /// Forgets a socket.
    pub fn unregister(&self, id: ConnId) {
        let mut state = self.lock();
        if let Some(conn) = state.conns.remove(&id) {
            state.remove_user_conn(conn.user_id, id);
            for chat in conn.chats {
                state.remove_chat_conn(chat, id);
                if !state.by_chat.contains_key(&chat) {
                    state.order.remove(&chat);
                }
            }
        }
        self.flush_interest(&mut state);
    }

    /// Whether socket `id` follows `chat` now.
    pub fn follows(&self, id: ConnId, chat: ChatId) -> bool {
        self.lock()
            .conns
            .get(&id)
            .is_some_and(|conn| conn.chats.contains(&chat))
    }

    /// The chats socket `id` follows now (tests and diagnostics).
    pub fn followed(&self, id: ConnId) -> Vec<ChatId> {
        let mut chats: Vec<ChatId> = self
            .lock()
            .conns
            .get(&id)
            .map(|c| c.chats.iter().copied().collect())
            .unwrap_or_default();
        chats.sort_unstable();
        chats
    }

    /// The process is stopping: every socket (and any registered from now on) is asked
    /// to close with 1001 "going away" once its current action has been answered. What
    /// is queued for it is still written before the close frame.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for conn in self.lock().conns.values() {
            conn.close.close(Closing::GoingAway);
        }
    }

    /// Sockets open in this process.
    pub fn connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// Adds what the state counted since the last call to the metrics.
    fn count(&self, state: &mut State) {
        let (delivered, gaps) = (state.delivered.take(), std::mem::take(&mut state.gaps));
        if let Some(metrics) = &self.metrics {
            metrics.events_delivered.inc_by(delivered);
            metrics.bus_gaps.inc_by(gaps);
        }
    }

    /// Routes one bus message; true when it left memberships to confirm
    /// ([`Hub::confirm_joins`]).
    fn handle(&self, message: &BusMessage) -> bool {
        if message.topic == chat_services::events::GAP_TOPIC {
            tracing::warn!(
                "events may have been missed (broker reconnected); sockets resynchronise"
            );
            if let Some(metrics) = &self.metrics {
                metrics.bus_gaps.inc();
            }
            self.resync_all();
            return false;
        }
        // Encoded once per event, only for events some socket may receive as they are.
        let payload = || frames::text(&message.payload);
        let head: Option<Head> = serde_json::from_str(&message.payload).ok();
        if let (
            Some(metrics),
            Some(Head {
                kind: EventKind::Message,
                created_at: Some(at),
                ..
            }),
        ) = (&self.metrics, &head)
        {
            let waited = chrono::Utc::now().signed_duration_since(*at);
            metrics
                .bus_receive_latency
                .observe(waited.as_seconds_f64().max(0.0));
        }
        let mut state = self.lock();
        let before = state.delivered.get();
        // A message held for a missing predecessor is needed too (it leaves later).
        let followed = self.handle_locked(&mut state, message, head, payload);
        if let (Some(metrics), true) = (&self.metrics, followed || state.delivered.get() > before) {
            metrics.bus_needed.inc();
        }
        self.count(&mut state);
        self.flush_interest(&mut state);
        !state.joins.is_empty()
    }

    /// Routes one event; true when it was for a chat some local socket followed.
    fn handle_locked(
        &self,
        state: &mut State,
        message: &BusMessage,
        head: Option<Head>,
        payload: impl Fn() -> Bytes,
    ) -> bool {
        if let Some(chat) = message
            .topic
            .strip_prefix("chat.")
            .and_then(|c| c.parse().ok())
            .map(ChatId)
        {
            let followed = state.by_chat.contains_key(&chat);
            let Some(head) = head else { return followed };
            match head.kind {
                EventKind::Message => {
                    if let (Some(metrics), Some(at), true) =
                        (&self.metrics, head.created_at, followed)
                    {
                        let waited = chrono::Utc::now().signed_duration_since(at);
                        metrics
                            .delivery_latency
                            .observe(waited.as_seconds_f64().max(0.0));
                    }
                    match head.seq {
                        Some(seq) => state.deliver_in_order(chat, seq, payload()),
                        None => state.deliver_to_chat(chat, &payload()),
                    }
                }
                EventKind::MemberJoined => {
                    let joined = head
                        .user_id
                        .map(|user| state.begin_following(chat, user, head.last_seq));
                    // The member's own `/ws` sockets hear it on the member's topic (where
                    // it carries `last_seq`; a join published without it went to the chat
                    // only).
                    let joiner = head.user_id.filter(|_| head.last_seq.is_some());
                    state.deliver_join(chat, &payload(), joiner);
                    if let Some(joined) = joined {
                        state.announce_missed(joined);
                    }
                }
                EventKind::MemberLeft => {
                    state.deliver_to_chat(chat, &payload());
                    if let Some(user) = head.user_id {
                        state.unfollow(chat, user);
                    }
                }
                EventKind::Typing => state.deliver_to_chat_except(chat, &payload(), head.user_id),
                EventKind::Deleted => {
                    state.flush_held(chat);
                    state.deliver_to_chat(chat, &payload());
                    state.drop_chat(chat);
                }
                EventKind::MessageEdited
                | EventKind::MessageDeleted
                | EventKind::Read
                | EventKind::Reaction
                | EventKind::RoleChanged
                | EventKind::Updated => state.deliver_to_chat(chat, &payload()),
                EventKind::Presence
                | EventKind::Notification
                | EventKind::SessionRevoked
                | EventKind::PermissionsChanged
                | EventKind::AccessChanged => {
                    tracing::warn!(kind = ?head.kind, chat = chat.0, "a personal event on a chat topic; dropped");
                }
            }
            followed
        } else if let Some(user) = message
            .topic
            .strip_prefix("user.")
            // Presence is on `presence.<id>` (heard by every instance), the rest of a
            // user's events on `user.<id>` (heard where the user has sockets).
            .or_else(|| message.topic.strip_prefix("presence."))
            .and_then(|u| u.parse().ok())
            .map(UserId)
        {
            let Some(head) = head else { return false };
            match head.kind {
                EventKind::Presence => {
                    match serde_json::from_str::<PresenceChange>(&message.payload) {
                        Ok(change) if change.user_id == user => state.deliver_presence(&change),
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "malformed presence event"),
                    }
                }
                EventKind::SessionRevoked => {
                    let session = head.session_id.unwrap_or_default();
                    state.close_session(user, &session);
                }
                EventKind::PermissionsChanged => state.close_user(user, Closing::Reauthenticate),
                EventKind::AccessChanged => state.revalidate_user(user),
                EventKind::Notification => state.deliver_to_user(user, &payload()),
                // A membership of this user (theirs, or another member's of a chat being
                // created with them): their `/ws` sockets follow the chat from now on,
                // in order after the seq the membership began at.
                EventKind::MemberJoined => {
                    if let Some(chat) = head.chat_id {
                        let joined = state.begin_following(chat, user, head.last_seq);
                        state.deliver_to_user(user, &payload());
                        state.announce_missed(joined);
                    }
                }
                // A membership of this user ended (or its chat was deleted): their sockets
                // stop following the chat, even where the chat's own event was not heard.
                EventKind::MemberLeft | EventKind::Deleted => {
                    if let Some(chat) = head.chat_id {
                        state.unfollow(chat, user);
                    }
                }
                EventKind::Message
                | EventKind::MessageEdited
                | EventKind::MessageDeleted
                | EventKind::Read
                | EventKind::Reaction
                | EventKind::RoleChanged
                | EventKind::Updated
                | EventKind::Typing => {
                    tracing::warn!(kind = ?head.kind, user = user.0, "a chat event on a user topic; dropped");
                }
            }
            false
        } else {
            false
        }
    }

    /// Checks the memberships begun on chats nothing here followed (see
    /// [`PendingJoin`]) once the bus has confirmed their subscriptions: the chat's newest
    /// committed seq is read, and its new followers are told to fetch (`resync`) unless
    /// every message up to it has reached them. Called after [`Hub::handle`].
    pub fn confirm_joins(self: &Arc<Self>) {
        let joins = std::mem::take(&mut self.lock().joins);
        if joins.is_empty() {
            return;
        }
        let subscribed = self.bus.as_ref().and_then(|bus| bus.barrier());
        let hub = self.clone();
        tokio::spawn(async move {
            if let Some(subscribed) = subscribed {
                // A bus that cannot confirm (Redis down) leaves it to the check below,
                // which then errs on the side of a fetch.
                let _ = tokio::time::timeout(JOIN_CONFIRM_TIMEOUT, subscribed).await;
            }
            for join in joins {
                let newest = match &hub.newest {
                    // No entry: nothing committed in the chat since the join (the
                    // writers raise it before they publish).
                    Some(newest) => match newest.get(join.chat).await {
                        Ok(seq) => Some(seq.unwrap_or(join.after)),
                        Err(_) => None,
                    },
                    None => None,
                };
                // What was published after the subscription may still be on its way:
                // it gets the time a gap in seqs gets to fill.
                if hub.lock().missed(&join, newest) {
                    tokio::time::sleep(GAP_WAIT).await;
                }
                hub.check_join(join, newest);
            }
        });
    }

    /// Tells `join`'s sockets still following its chat to fetch, if [`State::missed`];
    /// the chat's subscription counts as confirmed from then on.
    fn check_join(&self, join: PendingJoin, newest: Option<Seq>) {
        let mut state = self.lock();
        if let Some(order) = state.order.get_mut(&join.chat) {
            order.confirming = order.confirming.saturating_sub(1);
        }
        if !state.missed(&join, newest) {
            return;
        }
        let still: Vec<ConnId> = join
            .conns
            .into_iter()
            .filter(|id| {
                state
                    .conns
                    .get(id)
                    .is_some_and(|conn| conn.chats.contains(&join.chat))
            })
            .collect();
        state.hint_gap(&still, join.chat, join.after);
    }

    fn release_held(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        let overdue: Vec<ChatId> = state
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
        self.count(&mut state);
    }

    fn close_all(&self, reason: Closing) {
        for conn in self.lock().conns.values() {
            conn.shut(reason);
        }
    }

    /// Events may have been missed, nobody knows which: every socket is told to fetch
    /// what it missed (`resync`) and re-checks its access and memberships.
    fn resync_all(&self) {
        let hint = frames::text(&resync_event(None));
        let state = self.lock();
        for (id, conn) in &state.conns {
            state.send(*id, &hint);
            conn.revalidate.notify_one();
        }
    }
}

/// `{"type": "resync", …}`: events may have been lost; fetch with `after_seq` (from
/// `after_seq` for the one chat named, or for every chat).
fn resync_event(chat: Option<(ChatId, Seq)>) -> String {
    match chat {
        Some((chat_id, after_seq)) => serde_json::json!({
            "type": "resync", "chat_id": chat_id, "after_seq": after_seq,
            "detail": "messages may have been missed: fetch them with after_seq",
        }),
        None => serde_json::json!({
            "type": "resync",
            "detail": "events may have been missed: fetch your chats' messages with after_seq",
        }),
    }
    .to_string()
}

/// Adds socket `id` under `key`; the key's first socket records a follow of `topic(key)`.
fn add_conn<K: std::hash::Hash + Eq + Copy>(
    map: &mut HashMap<K, HashSet<ConnId>>,
    interest: &mut Vec<(bool, String)>,
    key: K,
    id: ConnId,
    topic: fn(K) -> String,
) {
    match map.entry(key) {
        Entry::Occupied(mut ids) => {
            ids.get_mut().insert(id);
        }
        Entry::Vacant(slot) => {
            slot.insert(HashSet::from([id]));
            interest.push((true, topic(key)));
        }
    }
}

/// Removes socket `id` from `key`; the key's last socket records an unfollow.
fn remove_conn<K: std::hash::Hash + Eq + Copy>(
    map: &mut HashMap<K, HashSet<ConnId>>,
    interest: &mut Vec<(bool, String)>,
    key: K,
    id: ConnId,
    topic: fn(K) -> String,
) {
    if let Some(ids) = map.get_mut(&key) {
        ids.remove(&id);
        if ids.is_empty() {
            map.remove(&key);
            interest.push((false, topic(key)));
        }
    }
}

impl State {
    /// Socket `id` follows `chat`; the first local follower makes the instance follow
    /// the chat's topic.
    fn add_chat_conn(&mut self, chat: ChatId, id: ConnId) {
        add_conn(&mut self.by_chat, &mut self.interest, chat, id, chat_topic);
    }

    /// Socket `id` no longer follows `chat`; after the last, neither does the instance.
    fn remove_chat_conn(&mut self, chat: ChatId, id: ConnId) {
        remove_conn(&mut self.by_chat, &mut self.interest, chat, id, chat_topic);
    }

    /// Socket `id` belongs to `user`: the instance follows the user's topic while it
    /// holds one of their sockets.
    fn add_user_conn(&mut self, user: UserId, id: ConnId) {
        add_conn(&mut self.by_user, &mut self.interest, user, id, user_topic);
    }

    fn remove_user_conn(&mut self, user: UserId, id: ConnId) {
        remove_conn(&mut self.by_user, &mut self.interest, user, id, user_topic);
    }

    fn send(&self, id: ConnId, payload: &Bytes) {
        if let Some(conn) = self.conns.get(&id) {
            match conn.outbox.push(payload.clone()) {
                Ok(()) => self.delivered.set(self.delivered.get() + 1),
                Err(Refused::Full) => conn.shut(Closing::Lagging),
                // The socket is ending; its task unregisters it.
                Err(Refused::Closed) => {}
            }
        }
    }

    fn deliver_to_chat(&self, chat: ChatId, payload: &Bytes) {
        self.deliver_to_chat_except(chat, payload, None);
    }

    /// Delivers a join to the chat's sockets, except the `/ws` sockets of `joiner` (which
    /// hear it on their own topic).
    fn deliver_join(&self, chat: ChatId, payload: &Bytes, joiner: Option<UserId>) {
        if let Some(ids) = self.by_chat.get(&chat) {
            for id in ids {
                let own = self
                    .conns
                    .get(id)
                    .is_some_and(|c| Some(c.user_id) == joiner && c.scope == Scope::AllChats);
                if !own {
                    self.send(*id, payload);
                }
            }
        }
    }

    /// Delivers to the chat's sockets, except those of `except_user` (typing notices
    /// go to the other members).
    fn deliver_to_chat_except(&self, chat: ChatId, payload: &Bytes, except_user: Option<UserId>) {
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

    fn add_chats(&mut self, id: ConnId, chats: &[ChatPosition]) {
        for position in chats {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.chats.insert(position.chat_id) {
                self.add_chat_conn(position.chat_id, id);
                let order = self.order.entry(position.chat_id).or_default();
                if order.next.is_none() {
                    order.next = Some(position.last_seq.next());
                }
            }
        }
    }

    /// The user's sockets re-check their access (and forget what earlier sends
    /// established) before their next send.
    fn revalidate_user(&self, user: UserId) {
        for id in self.by_user.get(&user).into_iter().flatten() {
            if let Some(conn) = self.conns.get(id) {
                conn.revalidate.notify_one();
            }
        }
    }

    fn close_user(&self, user: UserId, reason: Closing) {
        for id in self.by_user.get(&user).into_iter().flatten() {
            if let Some(conn) = self.conns.get(id) {
                conn.shut(reason);
            }
        }
    }

    fn deliver_to_user(&self, user: UserId, payload: &Bytes) {
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

    fn deliver_in_order(&mut self, chat: ChatId, seq: Seq, payload: Bytes) {
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
            _ => order.next = Some(seq.next()),
        }
        self.deliver_to_chat(chat, &payload);
        self.release_consecutive(chat);
    }

    fn release_consecutive(&mut self, chat: ChatId) {
        loop {
            let Some(order) = self.order.get_mut(&chat) else {
                return;
            };
            let Some(next) = order.next else { return };
            let Some((payload, _)) = order.held.remove(&next) else {
                return;
            };
            order.next = Some(next.next());
            self.deliver_to_chat(chat, &payload);
        }
    }

    /// Delivers what waits for a missing predecessor. The skipped seqs are announced
    /// first (a `resync` hint naming where to fetch from), so clients recover them.
    fn flush_held(&mut self, chat: ChatId) {
        let Some(order) = self.order.get_mut(&chat) else {
            return;
        };
        let expected = order.next;
        let held = std::mem::take(&mut order.held);
        if let Some((last, _)) = held.last_key_value() {
            order.next = Some(last.next());
        }
        if let (Some(expected), Some(first)) = (expected, held.keys().next())
            && *first > expected
        {
            let hint = frames::text(&resync_event(Some((chat, expected.prev()))));
            self.gaps += 1;
            self.deliver_to_chat(chat, &hint);
        }
        for (_, (payload, _)) in held {
            self.deliver_to_chat(chat, &payload);
        }
    }

    /// `user`'s `/ws` sockets follow `chat`; returns those that did not already.
    fn follow(&mut self, chat: ChatId, user: UserId) -> Vec<ConnId> {
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
        let mut joined = Vec::new();
        for id in ids {
            if let Some(conn) = self.conns.get_mut(&id) {
                if conn.chats.insert(chat) {
                    joined.push(id);
                }
                if let Some(journal) = &mut conn.journal {
                    journal.push((chat, true));
                }
            }
            self.add_chat_conn(chat, id);
        }
        joined
    }

    /// `user`'s `/ws` sockets follow `chat`, in order after `last_seq` (the chat's newest
    /// seq when the membership began) if nothing here followed it yet. Returns what
    /// the sockets that just began following may have missed.
    fn begin_following(&mut self, chat: ChatId, user: UserId, last_seq: Option<Seq>) -> Joined {
        // What this instance knows of the chat's stream, if it followed it already.
        let (known, confirming) = match self.order.get(&chat) {
            Some(order) if self.by_chat.contains_key(&chat) => (order.next, order.confirming > 0),
            _ => (None, false),
        };
        let conns = self.follow(chat, user);
        let Some(last_seq) = last_seq else {
            return Joined::Nothing;
        };
        if !self.by_chat.contains_key(&chat) {
            return Joined::Nothing;
        }
        let after = last_seq.next();
        let order = self.order.entry(chat).or_default();
        order.next.get_or_insert(after);
        match known {
            _ if conns.is_empty() => Joined::Nothing,
            // Other sockets here are past the membership's start: what they got in
            // between never reaches the joiners.
            Some(next) if next > after => Joined::Missed(chat, last_seq, conns),
            // Followed here, subscribed, and not past it: the rest comes in order.
            Some(_) if !confirming => Joined::Nothing,
            // Not followed here before (or its subscription not yet confirmed): whether
            // a message passed before the subscription took effect is known once the
            // bus confirms it.
            _ => {
                order.confirming += 1;
                Joined::Unconfirmed(PendingJoin {
                    chat,
                    after: last_seq,
                    conns,
                })
            }
        }
    }

    /// Announces what [`State::begin_following`] found: a gap now, or a check once the
    /// bus has subscribed.
    fn announce_missed(&mut self, joined: Joined) {
        match joined {
            Joined::Nothing => {}
            Joined::Missed(chat, after, conns) => self.hint_gap(&conns, chat, after),
            Joined::Unconfirmed(join) => self.joins.push(join),
        }
    }

    /// Whether messages of `join`'s chat up to `newest` (`None`: unknown) have not all
    /// reached this instance since the membership began.
    fn missed(&self, join: &PendingJoin, newest: Option<Seq>) -> bool {
        let next = self.order.get(&join.chat).and_then(|order| order.next);
        match (newest, next) {
            // Nothing committed after the membership began, or all of it arrived.
            (Some(newest), Some(next)) => next <= newest,
            (Some(newest), None) => newest > join.after,
            // Unknown: a fetch unless something arrived since.
            (None, next) => next.is_none_or(|next| next <= join.after.next()),
        }
    }

    /// Tells sockets `ids` that messages of `chat` after `after` may have passed them.
    fn hint_gap(&self, ids: &[ConnId], chat: ChatId, after: Seq) {
        if ids.is_empty() {
            return;
        }
        let hint = frames::text(&resync_event(Some((chat, after))));
        for id in ids {
            self.send(*id, &hint);
        }
    }

    /// Socket `id` no longer follows `chat`.
    fn stop_following(&mut self, id: ConnId, chat: ChatId) {
        self.remove_chat_conn(chat, id);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.chats.remove(&chat);
        }
        if !self.by_chat.contains_key(&chat) {
            self.order.remove(&chat);
        }
    }

    /// A user came online or went offline: each local socket following one of their
    /// chats (but their own), and each `/ws` socket of one of their friends, hears it
    /// once.
    fn deliver_presence(&self, change: &PresenceChange) {
        let mut targets: HashMap<ConnId, Option<ChatId>> = HashMap::new();
        for chat in &change.chats {
            for id in self.by_chat.get(chat).into_iter().flatten() {
                // The user's own sockets are not told about themselves.
                if let Some(conn) = self.conns.get(id).filter(|c| c.user_id != change.user_id) {
                    targets.insert(*id, Some(*chat).filter(|_| conn.scope != Scope::AllChats));
                }
            }
        }
        for friend in &change.friends {
            for id in self.by_user.get(friend).into_iter().flatten() {
                if self
                    .conns
                    .get(id)
                    .is_some_and(|c| c.scope == Scope::AllChats)
                {
                    targets.insert(*id, None);
                }
            }
        }
        if targets.is_empty() {
            return;
        }
        // One frame for `/ws` sockets and one per chat for chat sockets (which name it).
        let mut frames_by_chat: HashMap<Option<ChatId>, Bytes> = HashMap::new();
        for (id, chat) in targets {
            let frame = frames_by_chat
                .entry(chat)
                .or_insert_with(|| frames::text(&change.client_event(chat)));
            self.send(id, frame);
        }
    }

    fn unfollow(&mut self, chat: ChatId, user: UserId) {
        let ids: Vec<ConnId> = self
            .by_user
            .get(&user)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        for id in ids {
            self.remove_chat_conn(chat, id);
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.chats.remove(&chat);
                if let Some(journal) = &mut conn.journal {
                    journal.push((chat, false));
                }
                if conn.scope == Scope::Chat(chat) {
                    conn.shut(Closing::RemovedFromChat);
                }
            }
        }
        // Nobody here follows it any more: a later follower starts from its own seq.
        if !self.by_chat.contains_key(&chat) {
            self.order.remove(&chat);
        }
    }

    fn drop_chat(&mut self, chat: ChatId) {
        if let Some(ids) = self.by_chat.remove(&chat) {
            self.interest.push((false, chat_topic(chat)));
            for id in ids {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.chats.remove(&chat);
                    if let Some(journal) = &mut conn.journal {
                        journal.push((chat, false));
                    }
                    if conn.scope == Scope::Chat(chat) {
                        conn.shut(Closing::ChatDeleted);
                    }
                }
            }
        }
        self.order.remove(&chat);
    }

    fn close_session(&self, user: UserId, session: &str) {
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
                Ok(message) => {
                    if let Some(metrics) = &hub.metrics {
                        metrics.bus_received.inc();
                        metrics.hub_backlog.observe(events.len() as f64);
                    }
                    if hub.handle(&message) {
                        hub.confirm_joins();
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    if let Some(metrics) = &hub.metrics {
                        metrics.bus_received.inc_by(missed);
                        metrics.bus_lagged.inc_by(missed);
                    }
                    // Events were lost, and which chats they were for is unknown: every
                    // socket recovers (none is closed for it).
                    tracing::error!(missed, "websocket hub fell behind the event bus; sockets resynchronise");
                    hub.resync_all();
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

    fn register(
        hub: &Hub,
        user: i64,
        session: &str,
        scope: Scope,
        chats: &[(i64, i64)],
    ) -> Registration {
        let chats: Vec<ChatPosition> = chats
            .iter()
            .map(|&(chat, seq)| ChatPosition {
                chat_id: ChatId(chat),
                last_seq: chat_domain::Seq(seq),
            })
            .collect();
        hub.register(UserId(user), session, scope, &chats)
            .unwrap_or_else(|e| panic!("registration refused: {e:?}"))
    }

    fn reason(reg: &Registration) -> Option<Closing> {
        *reg.close.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fan-out hot path with and without metrics, for an instruction count under
    /// callgrind (docs/benchmarks.md): `HUB_COST_METRICS=1` turns metrics on.
    /// `cargo test --release -p chat-ws --lib -- --ignored fan_out_cost`.
    #[test]
    #[ignore = "a measurement, run by hand under callgrind"]
    fn fan_out_cost() -> Result<(), Box<dyn std::error::Error>> {
        let mut hub = Hub::with_limits(HubLimits {
            max_queued_bytes: 1 << 30,
            max_sockets_per_user: 64,
        });
        if std::env::var_os("HUB_COST_METRICS").is_some() {
            hub.metrics = Some(Arc::new(Metrics::new(false)?));
        }
        let sockets: Vec<Registration> = (0..10)
            .map(|user| register(&hub, user, "s", Scope::Chat(ChatId(1)), &[(1, 0)]))
            .collect();
        for socket in &sockets {
            socket.outbound.release();
        }
        let created_at = chrono::Utc::now().to_rfc3339();
        for seq in 1..=20_000 {
            let event = message(
                "chat.1",
                serde_json::json!({"type": "chat.message", "chat_id": 1, "id": seq, "seq": seq,
                    "message": "hello there", "sender_id": 1, "created_at": created_at}),
            );
            hub.handle(&event);
            if seq % 100 == 0 {
                for socket in &sockets {
                    socket.outbound.take_all();
                }
            }
        }
        Ok(())
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
        let reg = register(&hub, 1, "s", Scope::Chat(ChatId(7)), &[(7, 0)]);
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
        let reg = register(&hub, 1, "s", Scope::AllChats, &[(7, 0)]);
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
        let frames = reg.outbound.take_all();
        let hint: serde_json::Value =
            serde_json::from_str(frames::text_payload(&frames[0]).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(
            (hint["type"].as_str(), hint["after_seq"].as_i64()),
            (Some("resync"), Some(1)),
            "the skipped seq is announced before what follows it"
        );
        assert_eq!(frames.len(), 2);
        hub.handle(&message(
            "chat.7",
            serde_json::json!({"type": "chat.message", "seq": 4}),
        ));
        assert_eq!(seqs(&reg.outbound), [4]);
    }

    #[test]
    fn membership_events_change_who_follows() {
        let hub = Hub::default();
        let all = register(&hub, 2, "s2", Scope::AllChats, &[]);
        let one = register(&hub, 2, "s2b", Scope::Chat(ChatId(9)), &[(9, 0)]);
        // A join is published on the member's topic and on the chat's: the member's
        // own sockets hear it once (from their topic), and follow the chat from either.
        let joined = serde_json::json!({"type": "chat.member_joined", "chat_id": 9,
            "user_id": 2, "last_seq": 0});
        hub.handle(&message("chat.9", joined.clone()));
        hub.handle(&message("user.2", joined));
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
        assert_eq!(reason(&one), Some(Closing::RemovedFromChat));
    }

    #[test]
    fn a_full_queue_closes_only_that_socket_as_lagging() {
        let hub = Hub::with_limits(HubLimits {
            max_queued_bytes: 10_000,
            ..HubLimits::default()
        });
        let slow = register(&hub, 1, "a", Scope::Chat(ChatId(5)), &[(5, 0)]);
        let fast = register(&hub, 2, "b", Scope::Chat(ChatId(5)), &[(5, 0)]);
        // About 100 bytes a frame: 10 000 bytes hold about 100 of them.
        for seq in 1..=200 {
            hub.handle(&message(
                "chat.5",
                serde_json::json!({"type": "chat.message", "seq": seq}),
            ));
            let _ = fast.outbound.take_all();
        }
        assert_eq!(reason(&slow), Some(Closing::Lagging));
        assert_eq!(reason(&fast), None);
    }

    /// Each queued frame's `type`, with `after_seq` for a `resync` and `seq` otherwise.
    fn frames_of(outbox: &Outbox) -> Vec<(String, i64)> {
        outbox
            .take_all()
            .iter()
            .map(|frame| {
                let text = frames::text_payload(frame).unwrap_or_default();
                let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                let kind = value["type"].as_str().unwrap_or_default().to_owned();
                let number = if kind == "resync" {
                    &value["after_seq"]
                } else {
                    &value["seq"]
                };
                (kind, number.as_i64().unwrap_or(-1))
            })
            .collect()
    }

    fn joined(chat: i64, user: i64, last_seq: i64) -> BusMessage {
        message(
            &format!("user.{user}"),
            serde_json::json!({"type": "chat.member_joined", "chat_id": chat,
                "user_id": user, "last_seq": last_seq}),
        )
    }

    fn chat_message(chat: i64, seq: i64) -> BusMessage {
        message(
            &format!("chat.{chat}"),
            serde_json::json!({"type": "chat.message", "chat_id": chat, "seq": seq}),
        )
    }

    fn hint(after: i64) -> (String, i64) {
        ("resync".to_owned(), after)
    }

    fn event(kind: &str, seq: i64) -> (String, i64) {
        (kind.to_owned(), seq)
    }

    #[test]
    fn a_join_where_others_are_past_its_start_is_announced_as_a_gap() {
        let hub = Hub::default();
        let other = register(&hub, 1, "s1", Scope::AllChats, &[(7, 10)]);
        let joiner = register(&hub, 2, "s2", Scope::AllChats, &[]);
        // Seqs 11 and 12 pass (12 published before the join event was heard); the
        // membership began at 11.
        hub.handle(&chat_message(7, 11));
        hub.handle(&chat_message(7, 12));
        hub.handle(&joined(7, 2, 11));
        hub.handle(&chat_message(7, 13));
        assert_eq!(seqs(&other.outbound), [11, 12, 13]);
        assert_eq!(
            frames_of(&joiner.outbound),
            [
                event("chat.member_joined", -1),
                hint(11),
                event("chat.message", 13)
            ],
            "seq 12 passed the joiner: it is told to fetch after 11"
        );
        // A join at the point the others are at needs nothing.
        let late = register(&hub, 3, "s3", Scope::AllChats, &[]);
        hub.handle(&joined(7, 3, 13));
        hub.handle(&chat_message(7, 14));
        assert_eq!(
            frames_of(&late.outbound),
            [event("chat.member_joined", -1), event("chat.message", 14)]
        );
        assert!(
            hub.lock().joins.is_empty(),
            "nothing to confirm for a followed chat"
        );
    }

    #[test]
    fn a_join_on_a_chat_new_here_is_checked_against_the_newest_seq_once_subscribed() {
        let take = |hub: &Hub| std::mem::take(&mut hub.lock().joins);
        let cases: [(&str, &[i64], Option<i64>, bool); 5] = [
            ("nothing committed since the join", &[], Some(5), false),
            ("committed since and not arrived", &[], Some(7), true),
            ("committed since and all arrived", &[6, 7], Some(7), false),
            ("newest unknown, nothing arrived", &[], None, true),
            ("newest unknown, something arrived", &[6], None, false),
        ];
        for (case, arrived, newest, announced) in cases {
            let hub = Hub::default();
            let joiner = register(&hub, 2, "s2", Scope::AllChats, &[]);
            hub.handle(&joined(7, 2, 5));
            let mut joins = take(&hub);
            assert_eq!(joins.len(), 1, "{case}: one check pending");
            for seq in arrived {
                hub.handle(&chat_message(7, *seq));
            }
            let join = joins.remove(0);
            hub.check_join(join, newest.map(Seq));
            let mut expected = vec![event("chat.member_joined", -1)];
            expected.extend(arrived.iter().map(|seq| event("chat.message", *seq)));
            if announced {
                expected.push(hint(5));
            }
            assert_eq!(frames_of(&joiner.outbound), expected, "{case}");
        }
        // A socket gone (or no longer following) by the time of the check is not told.
        let hub = Hub::default();
        let joiner = register(&hub, 2, "s2", Scope::AllChats, &[]);
        hub.handle(&joined(7, 2, 5));
        let join = take(&hub).remove(0);
        hub.unregister(joiner.id);
        hub.check_join(join, Some(Seq(9)));
        assert_eq!(
            frames_of(&joiner.outbound),
            [event("chat.member_joined", -1)]
        );
    }

    #[test]
    fn joiners_before_the_subscription_is_confirmed_are_all_checked() {
        let hub = Hub::default();
        let ann = register(&hub, 1, "s1", Scope::AllChats, &[]);
        let bob = register(&hub, 2, "s2", Scope::AllChats, &[]);
        // A new direct chat: both members' joins arrive before the bus confirms.
        hub.handle(&joined(7, 1, 0));
        hub.handle(&joined(7, 2, 0));
        let joins = std::mem::take(&mut hub.lock().joins);
        assert_eq!(joins.len(), 2, "the second joiner is checked too");
        for join in joins {
            hub.check_join(join, Some(Seq(1)));
        }
        for socket in [&ann, &bob] {
            assert_eq!(
                frames_of(&socket.outbound),
                [event("chat.member_joined", -1), hint(0)],
                "seq 1 was committed and never arrived"
            );
        }
        // Confirmed: a later joiner where nothing is missing needs no check.
        let cy = register(&hub, 3, "s3", Scope::AllChats, &[]);
        hub.handle(&joined(7, 3, 0));
        assert!(hub.lock().joins.is_empty());
        assert_eq!(frames_of(&cy.outbound), [event("chat.member_joined", -1)]);
    }

    #[test]
    fn a_chat_nobody_here_follows_any_more_starts_afresh_for_its_next_member() {
        let hub = Hub::default();
        let ann = register(&hub, 1, "s1", Scope::AllChats, &[(7, 10)]);
        hub.handle(&message(
            "user.1",
            serde_json::json!({"type": "chat.member_left", "chat_id": 7, "user_id": 1}),
        ));
        assert!(!hub.follows(ann.id, ChatId(7)));
        // Bob joins at 20, after ten messages nobody here heard.
        let bob = register(&hub, 2, "s2", Scope::AllChats, &[]);
        hub.handle(&joined(7, 2, 20));
        assert_eq!(hub.lock().joins.len(), 1, "checked once subscribed");
        hub.handle(&chat_message(7, 21));
        assert_eq!(
            frames_of(&bob.outbound),
            [event("chat.member_joined", -1), event("chat.message", 21)],
            "delivered at once, not held behind seq 11"
        );
    }

    #[test]
    fn the_first_messages_of_a_chat_are_ordered_from_its_last_seq() {
        let hub = Hub::default();
        let reg = register(&hub, 1, "s", Scope::Chat(ChatId(7)), &[(7, 10)]);
        for seq in [12, 11] {
            hub.handle(&message(
                "chat.7",
                serde_json::json!({"type": "chat.message", "seq": seq}),
            ));
        }
        assert_eq!(seqs(&reg.outbound), [11, 12]);
    }

    #[test]
    fn typing_is_not_echoed_and_a_bus_gap_resyncs_without_closing() {
        let hub = Hub::default();
        let typer = register(&hub, 1, "a", Scope::Chat(ChatId(3)), &[(3, 0)]);
        let other = register(&hub, 2, "b", Scope::Chat(ChatId(3)), &[(3, 0)]);
        hub.handle(&message(
            "chat.3",
            serde_json::json!({"type": "chat.typing", "user_id": 1}),
        ));
        assert!(typer.outbound.is_empty());
        assert!(!other.outbound.is_empty());
        let _ = other.outbound.take_all();
        hub.handle(&BusMessage {
            topic: chat_services::events::GAP_TOPIC.to_owned(),
            payload: String::new(),
        });
        for reg in [&typer, &other] {
            assert_eq!(reason(reg), None, "a gap closes nothing");
            let frames = reg.outbound.take_all();
            assert_eq!(frames.len(), 1);
            assert!(
                frames::text_payload(&frames[0]).is_some_and(|t| t.contains("\"resync\"")),
                "each socket is told to resynchronise"
            );
        }
    }

    #[test]
    fn sockets_per_user_are_capped() {
        let hub = Hub::with_limits(HubLimits {
            max_sockets_per_user: 2,
            ..HubLimits::default()
        });
        let first = register(&hub, 1, "s", Scope::AllChats, &[]);
        let _second = register(&hub, 1, "s", Scope::AllChats, &[]);
        assert_eq!(
            hub.register(UserId(1), "s", Scope::AllChats, &[]).err(),
            Some(TooManySockets { max: 2 })
        );
        assert!(
            hub.register(UserId(2), "t", Scope::AllChats, &[]).is_ok(),
            "per user"
        );
        hub.unregister(first.id);
        assert!(hub.register(UserId(1), "s", Scope::AllChats, &[]).is_ok());
    }

    #[test]
    fn presence_reaches_each_socket_sharing_a_chat_or_a_friendship_once() {
        let hub = Hub::default();
        let all = register(&hub, 2, "a", Scope::AllChats, &[(1, 0), (2, 0), (3, 0)]);
        let chat_socket = register(&hub, 3, "b", Scope::Chat(ChatId(2)), &[(2, 0)]);
        let friend = register(&hub, 4, "c", Scope::AllChats, &[]);
        let stranger = register(&hub, 5, "d", Scope::AllChats, &[(9, 0)]);
        let own = register(&hub, 7, "e", Scope::AllChats, &[(1, 0)]);
        hub.handle(&message(
            "user.7",
            serde_json::json!({"type": "presence", "user_id": 7, "online": true,
                "last_seen_at": null, "chats": [1, 2, 3], "friends": [4]}),
        ));
        let event = |reg: &Registration| -> Vec<serde_json::Value> {
            reg.outbound
                .take_all()
                .iter()
                .map(|f| {
                    serde_json::from_str(frames::text_payload(f).unwrap_or_default())
                        .unwrap_or_default()
                })
                .collect()
        };
        let seen = event(&all);
        assert_eq!(seen.len(), 1, "once, however many chats are shared");
        assert_eq!(
            (seen[0]["user_id"].as_i64(), seen[0]["online"].as_bool()),
            (Some(7), Some(true))
        );
        assert!(seen[0].get("chats").is_none() && seen[0].get("chat_id").is_none());
        assert_eq!(
            event(&chat_socket)[0]["chat_id"],
            2,
            "chat sockets get their chat"
        );
        assert_eq!(event(&friend).len(), 1);
        assert!(event(&stranger).is_empty());
        assert!(event(&own).is_empty(), "not told about oneself");
    }

    #[test]
    fn revalidation_replaces_the_followed_set_and_keeps_changes_made_meanwhile() {
        let hub = Hub::default();
        let reg = register(&hub, 1, "s", Scope::AllChats, &[(1, 0), (2, 0), (3, 0)]);
        hub.begin_revalidation(reg.id);
        // While memberships are re-read: the user leaves 3 and joins 4.
        hub.handle(&message(
            "chat.3",
            serde_json::json!({"type": "chat.member_left", "user_id": 1}),
        ));
        hub.handle(&message(
            "chat.4",
            serde_json::json!({"type": "chat.member_joined", "user_id": 1}),
        ));
        // The read saw 2 and 3 (before the leave), not 1 (left earlier), nor 4 (joined after).
        let read = [(2, 0), (3, 0)].map(|(chat, seq)| ChatPosition {
            chat_id: ChatId(chat),
            last_seq: chat_domain::Seq(seq),
        });
        hub.finish_revalidation(reg.id, Some(&read));
        assert_eq!(hub.followed(reg.id), [ChatId(2), ChatId(4)]);
        // A failed read changes nothing.
        hub.begin_revalidation(reg.id);
        hub.finish_revalidation(reg.id, None);
        assert_eq!(hub.followed(reg.id), [ChatId(2), ChatId(4)]);
    }

    #[test]
    fn revoking_a_session_closes_its_sockets_only() {
        let hub = Hub::default();
        let mine = register(&hub, 1, "s1", Scope::AllChats, &[]);
        let other = register(&hub, 1, "s2", Scope::AllChats, &[]);
        hub.handle(&message(
            "user.1",
            serde_json::json!({"type": "session.revoked", "user_id": 1, "session_id": "s1"}),
        ));
        assert_eq!(reason(&mine), Some(Closing::SessionRevoked));
        assert_eq!(reason(&other), None);
        hub.unregister(mine.id);
        assert_eq!(hub.connections(), 1);
    }

    #[test]
    fn a_revoked_session_gets_nothing_queued_or_published_later() {
        let hub = Hub::default();
        let reg = register(&hub, 1, "s1", Scope::Chat(ChatId(5)), &[(5, 0)]);
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

    /// Remembers what the hub asks the bus to follow.
    struct Recording {
        changes: Mutex<Vec<(bool, Vec<String>)>>,
        local: broadcast::Sender<Arc<BusMessage>>,
    }

    impl Default for Recording {
        fn default() -> Self {
            Recording {
                changes: Mutex::default(),
                local: broadcast::channel(1).0,
            }
        }
    }

    #[async_trait::async_trait]
    impl EventBus for Recording {
        async fn publish(&self, _topic: &str, _payload: String) {}
        fn subscribe(&self) -> broadcast::Receiver<Arc<BusMessage>> {
            self.local.subscribe()
        }
        fn backend(&self) -> &'static str {
            "recording"
        }
        fn follow(&self, topics: Vec<String>) {
            self.changes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((true, topics));
        }
        fn unfollow(&self, topics: Vec<String>) {
            self.changes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((false, topics));
        }
    }

    impl Recording {
        fn take(&self) -> Vec<(bool, Vec<String>)> {
            std::mem::take(&mut *self.changes.lock().unwrap_or_else(|p| p.into_inner()))
        }
    }

    #[test]
    fn the_instance_follows_a_topic_from_its_first_local_follower_to_its_last() {
        let bus = Arc::new(Recording::default());
        let hub = Hub {
            bus: Some(bus.clone()),
            ..Hub::default()
        };
        let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let first = register(&hub, 1, "a", Scope::AllChats, &[(5, 0), (6, 0)]);
        assert_eq!(
            bus.take(),
            [(true, owned(&["user.1", "chat.5", "chat.6"]))],
            "one request for everything the first socket brings"
        );
        let second = register(&hub, 2, "b", Scope::Chat(ChatId(5)), &[(5, 0)]);
        assert_eq!(
            bus.take(),
            [(true, owned(&["user.2"]))],
            "chat.5 is followed already"
        );
        // Someone on another instance adds user 2 to chat 7: their /ws socket is not
        // one (it is a chat socket), so nothing new is followed; user 1's is.
        hub.handle(&message(
            "user.1",
            serde_json::json!({"type": "chat.member_joined", "chat_id": 7, "user_id": 1,
                "username": "u1", "role": "member", "added_by": 3, "last_seq": 0}),
        ));
        assert_eq!(bus.take(), [(true, owned(&["chat.7"]))]);
        assert_eq!(hub.followed(first.id), [ChatId(5), ChatId(6), ChatId(7)]);
        hub.unregister(first.id);
        let mut left = bus.take();
        for (_, topics) in &mut left {
            topics.sort();
        }
        assert_eq!(left, [(false, owned(&["chat.6", "chat.7", "user.1"]))]);
        hub.unregister(second.id);
        let mut left = bus.take();
        for (_, topics) in &mut left {
            topics.sort();
        }
        assert_eq!(left, [(false, owned(&["chat.5", "user.2"]))]);
    }

    #[test]
    fn presence_on_its_broadcast_topic_reaches_chat_partners() {
        let hub = Hub::default();
        let watcher = register(&hub, 2, "s", Scope::AllChats, &[(3, 0)]);
        watcher.outbound.release();
        hub.handle(&message(
            "presence.1",
            serde_json::json!({"type": "presence", "user_id": 1, "online": true,
                "last_seen_at": null, "chats": [3], "friends": []}),
        ));
        let frames = watcher.outbound.take_all();
        assert_eq!(frames.len(), 1);
    }

    #[test]
    fn an_ended_membership_on_the_members_topic_stops_the_following() {
        let hub = Hub::default();
        let all = register(&hub, 1, "s", Scope::AllChats, &[(7, 0), (8, 0)]);
        hub.handle(&message(
            "user.1",
            serde_json::json!({"type": "chat.member_left", "chat_id": 7, "user_id": 1,
                "reason": "removed", "removed_by": 2}),
        ));
        hub.handle(&message(
            "user.1",
            serde_json::json!({"type": "chat.deleted", "chat_id": 8, "deleted_by": 2}),
        ));
        assert!(hub.followed(all.id).is_empty());
    }

    #[test]
    fn a_join_on_the_chat_topic_skips_only_the_joiners_all_chats_sockets() {
        let hub = Hub::default();
        let all = register(&hub, 1, "a", Scope::AllChats, &[(7, 0)]);
        let one = register(&hub, 1, "b", Scope::Chat(ChatId(7)), &[(7, 0)]);
        let other = register(&hub, 2, "c", Scope::AllChats, &[(7, 0)]);
        for reg in [&all, &one, &other] {
            reg.outbound.release();
        }
        hub.handle(&message(
            "chat.7",
            serde_json::json!({"type": "chat.member_joined", "chat_id": 7, "user_id": 1,
                "last_seq": 0}),
        ));
        let counts: Vec<usize> = [&all, &one, &other]
            .iter()
            .map(|reg| reg.outbound.take_all().len())
            .collect();
        assert_eq!(counts, [0, 1, 1]);
    }
}
