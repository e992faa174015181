//! One task per socket: reads frames and runs their actions, writes queued events,
//! pings, and closes with a code when it must.

use chat_domain::ChatId;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::ws::ProtocolError;
use chat_services::auth::Principal;
use chat_services::messages::{self, HistoryQuery, SendMessageInput};
use chat_services::{AppContext, ServiceError};
use serde_json::{Value, json};

use actix_web::rt::net::TcpStream;
use actix_web::web::BytesMut;

use crate::close::Closing;
use crate::frames::{self, Inbound, Incoming, Source};
use crate::hub::{Hub, Registration, Scope};
use crate::outbox::{Drain, Refused};
use crate::protocol::{
    self, ClientFrame, DEFAULT_RETRIEVE, FrameError, MAX_FRAME_BYTES, MAX_RETRIEVE,
};

/// How often an idle socket is pinged.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// A socket silent (no frame, no pong) this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// A socket whose queued frames wait this long without the connection taking any is
/// closed as lagging.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Inbound frames per second a socket may send on average (default of
/// `CHAT_WS_FRAME_RATE`) …
pub const FRAMES_PER_SECOND: f64 = 30.0;
/// … and at once. Past this the server stops reading the socket until the budget
/// refills: the client is slowed down (TCP backpressure), never dropped.
pub const FRAME_BURST: f64 = 60.0;
/// On a stop, how long a socket's current action may still take to be answered.
pub const DRAIN_ACTION_TIMEOUT: Duration = Duration::from_secs(5);
/// On a stop, how many frames already received are answered (refused) before closing.
const DRAIN_BUFFERED_FRAMES: usize = 256;
/// Sends a socket may have handed to the writer and not yet had acknowledged. Its next
/// frames are read meanwhile (a send's commit no longer bounds a socket's rate); past
/// this the socket is not read until the oldest is answered.
pub const MAX_SENDS_IN_FLIGHT: usize = 32;
/// Typing notices per socket are forwarded at most this often.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(1);

/// Everything a socket task needs.
pub struct Connection {
    /// Services (shared: a socket must not copy the context).
    pub ctx: Arc<AppContext>,
    /// The hub it is registered with.
    pub hub: Arc<Hub>,
    /// Who is connected.
    pub principal: Principal,
    /// What it follows.
    pub scope: Scope,
    /// Its queue and close signal.
    pub registration: Registration,
    /// Messages to push on connect (`?history=N`).
    pub history: Option<i64>,
    /// The inbound frame budget (`None`: unlimited).
    pub frame_budget: Option<FrameBudget>,
    /// What the last fully checked send established (boxed: idle sockets, most of
    /// them, carry only the pointer).
    pub(crate) grant: RefCell<Option<Box<SendGrant>>>,
}

/// How long a socket's sends to one chat skip the access read after one passed it
/// (while the socket follows the chat): a bound on trusting the socket's own view.
pub const SEND_GRANT_TTL: Duration = Duration::from_secs(30);

/// A send to `chat` passed the full access check at `at`, finding `sender`: the
/// socket's next sends there skip that read (a cache round trip each) while the socket
/// still follows the chat — a membership that ends stops the following first.
pub(crate) struct SendGrant {
    chat: ChatId,
    sender: Option<String>,
    at: Instant,
}

/// How fast a socket's frames are read: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameBudget {
    /// Frames per second on average.
    pub per_second: f64,
    /// Frames at once.
    pub burst: f64,
}

impl Default for FrameBudget {
    fn default() -> Self {
        FrameBudget {
            per_second: FRAMES_PER_SECOND,
            burst: FRAME_BURST,
        }
    }
}

struct Flood {
    budget: Option<FrameBudget>,
    tokens: f64,
    at: Instant,
}

impl Flood {
    fn new(budget: Option<FrameBudget>) -> Self {
        Flood {
            budget,
            tokens: budget.map_or(0.0, |b| b.burst),
            at: Instant::now(),
        }
    }

    fn refill(&mut self, budget: FrameBudget) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * budget.per_second)
            .min(budget.burst);
        self.at = now;
    }

    /// How long to leave the socket unread before its next frame is within budget.
    fn delay(&mut self) -> Option<Duration> {
        let budget = self.budget?;
        self.refill(budget);
        (self.tokens < 1.0)
            .then(|| Duration::from_secs_f64((1.0 - self.tokens) / budget.per_second))
    }

    /// A frame was read.
    fn take(&mut self) {
        if let Some(budget) = self.budget {
            self.refill(budget);
            self.tokens -= 1.0;
        }
    }
}

impl Connection {
    fn socket_chat(&self) -> Option<ChatId> {
        match self.scope {
            Scope::Chat(id) => Some(id),
            Scope::AllChats => None,
        }
    }

    /// Runs the socket on its connection until either side closes it (`read`: bytes
    /// already read behind the handshake), announcing presence around it (in the
    /// background: a user in many chats must not wait for the announcements).
    pub async fn run(self, stream: Rc<TcpStream>, read: BytesMut) {
        let ctx = self.ctx.clone();
        let user_id = self.principal.user_id;
        // A detached task (its memory is freed when it ends) that reports whether the
        // connection was counted, so that only a counted one is uncounted.
        let (counted_tx, counted) = tokio::sync::oneshot::channel();
        tokio::spawn({
            let ctx = ctx.clone();
            async move {
                let result = chat_services::presence::connected(&ctx, user_id).await;
                if let Err(err) = &result {
                    tracing::warn!(error = %err, "cannot record presence");
                }
                let _ = counted_tx.send(result.is_ok());
            }
        });
        ctx.metrics.socket_opened();
        let drain = Drain::observed(self.registration.outbound.clone(), ctx.metrics.clone());
        // The socket's writer is a task of its own on this thread: a delivered event wakes
        // only it (polling the reader's many branches for every event cost CPU per
        // delivery), and frames leave whatever the reader is waiting for.
        let mut writer = actix_web::rt::spawn(crate::upgrade::write_frames(stream.clone(), drain));
        let code = async {
            Box::pin(self.revalidate()).await;
            self.serve(Inbound::new(&*stream, read, MAX_FRAME_BYTES))
                .await
        }
        .await;
        ctx.metrics.socket_closed(code);
        if let Ok(true) = counted.await
            // Boxed: inline, this rarely reached call would size every socket's future.
            && let Err(err) = Box::pin(chat_services::presence::disconnected(&ctx, user_id)).await
        {
            tracing::warn!(error = %err, "cannot record presence");
        }
        // The session is over; what it queued last (the close frame, behind the rest of a
        // write already begun) still gets a moment to leave.
        match tokio::time::timeout(crate::upgrade::CLOSE_FLUSH, &mut writer).await {
            Ok(Ok(Err(err))) => tracing::debug!(error = %err, "websocket write failed"),
            Ok(_) => {}
            Err(_) => writer.abort(),
        }
    }

    /// Gives up a registered socket that will not be served (its handshake's answer could
    /// not be written).
    pub fn abandon(self) {
        self.hub.unregister(self.registration.id);
    }

    /// Checks again what the handshake checked before registering the socket: a logout,
    /// permission change or removal that passed the hub in between (or was lost in a bus
    /// lag) would otherwise be missed. Fails closed: a socket whose access cannot be
    /// re-read is closed as lagging (reconnect and recover) rather than kept on trust.
    async fn revalidate(&self) {
        // Events may have been missed: the next send is checked in full.
        self.grant.borrow_mut().take();
        match chat_services::auth::current_principal(&self.ctx, &self.principal).await {
            Ok(None) => return self.shut(Closing::SessionRevoked),
            Ok(Some(now)) if now.is_admin != self.principal.is_admin => {
                return self.shut(Closing::Reauthenticate);
            }
            Ok(Some(_)) => {}
            Err(err) => {
                tracing::warn!(error = %err, "cannot re-check the session; closing the socket");
                return self.shut(Closing::Lagging);
            }
        }
        match self.scope {
            Scope::Chat(chat) => {
                match chat_services::chats::authorize_socket(&self.ctx, &self.principal, chat).await
                {
                    Ok(_) => {}
                    Err(ServiceError::Forbidden { .. } | ServiceError::NotFound(_)) => {
                        self.shut(Closing::RemovedFromChat);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot re-check membership; closing the socket");
                        self.shut(Closing::Lagging);
                    }
                }
            }
            Scope::AllChats => {
                // What the socket follows becomes what is read now, with the joins and
                // leaves that pass the hub during the read applied on top.
                let id = self.registration.id;
                self.hub.begin_revalidation(id);
                let read =
                    chat_services::chats::my_chat_positions(&self.ctx, self.principal.user_id)
                        .await;
                self.hub.finish_revalidation(id, read.as_deref().ok());
                if let Err(err) = &read {
                    tracing::warn!(error = %err, "cannot re-read memberships; closing the socket");
                    self.shut(Closing::Lagging);
                }
            }
        }
    }

    /// Closes because access is gone: nothing queued or published later reaches it.
    fn shut(&self, reason: Closing) {
        self.registration.outbound.seal(true);
        self.registration.close.close(reason);
    }

    /// Queues a reply; a client that let its queue fill up is lagging.
    fn reply(&self, text: &str) -> Result<(), Closing> {
        match self.registration.outbound.push(frames::text(text)) {
            Ok(()) => Ok(()),
            Err(Refused::Full) => Err(Closing::Lagging),
            Err(Refused::Closed) => Err(Closing::GoingAway),
        }
    }

    /// Serves the socket; the close code it ended with (1000: the client closed).
    async fn serve<S: Source>(&self, mut inbound: Inbound<S>) -> u16 {
        let close = self.registration.close.clone();
        let outbox = self.registration.outbound.clone();
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let revalidate = self.registration.revalidate.clone();
        let mut last_heard = Instant::now();
        let mut flood = Flood::new(self.frame_budget);
        let mut last_typing: Option<Instant> = None;
        // Answers still to come, in the order their frames arrived (sends waiting for
        // their commit, and what was answered while they wait).
        let mut pending: Pending<'_> = VecDeque::new();
        let mut reason = None;
        // Ends the socket however this function ends (also by a panic): unregistered, and
        // the connection told to finish with a close frame.
        let mut guard = Ending {
            hub: &self.hub,
            id: self.registration.id,
            outbox: &outbox,
            frame: Some(frames::close(1011, "internal error")),
            discard: true,
        };
        if let (Some(n), Some(chat)) = (self.history, self.socket_chat())
            && n > 0
            && close.is_open()
        {
            let page = Box::pin(self.retrieve(None, chat, n, None)).await;
            reason = match outbox.push_front(frames::text(&page)) {
                Ok(()) => None,
                Err(Refused::Full) => Some(Closing::Lagging),
                Err(Refused::Closed) => Some(Closing::GoingAway),
            };
        }
        // Events that queued since registration leave now, after the re-check and the
        // history page.
        outbox.release();
        // The socket's frames are written by the connection itself (see `outbox`); this
        // loop reads the client, answers, pings, and watches for a reason to close.
        while reason.is_none() {
            // Over its frame budget the socket is not read until the budget refills: the
            // client's writes back up in TCP, and nothing it sent is dropped.
            let throttle = flood.delay();
            tokio::select! {
                biased;
                why = close.closed() => reason = Some(why),
                () = revalidate.notified() => {
                    let _turn = self.hub.revalidation_turn().await;
                    Box::pin(self.revalidate()).await;
                }
                () = tokio::time::sleep(throttle.unwrap_or_default()), if throttle.is_some() => {}
                answer = oldest(&mut pending), if !pending.is_empty() => {
                    pending.pop_front();
                    reason = self.reply(&answer).err();
                    last_heard = Instant::now();
                }
                incoming = inbound.recv(), if throttle.is_none() && pending.len() < MAX_SENDS_IN_FLIGHT => {
                    last_heard = Instant::now();
                    if matches!(incoming, Some(Ok(Incoming::Text(_) | Incoming::Binary | Incoming::Ping(_)))) {
                        flood.take();
                    }
                    match incoming {
                        Some(Ok(Incoming::Text(text))) => {
                            // An action may wait (a send over the budget): a close decided
                            // meanwhile (revoked, removed) wins over it.
                            let acting = Instant::now();
                            let mut action = Box::pin(self.act(&text, &mut last_typing, &mut pending));
                            tokio::select! {
                                biased;
                                why = close.closed() => {
                                    // A stop lets the action finish and answers it (a send
                                    // already queued for the writer is committed: its ack
                                    // must reach the client); any other close cancels it.
                                    if why == Closing::GoingAway {
                                        let _ = tokio::time::timeout(DRAIN_ACTION_TIMEOUT, &mut action).await;
                                    }
                                    reason = Some(why);
                                }
                                outcome = &mut action => reason = outcome.err(),
                            }
                            drop(action);
                            self.ctx.metrics.ws_action.observe(acting.elapsed().as_secs_f64());
                            // The client was active; time spent answering is not silence.
                            last_heard = Instant::now();
                        }
                        Some(Ok(Incoming::Binary)) => {
                            let err = FrameError::new("bad_frame", "binary frames are not supported; send JSON text");
                            reason = self.reply(&protocol::error_event(None, &err)).err();
                        }
                        Some(Ok(Incoming::Ping(bytes))) => {
                            reason = outbox.push(frames::pong(&bytes)).err().map(|_| Closing::Lagging);
                        }
                        Some(Ok(Incoming::Pong)) => {}
                        Some(Ok(Incoming::Close)) | None => break,
                        Some(Err(ProtocolError::Overflow)) => reason = Some(Closing::TooLarge),
                        Some(Err(ProtocolError::Io(err))) if err.kind() == std::io::ErrorKind::InvalidData => {
                            reason = Some(Closing::InvalidText);
                        }
                        Some(Err(err @ ProtocolError::Io(_))) => {
                            // The connection failed: nobody to tell.
                            tracing::debug!(error = %err, "websocket connection error");
                            break;
                        }
                        Some(Err(err)) => {
                            tracing::debug!(error = %err, "websocket protocol error");
                            reason = Some(Closing::ProtocolError);
                        }
                    }
                },
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > IDLE_TIMEOUT {
                        reason = Some(Closing::Idle);
                    } else if outbox.stalled_for().is_some_and(|d| d > WRITE_TIMEOUT) {
                        reason = Some(Closing::Lagging);
                    } else {
                        reason = outbox.push(frames::ping()).err().map(|_| Closing::Lagging);
                    }
                },
            }
        }
        if reason == Some(Closing::GoingAway) {
            // Boxed: inlined, these rarely used states would size every socket's task.
            // Sends already handed to the writer are committed: their acks go out first.
            let _ = tokio::time::timeout(
                DRAIN_ACTION_TIMEOUT,
                Box::pin(self.answer_all(&mut pending)),
            )
            .await;
            Box::pin(self.refuse_buffered(&mut inbound, &mut last_typing)).await;
        }
        drop(pending);
        let (code, text) = match reason {
            Some(why) => (why.code(), why.reason()),
            None => (1000, ""),
        };
        guard.frame = Some(frames::close(code, text));
        // A client that does not read gets the close frame instead of its backlog.
        guard.discard = reason == Some(Closing::Lagging);
        code
    }

    /// Runs one text frame's action. A send is checked and handed to the writer here (so
    /// a socket's sends take seqs in the order it sent them) and its acknowledgement
    /// waits in `pending` for the commit while the next frames are read. Any other action
    /// first lets every pending answer go out, then runs as it always did, so it sees its
    /// socket's earlier sends committed and answers stay in frame order.
    async fn act<'a>(
        &'a self,
        text: &str,
        last_typing: &mut Option<Instant>,
        pending: &mut Pending<'a>,
    ) -> Result<(), Closing> {
        let frame = match protocol::parse(text) {
            Ok(frame) if frame.action().is_ok_and(|a| a == "send_message") => frame,
            parsed => {
                self.answer_all(pending).await?;
                return match self.respond(parsed, last_typing).await {
                    Some(reply) => self.reply(&reply),
                    None => Ok(()),
                };
            }
        };
        let request_id = frame.request_id.clone();
        let answer: PendingAnswer<'a> = match self.begin_send(&frame).await {
            Ok((chat, send)) => Box::pin(async move {
                match send.outcome(&self.ctx).await {
                    Ok((message, created)) => send_ack(request_id, chat, &message, created),
                    Err(err) => protocol::error_event(request_id, &protocol::service_error(err)),
                }
            }),
            Err(err) => {
                let reply = protocol::error_event(request_id, &err);
                if pending.is_empty() {
                    return self.reply(&reply);
                }
                Box::pin(std::future::ready(reply))
            }
        };
        pending.push_back(answer);
        Ok(())
    }

    /// Checks a `send_message` frame and hands it to the writer.
    async fn begin_send(
        &self,
        frame: &ClientFrame,
    ) -> Result<(ChatId, messages::PendingSend), FrameError> {
        let (chat, input) = self.send_input(frame)?;
        // Over the message budget the send waits (the socket is not read meanwhile)
        // rather than being refused.
        let send = match self.granted(chat) {
            Some(sender) => {
                let (hub, id) = (&*self.hub, self.registration.id);
                let still_follows = move || hub.follows(id, chat);
                let member = messages::KnownMember {
                    sender,
                    still_follows: &still_follows,
                };
                messages::begin_send_paced_as_member(
                    &self.ctx,
                    &self.principal,
                    chat,
                    input,
                    member,
                )
                .await
            }
            None => messages::begin_send_paced(&self.ctx, &self.principal, chat, input).await,
        }
        .map_err(protocol::service_error)?;
        if send.checked_in_full() {
            *self.grant.borrow_mut() = Some(Box::new(SendGrant {
                chat,
                sender: send.sender().map(str::to_owned),
                at: Instant::now(),
            }));
        }
        Ok((chat, send))
    }

    /// The sender's username if a send to `chat` passed the full check within
    /// [`SEND_GRANT_TTL`] (whether the socket still follows the chat is asked after the
    /// send's wait for its budget).
    fn granted(&self, chat: ChatId) -> Option<Option<String>> {
        let grant = self.grant.borrow();
        let grant = grant.as_ref()?;
        (grant.chat == chat && grant.at.elapsed() < SEND_GRANT_TTL).then(|| grant.sender.clone())
    }

    fn send_input(&self, frame: &ClientFrame) -> Result<(ChatId, SendMessageInput), FrameError> {
        let chat = frame.chat(self.socket_chat())?;
        let attachments = frame.attachments.clone().unwrap_or_default();
        let content = match (&frame.message, attachments.is_empty()) {
            (Some(text), _) => text.clone(),
            // Files alone need no text.
            (None, false) => String::new(),
            (None, true) => return Err(FrameError::new("missing_field", "message is required")),
        };
        Ok((
            chat,
            SendMessageInput {
                content,
                client_id: frame.client_id.clone(),
                reply_to: frame.reply_to,
                attachments,
            },
        ))
    }

    /// Sends every pending answer, oldest first.
    async fn answer_all(&self, pending: &mut Pending<'_>) -> Result<(), Closing> {
        while let Some(answer) = pending.front_mut() {
            let answer = answer.await;
            pending.pop_front();
            self.reply(&answer)?;
        }
        Ok(())
    }

    /// On a stop: answers the frames the client has already sent (they are in the
    /// socket's buffers) before the close frame goes out, so each send is told plainly
    /// that it was not stored (`shutting_down`) rather than left without an answer.
    async fn refuse_buffered<S: Source>(
        &self,
        inbound: &mut Inbound<S>,
        last_typing: &mut Option<Instant>,
    ) {
        use futures_util::FutureExt;
        for _ in 0..DRAIN_BUFFERED_FRAMES {
            let Some(Some(Ok(Incoming::Text(text)))) = inbound.recv().now_or_never() else {
                return;
            };
            let reply = tokio::time::timeout(
                DRAIN_ACTION_TIMEOUT,
                Box::pin(self.on_text(&text, last_typing)),
            );
            if let Ok(Some(reply)) = reply.await
                && self.reply(&reply).is_err()
            {
                return;
            }
        }
    }

    async fn on_text(&self, text: &str, last_typing: &mut Option<Instant>) -> Option<String> {
        self.respond(protocol::parse(text), last_typing).await
    }

    /// The answer to a parsed frame (or to the reason it could not be parsed).
    async fn respond(
        &self,
        parsed: Result<ClientFrame, (Option<Value>, FrameError)>,
        last_typing: &mut Option<Instant>,
    ) -> Option<String> {
        let frame = match parsed {
            Ok(frame) => frame,
            Err((request_id, err)) => return Some(protocol::error_event(request_id, &err)),
        };
        let request_id = frame.request_id.clone();
        match self.dispatch(&frame, last_typing).await {
            Ok(reply) => reply,
            Err(err) => Some(protocol::error_event(request_id, &err)),
        }
    }

    async fn dispatch(
        &self,
        frame: &ClientFrame,
        last_typing: &mut Option<Instant>,
    ) -> Result<Option<String>, FrameError> {
        let ctx = &self.ctx;
        let principal = &self.principal;
        let request_id = frame.request_id.clone();
        match frame.action()? {
            "ping" => Ok(Some(
                json!({"type": "pong", "request_id": request_id}).to_string(),
            )),
            "send_message" => {
                let (chat, input) = self.send_input(frame)?;
                let (message, created) = messages::send_message_paced(ctx, principal, chat, input)
                    .await
                    .map_err(protocol::service_error)?;
                Ok(Some(send_ack(request_id, chat, &message, created)))
            }
            "retrieve_message" => {
                let chat = frame.chat(self.socket_chat())?;
                let number = frame.number.unwrap_or(DEFAULT_RETRIEVE);
                if !(1..=MAX_RETRIEVE).contains(&number) {
                    return Err(FrameError::new(
                        "validation_failed",
                        format!("number must be between 1 and {MAX_RETRIEVE}"),
                    ));
                }
                Ok(Some(
                    self.retrieve(request_id, chat, number, frame.before_seq)
                        .await,
                ))
            }
            "typing" => {
                let chat = frame.chat(self.socket_chat())?;
                if last_typing.is_some_and(|at| at.elapsed() < TYPING_INTERVAL) {
                    return Ok(None);
                }
                *last_typing = Some(Instant::now());
                chat_services::chats::typing(ctx, principal, chat)
                    .await
                    .map_err(protocol::service_error)?;
                Ok(None)
            }
            "mark_read" => {
                let chat = frame.chat(self.socket_chat())?;
                let seq = frame
                    .seq
                    .ok_or_else(|| FrameError::new("missing_field", "seq is required"))?;
                let marker = messages::mark_read(ctx, principal, chat, seq)
                    .await
                    .map_err(protocol::service_error)?;
                Ok(Some(ack(
                    request_id,
                    chat,
                    json!({"last_read_seq": marker.last_read_seq, "unread_count": marker.unread_count}),
                )))
            }
            "edit_message" => {
                let chat = frame.chat(self.socket_chat())?;
                let id = frame
                    .message_id
                    .ok_or_else(|| FrameError::new("missing_field", "message_id is required"))?;
                let text = frame
                    .message
                    .as_deref()
                    .ok_or_else(|| FrameError::new("missing_field", "message is required"))?;
                let edited = messages::edit_message(ctx, principal, chat, id, text)
                    .await
                    .map_err(protocol::service_error)?;
                Ok(Some(ack(
                    request_id,
                    chat,
                    json!({"message_id": edited.id, "seq": edited.seq}),
                )))
            }
            "delete_message" => {
                let chat = frame.chat(self.socket_chat())?;
                let id = frame
                    .message_id
                    .ok_or_else(|| FrameError::new("missing_field", "message_id is required"))?;
                messages::delete_message(ctx, principal, chat, id)
                    .await
                    .map_err(protocol::service_error)?;
                Ok(Some(ack(request_id, chat, json!({"message_id": id}))))
            }
            action @ ("add_reaction" | "remove_reaction") => {
                let chat = frame.chat(self.socket_chat())?;
                let id = frame
                    .message_id
                    .ok_or_else(|| FrameError::new("missing_field", "message_id is required"))?;
                let emoji = frame
                    .emoji
                    .as_deref()
                    .ok_or_else(|| FrameError::new("missing_field", "emoji is required"))?;
                let add = action == "add_reaction";
                let now =
                    chat_services::reactions::set_reaction(ctx, principal, (chat, id), emoji, add)
                        .await
                        .map_err(protocol::service_error)?;
                Ok(Some(ack(
                    request_id,
                    chat,
                    json!({"message_id": id, "reactions": now.reactions}),
                )))
            }
            action @ ("mute_chat" | "unmute_chat") => {
                let chat = frame.chat(self.socket_chat())?;
                let muted = action == "mute_chat";
                let state = chat_services::chats::set_muted(ctx, principal, chat, muted)
                    .await
                    .map_err(protocol::service_error)?;
                Ok(Some(ack(request_id, chat, json!({"muted": state.muted}))))
            }
            action @ ("block_user" | "unblock_user") => {
                let user = frame
                    .user_id
                    .ok_or_else(|| FrameError::new("missing_field", "user_id is required"))?;
                // This socket's own send grant goes at once (the bus tells the others).
                self.grant.borrow_mut().take();
                let state = if action == "block_user" {
                    chat_services::users::block_user(ctx, principal, user).await
                } else {
                    chat_services::users::unblock_user(ctx, principal, user).await
                }
                .map_err(protocol::service_error)?;
                Ok(Some(
                    json!({"type": "ack", "request_id": request_id,
                        "user_id": state.user_id, "blocked": state.blocked})
                    .to_string(),
                ))
            }
            "search_messages" => {
                let query = chat_services::search::SearchQuery {
                    q: frame.q.clone(),
                    limit: frame.limit,
                    cursor: frame.cursor.clone(),
                };
                // In one chat (the socket's, or `chat_id`), or in every chat of mine.
                let page = match frame.chat_id.or(self.socket_chat()) {
                    Some(chat) => {
                        frame.chat(self.socket_chat())?;
                        chat_services::search::search_chat(ctx, principal, chat, query).await
                    }
                    None => chat_services::search::search_my_chats(ctx, principal, query).await,
                }
                .map_err(protocol::service_error)?;
                let items: Vec<Value> = page.items.iter().map(protocol::message_json).collect();
                Ok(Some(
                    json!({"type": "search_results", "request_id": request_id,
                        "items": items, "next_cursor": page.next_cursor})
                    .to_string(),
                ))
            }
            other => Err(FrameError::new(
                "unknown_action",
                format!("unknown action '{other}'"),
            )),
        }
    }

    async fn retrieve(
        &self,
        request_id: Option<Value>,
        chat: ChatId,
        number: i64,
        before_seq: Option<i64>,
    ) -> String {
        let query = HistoryQuery {
            before_seq,
            limit: Some(number),
            ..HistoryQuery::default()
        };
        match messages::history(&self.ctx, &self.principal, chat, query).await {
            Ok(page) => {
                protocol::messages_event(request_id, chat, &page.items, page.next_cursor.is_some())
            }
            Err(err) => protocol::error_event(request_id, &protocol::service_error(err)),
        }
    }
}

/// Unregisters a socket and queues its close frame when dropped.
struct Ending<'a> {
    hub: &'a Hub,
    id: crate::hub::ConnId,
    outbox: &'a crate::outbox::Outbox,
    frame: Option<actix_web::web::Bytes>,
    discard: bool,
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
        if let Some(frame) = self.frame.take() {
            self.outbox.close(frame, self.discard);
        }
    }
}

/// An answer still to come (a send's ack or error), in frame order.
type PendingAnswer<'a> = Pin<Box<dyn Future<Output = String> + 'a>>;
/// A socket's answers still to come.
type Pending<'a> = VecDeque<PendingAnswer<'a>>;

/// Waits for the oldest pending answer (never called on an empty queue).
async fn oldest(pending: &mut Pending<'_>) -> String {
    match pending.front_mut() {
        Some(answer) => answer.await,
        None => std::future::pending().await,
    }
}

/// A send's acknowledgement.
fn send_ack(
    request_id: Option<Value>,
    chat: ChatId,
    message: &chat_services::chats::MessageView,
    created: bool,
) -> String {
    ack(
        request_id,
        chat,
        json!({"message_id": message.id, "seq": message.seq, "duplicate": !created}),
    )
}

/// `{"type": "ack", request_id, chat_id, …}`.
fn ack(request_id: Option<Value>, chat_id: ChatId, extra: Value) -> String {
    let mut reply = json!({"type": "ack", "request_id": request_id, "chat_id": chat_id});
    if let (Some(target), Value::Object(fields)) = (reply.as_object_mut(), extra) {
        target.extend(fields);
    }
    reply.to_string()
}
