//! The `history` scenario (SPEC §7): REST history pages under concurrent load.
//!
//! Set-up (through the public API): a few users, one public group they all belong to,
//! and `messages` messages stored in it (`POST …/messages`). Then `connections` keep-alive
//! HTTP/1.1 clients each issue `GET /api/v1/chats/{id}/messages?limit=…` back to back
//! (three in four with a random `before_seq`, one in four the newest page) with a Bearer
//! token. A request counts in the window it was sent in; latency is recorded for `200`s,
//! anything else (or an I/O failure) is an error.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::{self, KeepAlive};
use crate::scenario::{self, latency_histogram};

/// Users made by the set-up; clients use their tokens round-robin.
pub const USERS: usize = 4;

/// What to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryConfig {
    /// The server (or bare baseline) address.
    pub server: SocketAddr,
    /// Keep-alive HTTP clients.
    pub connections: usize,
    /// Messages stored before the run.
    pub messages: u64,
    /// `limit` of each page.
    pub page: u32,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Local addresses to connect from.
    pub sources: Vec<IpAddr>,
    /// Target is `chat-bare-broadcast`: no set-up, no auth.
    pub baseline: bool,
    /// Approximate bytes per stored message.
    pub message_bytes: usize,
    /// Unique per run: prefixes generated usernames.
    pub run_id: String,
    /// Concurrent set-up requests.
    pub setup_concurrency: usize,
}

/// What the clients need from the set-up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// The chat whose history is read.
    pub chat: i64,
    /// Its last seq (pages are drawn below it).
    pub last_seq: i64,
    /// Tokens the clients use round-robin (`None`: no `Authorization`).
    pub tokens: Vec<Option<String>>,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryOutcome {
    /// Clients connected.
    pub connections: usize,
    /// Requests answered `200` in the window.
    pub ok: u64,
    /// Requests in the window that failed (non-`200` status or I/O error).
    pub errors: u64,
    /// Body bytes of the window's `200`s.
    pub body_bytes: u64,
    /// TCP connections opened (more than `connections` when the server closed some).
    pub connects: u64,
    /// Request → complete answer latency of the window's `200`s, microseconds.
    #[serde(with = "crate::histogram::counts")]
    pub latency: Histogram<u64>,
    /// The measured window.
    pub window: Duration,
}

impl HistoryOutcome {
    /// Adds another process's outcome (same window).
    pub fn merge(&mut self, other: &HistoryOutcome) -> anyhow::Result<()> {
        self.connections += other.connections;
        self.ok += other.ok;
        self.errors += other.errors;
        self.body_bytes += other.body_bytes;
        self.connects += other.connects;
        self.latency.add(&other.latency)?;
        self.window = self.window.max(other.window);
        Ok(())
    }
}

/// Makes the users and the chat and stores the messages (nothing against the bare
/// baseline, which answers every GET with the same page).
pub async fn setup(config: &HistoryConfig) -> anyhow::Result<Target> {
    if config.baseline {
        return Ok(Target {
            chat: 1,
            last_seq: i64::try_from(config.messages).unwrap_or(i64::MAX),
            tokens: vec![None],
        });
    }
    let addr = config.server;
    let tokens = scenario::register(addr, &config.run_id, USERS, config.setup_concurrency).await?;
    let chat =
        scenario::create_group(addr, &tokens[0], &format!("history {}", config.run_id)).await?;
    scenario::join_all(addr, chat, &tokens[1..], config.setup_concurrency).await?;
    let last_seq = store(config, chat, &tokens).await?;
    Ok(Target {
        chat,
        last_seq,
        tokens: tokens.into_iter().map(Some).collect(),
    })
}

/// Stores `config.messages` messages with `POST /api/v1/chats/{id}/messages`
/// (`setup_concurrency` at a time, the users taking turns) and returns the last seq.
/// (One WebSocket would be slower: the server closes a socket sending more than 30
/// frames/s.)
async fn store(config: &HistoryConfig, chat: i64, tokens: &[String]) -> anyhow::Result<i64> {
    let addr = config.server;
    let text = "h".repeat(config.message_bytes.max(1));
    let path = format!("/api/v1/chats/{chat}/messages");
    let stored = futures_util::stream::iter(0..config.messages)
        .map(|i| {
            let token = &tokens[usize::try_from(i).unwrap_or(0) % tokens.len().max(1)];
            let body = json!({"content": text});
            let path = &path;
            async move {
                let message = http::ok(addr, "POST", path, Some(token), Some(&body)).await?;
                message["seq"]
                    .as_i64()
                    .ok_or_else(|| anyhow::anyhow!("no seq in {message}"))
            }
        })
        .buffer_unordered(config.setup_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut last_seq = 0;
    for seq in stored {
        last_seq = last_seq.max(seq?);
    }
    Ok(last_seq)
}

/// A small xorshift generator: page positions need spread, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Sets up, then runs the clients ([`run_clients`]).
pub async fn run(
    config: HistoryConfig,
    on_connected: impl FnOnce(usize),
) -> anyhow::Result<HistoryOutcome> {
    let target = setup(&config).await?;
    run_clients(config, target, async |n| {
        on_connected(n);
        Ok(())
    })
    .await
}

/// Connects `config.connections` clients, waits for `on_connected` (several processes
/// synchronise there), then lets every client request pages back to back for the
/// warm-up and the measured window.
pub async fn run_clients(
    config: HistoryConfig,
    target: Target,
    on_connected: impl AsyncFnOnce(usize) -> anyhow::Result<()>,
) -> anyhow::Result<HistoryOutcome> {
    let mut clients = Vec::with_capacity(config.connections);
    let mut errors = 0;
    for i in 0..config.connections {
        let mut client = KeepAlive::new(config.server, &config.sources, i);
        match client.ensure_connected().await {
            Ok(()) => clients.push(client),
            Err(err) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("connect failed: {err}");
                }
            }
        }
    }
    on_connected(clients.len()).await?;
    let connections = clients.len();
    let target = Arc::new(target);
    let start = Instant::now();
    let window_start = start + config.warmup;
    let window_end = window_start + config.duration;
    let mut tasks = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        let target = target.clone();
        let page = config.page;
        tasks.push(tokio::spawn(async move {
            client_loop(client, i, &target, page, window_start, window_end).await
        }));
    }
    let mut outcome = HistoryOutcome {
        connections,
        ok: 0,
        errors,
        body_bytes: 0,
        connects: 0,
        latency: latency_histogram(),
        window: config.duration,
    };
    for task in tasks {
        outcome.merge(&task.await?)?;
    }
    outcome.connections = connections;
    Ok(outcome)
}

async fn client_loop(
    mut client: KeepAlive,
    index: usize,
    target: &Target,
    page: u32,
    window_start: Instant,
    window_end: Instant,
) -> HistoryOutcome {
    let mut outcome = HistoryOutcome {
        connections: 1,
        ok: 0,
        errors: 0,
        body_bytes: 0,
        connects: 0,
        latency: latency_histogram(),
        window: window_end - window_start,
    };
    let token = target
        .tokens
        .get(index % target.tokens.len().max(1))
        .cloned()
        .flatten();
    // Seeded per client and per process (the processes of one run reuse indices).
    let seed = (index as u64 + 1) ^ (u64::from(std::process::id()) << 32);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let (chat, page_seqs) = (target.chat, u64::try_from(target.last_seq).unwrap_or(0));
    let mut failures_in_a_row = 0_u32;
    loop {
        let sent_at = Instant::now();
        if sent_at >= window_end {
            break;
        }
        let path = if rng.below(4) == 0 {
            format!("/api/v1/chats/{chat}/messages?limit={page}")
        } else {
            // A page ending anywhere in the history.
            let before = 2 + rng.below(page_seqs);
            format!("/api/v1/chats/{chat}/messages?limit={page}&before_seq={before}")
        };
        let answer = client.get(&path, token.as_deref()).await;
        let in_window = sent_at >= window_start;
        match answer {
            Ok(reply) if reply.status == 200 => {
                failures_in_a_row = 0;
                if in_window {
                    outcome.ok += 1;
                    outcome.body_bytes += reply.body_bytes as u64;
                    let micros = u64::try_from(sent_at.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = outcome.latency.record(micros.max(1));
                }
            }
            Ok(_) => {
                failures_in_a_row = 0;
                if in_window {
                    outcome.errors += 1;
                }
            }
            Err(err) => {
                if in_window {
                    outcome.errors += 1;
                }
                failures_in_a_row += 1;
                if failures_in_a_row == 1 && index < 3 {
                    eprintln!("history request failed: {err}");
                }
                // A server that refuses connections must not be spun on.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    outcome.connects = client.connects;
    outcome
}
