//! Scenarios: set-up through the public API, then real sockets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::accounting::Receiver;
use crate::event::Event;
use crate::http;

/// WebSocket read buffer of each load-generator socket: tungstenite's 128 KiB default
/// would cost more memory than the server under test.
pub const READ_BUFFER: usize = 4 * 1024;
/// After the senders stop, receivers wait this long past the last frame they got
/// (at most [`DRAIN_MAX`]) before the run is accounted: a backlog is slow, not lost.
pub const DRAIN_QUIET: Duration = Duration::from_secs(8);
/// Longest drain.
pub const DRAIN_MAX: Duration = Duration::from_secs(30);
/// The password of every user the load generator registers.
pub const PASSWORD: &str = "load generator password";

/// How each sending socket sends (receiving is the same for every scenario).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum SendPlan {
    /// No sends: sockets only receive (`idle`).
    Idle,
    /// `rate` messages per second per sender, phases spread so senders do not fire
    /// together (`groups`).
    Steady {
        /// Messages per second per sender.
        rate: f64,
    },
    /// `size` messages back to back (one flush) every `every`, all senders at the same
    /// instant (`burst`).
    Burst {
        /// Messages per burst per sender.
        size: u32,
        /// Time between bursts.
        every: Duration,
    },
}

impl SendPlan {
    /// Time between ticks and messages per tick (`None`: never sends).
    fn schedule(self) -> Option<(Duration, u32)> {
        match self {
            SendPlan::Idle => None,
            SendPlan::Steady { rate } if rate > 0.0 => {
                Some((Duration::from_secs_f64(1.0 / rate), 1))
            }
            SendPlan::Steady { .. } => None,
            SendPlan::Burst { size, every } if size > 0 && !every.is_zero() => Some((every, size)),
            SendPlan::Burst { .. } => None,
        }
    }
}

/// What to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The server (or bare baseline) address.
    pub server: SocketAddr,
    /// Sockets to open.
    pub connections: usize,
    /// Members per group (each socket is one member).
    pub group_size: usize,
    /// How senders send.
    pub plan: SendPlan,
    /// Members of each group that send (the first ones); `None`: all of them.
    pub senders: Option<usize>,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Local addresses to connect from (spreads sockets over more source ports).
    pub sources: Vec<IpAddr>,
    /// Target is `chat-bare-broadcast`: no accounts, no auth.
    pub baseline: bool,
    /// Padding so each message has about this many bytes.
    pub message_bytes: usize,
    /// Unique per run: prefixes generated usernames.
    pub run_id: String,
    /// Test hook: receivers ignore every Nth message (the accounting must see the loss).
    pub drop_every: Option<u64>,
    /// Concurrent set-up requests.
    pub setup_concurrency: usize,
    /// How long receivers wait after their last frame before the run is accounted
    /// (see [`DRAIN_QUIET`]).
    pub drain_quiet: Duration,
    /// Pairs of friends, each socket on `/ws/direct/{the other's id}` (the seeds' way
    /// into a one-to-one chat) instead of groups on `/ws/chats/{id}`; `group_size` is 2.
    #[serde(default)]
    pub direct: bool,
    /// More instances of the same deployment: sockets connect to `server` and these, as
    /// `spread` says (set-up always goes to `server`).
    #[serde(default)]
    pub instances: Vec<SocketAddr>,
    /// How sockets are spread over `server` and `instances`.
    #[serde(default)]
    pub spread: Spread,
}

/// How sockets are spread over several instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// All members of a chat on one instance (as a load balancer routing by chat would):
    /// each instance needs only its chats' traffic.
    #[default]
    Chat,
    /// Members in turn: every instance has members of every chat.
    Member,
}

impl Config {
    /// The instance socket `index` of `member` connects to.
    pub fn instance_for(&self, member: &Member, index: usize) -> SocketAddr {
        if self.instances.is_empty() {
            return self.server;
        }
        let all = self.instances.len() + 1;
        let slot = match self.spread {
            Spread::Chat => usize::try_from(member.chat.unsigned_abs()).unwrap_or(0) % all,
            Spread::Member => index % all,
        };
        match slot {
            0 => self.server,
            n => self.instances[n - 1],
        }
    }
}

/// One member: its socket's chat, credentials, and whether it sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    /// Its chat (one socket on `/ws/chats/{chat}`).
    pub chat: i64,
    /// Access token (`None` against the bare baseline).
    pub token: Option<String>,
    /// Sends by the [`SendPlan`] (otherwise only receives).
    pub sends: bool,
    /// The other user of a direct chat: the socket opens `/ws/direct/{peer}`.
    #[serde(default)]
    pub peer: Option<i64>,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Sockets connected.
    pub connections: usize,
    /// Messages sent in the measured window.
    pub sent: u64,
    /// Sends acknowledged (stored) in the window.
    pub acked: u64,
    /// Sends never acknowledged over the whole run (still queued in the server when the
    /// run ended: slow, not lost — they are not expected at receivers).
    pub unacked: u64,
    /// Messages received in the window, over all sockets.
    pub delivered: u64,
    /// Deliveries over the whole run.
    pub delivered_total: u64,
    /// Deliveries the whole run should have produced.
    pub expected_total: u64,
    /// Messages some member never received.
    pub lost: u64,
    /// Messages received out of seq order.
    pub out_of_order: u64,
    /// Deliveries not yet received when receivers stopped at the run's drain limit
    /// ([`DRAIN_MAX`] after the senders stopped): a backlog the run did not wait for,
    /// not a loss. 0 unless the server was saturated.
    #[serde(default)]
    pub cut_off: u64,
    /// Failed connects, sends, error events.
    pub errors: u64,
    /// Sockets the server closed during the run (e.g. `4000 lagging`).
    pub closed_by_server: u64,
    /// Send → receive latency, microseconds (measured window only).
    #[serde(with = "crate::histogram::counts")]
    pub latency: Histogram<u64>,
    /// The measured window.
    pub window: Duration,
}

impl Outcome {
    /// Adds another shard's outcome (same scenario, same window, disjoint chats).
    pub fn merge(&mut self, other: &Outcome) -> anyhow::Result<()> {
        self.connections += other.connections;
        self.sent += other.sent;
        self.acked += other.acked;
        self.unacked += other.unacked;
        self.delivered += other.delivered;
        self.delivered_total += other.delivered_total;
        self.expected_total += other.expected_total;
        self.lost += other.lost;
        self.out_of_order += other.out_of_order;
        self.cut_off += other.cut_off;
        self.errors += other.errors;
        self.closed_by_server += other.closed_by_server;
        self.latency.add(&other.latency)?;
        self.window = self.window.max(other.window);
        Ok(())
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    delivered_total: AtomicU64,
    errors: AtomicU64,
    closed_by_server: AtomicU64,
}

/// Creates the users, groups and memberships (nothing against the bare baseline) and
/// returns one [`Member`] per socket, grouped by chat in order.
pub async fn setup(config: &Config) -> anyhow::Result<Vec<Member>> {
    let group_size = config.group_size.max(1);
    let groups = config.connections.div_ceil(group_size);
    let sends = |i: usize| config.senders.is_none_or(|s| i % group_size < s);
    if config.baseline {
        // The bare server keeps its rooms (and their seqs) between runs: use chat ids no
        // earlier run used.
        let base = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
            % 1_000_000_000) as i64
            * 100_000;
        return Ok((0..config.connections)
            .map(|i| Member {
                chat: base + (i / group_size) as i64,
                token: None,
                sends: sends(i),
                peer: None,
            })
            .collect());
    }
    let addr = config.server;
    if config.direct {
        return setup_direct(config).await;
    }
    let tokens = register(
        addr,
        &config.run_id,
        config.connections,
        config.setup_concurrency,
    )
    .await?;
    let mut members = Vec::with_capacity(config.connections);
    for g in 0..groups {
        let first = g * group_size;
        let last = ((g + 1) * group_size).min(config.connections);
        let owner = &tokens[first];
        let chat = create_group(addr, owner, &format!("load {} {g}", config.run_id)).await?;
        join_all(
            addr,
            chat,
            &tokens[first + 1..last],
            config.setup_concurrency,
        )
        .await?;
        for (i, token) in tokens.iter().enumerate().take(last).skip(first) {
            members.push(Member {
                chat,
                token: Some(token.clone()),
                sends: sends(i),
                peer: None,
            });
        }
    }
    Ok(members)
}

/// Pairs of users (2k, 2k+1) who become friends and open their direct chat; each
/// socket will connect to `/ws/direct/{the other}`.
async fn setup_direct(config: &Config) -> anyhow::Result<Vec<Member>> {
    anyhow::ensure!(
        config.connections.is_multiple_of(2),
        "direct pairs sockets: --connections must be even"
    );
    let addr = config.server;
    let users = register_users(
        addr,
        &config.run_id,
        config.connections,
        config.setup_concurrency,
    )
    .await?;
    let pairs = (0..config.connections / 2).map(|p| (2 * p, 2 * p + 1));
    let opened = futures_util::stream::iter(pairs)
        .map(|(a, b)| {
            let ((token_a, _), (token_b, id_b)) = (&users[a], &users[b]);
            async move {
                let request = http::ok(
                    addr,
                    "POST",
                    "/api/v1/friends/requests",
                    Some(token_a),
                    Some(&json!({"user_id": id_b})),
                )
                .await?;
                let request_id = request["id"]
                    .as_i64()
                    .ok_or_else(|| anyhow::anyhow!("no friend request id"))?;
                http::ok(
                    addr,
                    "POST",
                    &format!("/api/v1/friends/requests/{request_id}/accept"),
                    Some(token_b),
                    Some(&json!({})),
                )
                .await?;
                let chat = http::ok(
                    addr,
                    "POST",
                    "/api/v1/chats/direct",
                    Some(token_a),
                    Some(&json!({"user_id": id_b})),
                )
                .await?;
                anyhow::Ok((
                    a,
                    b,
                    chat["id"]
                        .as_i64()
                        .ok_or_else(|| anyhow::anyhow!("no chat id"))?,
                ))
            }
        })
        .buffer_unordered(config.setup_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut members: Vec<Option<Member>> = vec![None; config.connections];
    for pair in opened {
        let (a, b, chat) = pair?;
        for (me, other) in [(a, b), (b, a)] {
            members[me] = Some(Member {
                chat,
                token: Some(users[me].0.clone()),
                sends: true,
                peer: Some(users[other].1),
            });
        }
    }
    members
        .into_iter()
        .map(|m| m.ok_or_else(|| anyhow::anyhow!("a user was left without a pair")))
        .collect()
}

/// Registers `count` users named after `run_id` and returns their access tokens.
pub async fn register(
    addr: SocketAddr,
    run_id: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    Ok(register_users(addr, run_id, count, concurrency)
        .await?
        .into_iter()
        .map(|(token, _)| token)
        .collect())
}

/// Registers `count` users named after `run_id`: their access tokens and ids.
pub async fn register_users(
    addr: SocketAddr,
    run_id: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<(String, i64)>> {
    let sign_ups = futures_util::stream::iter(0..count)
        .map(|i| {
            let name = format!("lg{run_id}_{i}");
            async move {
                let body = json!({"username": name, "email": format!("{name}@load.test"), "password": PASSWORD});
                let answer = http::ok(addr, "POST", "/api/v1/auth/register", None, Some(&body)).await?;
                let token = answer["access_token"].as_str().unwrap_or_default().to_owned();
                let id = answer["user"]["id"].as_i64().ok_or_else(|| anyhow::anyhow!("sign-up answered without a user id"))?;
                anyhow::Ok((i, token, id))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut users = vec![(String::new(), 0); count];
    for result in sign_ups {
        let (i, token, id) = result?;
        users[i] = (token, id);
    }
    Ok(users)
}

/// Creates a public group owned by `owner` and returns its id.
pub async fn create_group(addr: SocketAddr, owner: &str, name: &str) -> anyhow::Result<i64> {
    let body = json!({"name": name, "visibility": "public"});
    http::ok(addr, "POST", "/api/v1/chats", Some(owner), Some(&body)).await?["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no chat id"))
}

/// Joins every `tokens` user to the public group `chat`.
pub async fn join_all(
    addr: SocketAddr,
    chat: i64,
    tokens: &[String],
    concurrency: usize,
) -> anyhow::Result<()> {
    let joins = futures_util::stream::iter(tokens.iter().cloned())
        .map(|token| async move {
            http::ok(
                addr,
                "POST",
                &format!("/api/v1/chats/{chat}/join"),
                Some(&token),
                Some(&json!({})),
            )
            .await
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    for join in joins {
        join?;
    }
    Ok(())
}

/// Opens one WebSocket on `/ws/chats/{chat}` (or `/ws/direct/{peer}`), from
/// `sources[index % len]` if any.
pub async fn connect(
    config: &Config,
    member: &Member,
    index: usize,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let server = config.instance_for(member, index);
    let stream = http::connect_from(server, &config.sources, index).await?;
    let url = match member.peer {
        Some(peer) if !config.baseline => format!("ws://{server}/ws/direct/{peer}"),
        _ => format!("ws://{server}/ws/chats/{}", member.chat),
    };
    let mut request = url.into_client_request()?;
    if let Some(token) = &member.token {
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse()?);
    }
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config)).await?;
    Ok(ws)
}

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Sets up, connects every socket, runs the senders and receivers, and accounts.
/// `on_connected` runs once every socket is open (memory is read there).
pub async fn run(config: Config, on_connected: impl FnOnce(usize)) -> anyhow::Result<Outcome> {
    let members = setup(&config).await?;
    run_members(config, members, async |n| {
        on_connected(n);
        Ok(())
    })
    .await
}

/// What every socket's task shares.
struct Shared {
    config: Config,
    counters: Counters,
    start: Instant,
    /// Measured window, microseconds since `start`.
    window: std::ops::Range<u64>,
    send_until: Instant,
    padding: String,
}

/// What one socket's task saw.
struct SocketResult {
    chat: i64,
    sent: u64,
    acked: u64,
    receiver: Receiver,
    latency: Histogram<u64>,
}

/// Connects one socket per member (set up already, e.g. by another process), waits for
/// `on_connected` (memory is read there; several processes synchronise there; its
/// error ends the run), then runs
/// the senders and receivers and accounts. Accounting is exact when every member of a
/// chat is in `members`.
pub async fn run_members(
    config: Config,
    members: Vec<Member>,
    on_connected: impl AsyncFnOnce(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Outcome> {
    let counters = Counters::default();
    let mut sockets = Vec::with_capacity(members.len());
    for (i, member) in members.iter().enumerate() {
        match connect(&config, member, i).await {
            Ok(ws) => sockets.push((member.chat, member.sends, ws)),
            Err(err) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if counters.errors.load(Ordering::Relaxed) <= 3 {
                    eprintln!("connect failed: {err}");
                }
            }
        }
    }
    on_connected(sockets.len()).await?;
    let mut members_per_chat: HashMap<i64, u64> = HashMap::new();
    for (chat, _, _) in &sockets {
        *members_per_chat.entry(*chat).or_default() += 1;
    }
    let start = Instant::now();
    let window_start = micros_since(start) + u64::try_from(config.warmup.as_micros()).unwrap_or(0);
    let window_end = window_start + u64::try_from(config.duration.as_micros()).unwrap_or(0);
    let shared = Arc::new(Shared {
        send_until: start + config.warmup + config.duration,
        padding: "x".repeat(config.message_bytes.saturating_sub(24)),
        config,
        counters,
        start,
        window: window_start..window_end,
    });
    let mut tasks = Vec::new();
    for (index, (chat, sends, ws)) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(socket_loop(
            shared.clone(),
            index,
            chat,
            sends,
            ws,
        )));
    }
    let mut latency = latency_histogram();
    // Expected at receivers: what the server stored (acknowledged); chats are fresh, so
    // their seqs run 1..=stored.
    let mut stored_per_chat: HashMap<i64, i64> = HashMap::new();
    let mut unacked = 0;
    let mut receivers = Vec::new();
    for task in tasks {
        let result = task.await?;
        *stored_per_chat.entry(result.chat).or_default() +=
            i64::try_from(result.acked).unwrap_or(i64::MAX);
        unacked += result.sent.saturating_sub(result.acked);
        latency.add(&result.latency)?;
        receivers.push(result.receiver);
    }
    let (mut lost, mut out_of_order, mut cut_off) = (0, 0, 0);
    for receiver in &receivers {
        let totals = receiver.totals(&stored_per_chat);
        lost += totals.lost;
        out_of_order += totals.out_of_order;
        cut_off += totals.cut_off;
    }
    let expected_total = stored_per_chat
        .iter()
        .map(|(chat, sent)| {
            u64::try_from(*sent).unwrap_or(0) * members_per_chat.get(chat).copied().unwrap_or(0)
        })
        .sum();
    let counters = &shared.counters;
    Ok(Outcome {
        connections: receivers.len(),
        sent: counters.sent.load(Ordering::Relaxed),
        acked: counters.acked.load(Ordering::Relaxed),
        unacked,
        delivered: counters.delivered.load(Ordering::Relaxed),
        delivered_total: counters.delivered_total.load(Ordering::Relaxed),
        expected_total,
        lost,
        out_of_order,
        cut_off,
        errors: counters.errors.load(Ordering::Relaxed),
        closed_by_server: counters.closed_by_server.load(Ordering::Relaxed),
        latency,
        window: shared.config.duration,
    })
}

/// One socket: sends by the plan (if it is a sender) and accounts every frame it gets,
/// until the senders have stopped and the socket has been quiet for the drain time.
async fn socket_loop(
    shared: Arc<Shared>,
    index: usize,
    chat: i64,
    sends: bool,
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> SocketResult {
    let Shared {
        config,
        counters,
        start,
        window,
        send_until,
        padding,
    } = &*shared;
    let (start, send_until) = (*start, *send_until);
    let (mut sink, mut stream) = ws.split();
    let mut receiver = Receiver::default();
    receiver.follow(chat, 1);
    let mut latency = latency_histogram();
    let (mut sent_here, mut acked_here) = (0_u64, 0_u64);
    let schedule = config.plan.schedule().filter(|_| sends);
    let (period, per_tick) = schedule.unwrap_or((Duration::from_secs(3600), 0));
    // Steady senders spread their phases so they do not all fire at once; bursts are
    // simultaneous on purpose.
    let phase = match config.plan {
        SendPlan::Steady { .. } => period.mul_f64((index % 1000) as f64 / 1000.0),
        SendPlan::Idle | SendPlan::Burst { .. } => Duration::ZERO,
    };
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let drain_cap = send_until + DRAIN_MAX;
    let mut drain_until = (send_until + config.drain_quiet).min(drain_cap);
    // Last text frame (events, acks; not pings).
    let mut last_frame = Instant::now();
    let mut seen: u64 = 0;
    loop {
        tokio::select! {
            _ = ticker.tick(), if schedule.is_some() && Instant::now() < send_until => {
                let mut failed = false;
                for _ in 0..per_tick {
                    let now = micros_since(start);
                    let text = format!("t={now};{padding}");
                    if sink.feed(Message::text(json!({"message": text}).to_string())).await.is_err() {
                        failed = true;
                        break;
                    }
                    sent_here += 1;
                    if window.contains(&now) {
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if failed || sink.flush().await.is_err() {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            frame = stream.next() => {
                let Some(Ok(frame)) = frame else { break };
                if let Message::Close(reason) = &frame {
                    counters.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    if counters.closed_by_server.load(Ordering::Relaxed) <= 3 {
                        eprintln!("server closed a socket: {reason:?}");
                    }
                    break;
                }
                drain_until = (Instant::now().max(send_until) + config.drain_quiet).min(drain_cap);
                let Message::Text(text) = frame else { continue };
                last_frame = Instant::now();
                let now = micros_since(start);
                let Some(event) = Event::parse(&text) else { continue };
                match event.kind.as_ref() {
                    "chat.message" => {
                        seen += 1;
                        if config.drop_every.is_some_and(|n| seen.is_multiple_of(n)) {
                            continue;
                        }
                        receiver.observe(event.chat_id.unwrap_or(chat), event.seq.unwrap_or_default());
                        counters.delivered_total.fetch_add(1, Ordering::Relaxed);
                        if let Some(sent_at) = event.sent_at().filter(|t| window.contains(t)) {
                            counters.delivered.fetch_add(1, Ordering::Relaxed);
                            let _ = latency.record(now.saturating_sub(sent_at).max(1));
                        }
                    }
                    "ack" => {
                        acked_here += 1;
                        if window.contains(&now) {
                            counters.acked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // The first few are shown: the count alone does not say what failed.
                    "error" if counters.errors.fetch_add(1, Ordering::Relaxed) < 3 => {
                        eprintln!("server error event: {text}");
                    }
                    "error" => {}
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(drain_until)) => {
                // Still hearing frames when the drain limit came: the rest is cut off.
                // (A receiver whose frames had stopped well before — whatever
                // --drain-quiet-ms says — had its chance: what it misses is lost.)
                receiver.cut = drain_until >= drain_cap
                    && drain_cap.saturating_duration_since(last_frame) < DRAIN_QUIET.min(config.drain_quiet);
                break;
            }
        }
    }
    let _ = sink.close().await;
    SocketResult {
        chat,
        sent: sent_here,
        acked: acked_here,
        receiver,
        latency,
    }
}

pub use crate::histogram::latency_histogram;
