//! Scenarios: set-up through the public API, then real sockets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::accounting::Receiver;
use crate::http;

/// WebSocket read buffer of each load-generator socket: tungstenite's 128 KiB default
/// would cost more memory than the server under test.
pub const READ_BUFFER: usize = 4 * 1024;
/// After the senders stop, receivers wait this long past the last frame they got
/// (at most [`DRAIN_MAX`]) before the run is accounted: a backlog is slow, not lost.
pub const DRAIN_QUIET: Duration = Duration::from_secs(8);
/// Longest drain.
pub const DRAIN_MAX: Duration = Duration::from_secs(30);
/// Password of generated users.
const PASSWORD: &str = "load generator password";

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server (or bare baseline) address.
    pub server: SocketAddr,
    /// Sockets to open.
    pub connections: usize,
    /// Members per group (each socket is one member).
    pub group_size: usize,
    /// Messages per second each socket sends (0: idle).
    pub rate: f64,
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
}

/// One member: its socket's chat and credentials.
#[derive(Debug, Clone)]
struct Member {
    chat: i64,
    token: Option<String>,
}

/// What a run measured.
#[derive(Debug)]
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
    /// Failed connects, sends, error events.
    pub errors: u64,
    /// Sockets the server closed during the run (e.g. `4000 lagging`).
    pub closed_by_server: u64,
    /// Send → receive latency, microseconds (measured window only).
    pub latency: Histogram<u64>,
    /// The measured window.
    pub window: Duration,
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

async fn setup(config: &Config) -> anyhow::Result<Vec<Member>> {
    let groups = config.connections.div_ceil(config.group_size.max(1));
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
                chat: base + (i / config.group_size.max(1)) as i64,
                token: None,
            })
            .collect());
    }
    let addr = config.server;
    let sign_ups = futures_util::stream::iter(0..config.connections)
        .map(|i| {
            let name = format!("lg{}_{i}", config.run_id);
            async move {
                let body = json!({"username": name, "email": format!("{name}@load.test"), "password": PASSWORD});
                let answer = http::ok(addr, "POST", "/api/v1/auth/register", None, Some(&body)).await?;
                anyhow::Ok((i, answer["access_token"].as_str().unwrap_or_default().to_owned()))
            }
        })
        .buffer_unordered(config.setup_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut tokens = vec![String::new(); config.connections];
    for result in sign_ups {
        let (i, token) = result?;
        tokens[i] = token;
    }
    let mut members = Vec::with_capacity(config.connections);
    for g in 0..groups {
        let first = g * config.group_size;
        let last = ((g + 1) * config.group_size).min(config.connections);
        let owner = &tokens[first];
        let body = json!({"name": format!("load {} {g}", config.run_id), "visibility": "public"});
        let chat = http::ok(addr, "POST", "/api/v1/chats", Some(owner), Some(&body)).await?["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("no chat id"))?;
        let joins = futures_util::stream::iter(first + 1..last)
            .map(|i| {
                let token = tokens[i].clone();
                async move {
                    http::ok(
                        addr,
                        "POST",
                        &format!("/api/v1/chats/{chat}/join"),
                        Some(&token),
                        Some(&json!({})),
                    )
                    .await
                }
            })
            .buffer_unordered(config.setup_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        for join in joins {
            join?;
        }
        for token in &tokens[first..last] {
            members.push(Member {
                chat,
                token: Some(token.clone()),
            });
        }
    }
    Ok(members)
}

async fn connect(
    config: &Config,
    member: &Member,
    index: usize,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let socket = match config.server {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(source) = config.sources.get(index % config.sources.len().max(1)) {
        socket.bind(SocketAddr::new(*source, 0))?;
    }
    let stream = socket.connect(config.server).await?;
    stream.set_nodelay(true)?;
    let mut request =
        format!("ws://{}/ws/chats/{}", config.server, member.chat).into_client_request()?;
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
    let counters = Arc::new(Counters::default());
    let mut sockets = Vec::with_capacity(members.len());
    for (i, member) in members.iter().enumerate() {
        match connect(&config, member, i).await {
            Ok(ws) => sockets.push((member.chat, ws)),
            Err(err) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if counters.errors.load(Ordering::Relaxed) <= 3 {
                    eprintln!("connect failed: {err}");
                }
            }
        }
    }
    on_connected(sockets.len());
    let mut members_per_chat: HashMap<i64, u64> = HashMap::new();
    for (chat, _) in &sockets {
        *members_per_chat.entry(*chat).or_default() += 1;
    }
    let start = Instant::now();
    let window_start = micros_since(start) + u64::try_from(config.warmup.as_micros()).unwrap_or(0);
    let window_end = window_start + u64::try_from(config.duration.as_micros()).unwrap_or(0);
    let send_until = start + config.warmup + config.duration;
    let padding = "x".repeat(config.message_bytes.saturating_sub(24));
    let mut tasks = Vec::new();
    for (index, (chat, ws)) in sockets.into_iter().enumerate() {
        let counters = counters.clone();
        let padding = padding.clone();
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let mut receiver = Receiver::default();
            receiver.follow(chat, 1);
            let mut latency = latency_histogram();
            let mut sent_here: u64 = 0;
            let mut acked_here: u64 = 0;
            let period = if config.rate > 0.0 { Duration::from_secs_f64(1.0 / config.rate) } else { Duration::from_secs(3600) };
            // Spread the senders' phases so they do not all fire at once.
            let phase = period.mul_f64((index % 1000) as f64 / 1000.0);
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let drain_cap = send_until + DRAIN_MAX;
            let mut drain_until = send_until + config.drain_quiet;
            let mut seen: u64 = 0;
            loop {
                tokio::select! {
                    _ = ticker.tick(), if config.rate > 0.0 && Instant::now() < send_until => {
                        let now = micros_since(start);
                        let text = format!("t={now};{padding}");
                        if sink.send(Message::text(json!({"message": text}).to_string())).await.is_err() {
                            counters.errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        sent_here += 1;
                        if (window_start..window_end).contains(&now) {
                            counters.sent.fetch_add(1, Ordering::Relaxed);
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
                        let now = micros_since(start);
                        let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
                        match event["type"].as_str() {
                            Some("chat.message") => {
                                seen += 1;
                                if config.drop_every.is_some_and(|n| seen.is_multiple_of(n)) {
                                    continue;
                                }
                                let seq = event["seq"].as_i64().unwrap_or_default();
                                receiver.observe(event["chat_id"].as_i64().unwrap_or(chat), seq);
                                counters.delivered_total.fetch_add(1, Ordering::Relaxed);
                                let sent_at = event["message"].as_str().and_then(|m| m.strip_prefix("t=")).and_then(|m| m.split(';').next()).and_then(|t| t.parse::<u64>().ok());
                                if let Some(sent_at) = sent_at.filter(|t| (window_start..window_end).contains(t)) {
                                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                                    let _ = latency.record(now.saturating_sub(sent_at).max(1));
                                }
                            }
                            Some("ack") => {
                                acked_here += 1;
                                if (window_start..window_end).contains(&now) {
                                    counters.acked.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Some("error") => {
                                counters.errors.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                    }
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(drain_until)) => break,
                }
            }
            let _ = sink.close().await;
            (chat, sent_here, acked_here, receiver, latency)
        }));
    }
    let mut latency = latency_histogram();
    // Expected at receivers: what the server stored (acknowledged); chats are fresh, so
    // their seqs run 1..=stored.
    let mut stored_per_chat: HashMap<i64, i64> = HashMap::new();
    let mut unacked = 0;
    let mut receivers = Vec::new();
    for task in tasks {
        let (chat, sent, acked, receiver, hist) = task.await?;
        *stored_per_chat.entry(chat).or_default() += i64::try_from(acked).unwrap_or(i64::MAX);
        unacked += sent.saturating_sub(acked);
        latency.add(&hist)?;
        receivers.push(receiver);
    }
    let (mut lost, mut out_of_order) = (0, 0);
    for receiver in &receivers {
        let (_, l, o) = receiver.totals(&stored_per_chat);
        lost += l;
        out_of_order += o;
    }
    let expected_total = stored_per_chat
        .iter()
        .map(|(chat, sent)| {
            u64::try_from(*sent).unwrap_or(0) * members_per_chat.get(chat).copied().unwrap_or(0)
        })
        .sum();
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
        errors: counters.errors.load(Ordering::Relaxed),
        closed_by_server: counters.closed_by_server.load(Ordering::Relaxed),
        latency,
        window: config.duration,
    })
}

/// Latencies from 1 µs to 60 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    #[expect(
        clippy::expect_used,
        reason = "constant, valid bounds: 1 < 60e6 and 3 significant digits"
    )]
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}
