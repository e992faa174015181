//! No user can hurt others: presence without amplification, bounded socket queues,
//! throttling instead of disconnects, caps, and no existence leaks. Both modes.

use std::sync::Arc;
use std::time::Duration;

use chat_test_support::{Backend, TestApp, WS_WAIT, both_backends};
use serde_json::{Value, json};

use crate::upgrade::masked_text;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

both_backends!(
    presence_costs_one_bus_message_per_change_whatever_the_chat_count,
    a_socket_that_never_reads_is_closed_and_costs_bounded_memory,
    a_fast_sender_is_slowed_not_disconnected_and_loses_nothing,
    a_leave_racing_the_handshake_is_not_followed,
    invisible_chats_answer_exactly_like_missing_ones,
    sockets_and_chats_per_user_are_capped,
    group_creation_and_joins_are_rate_limited,
    long_request_ids_are_refused_and_the_socket_stays_open,
    nobody_can_fill_another_users_chat_cap,
    a_send_waiting_for_its_budget_is_dropped_when_the_sender_is_removed,
);

/// Groups of which `user` is the owner, written straight to the database (thousands
/// over HTTP would take the test's time, not the server's).
async fn many_groups(app: &TestApp, user: i64, count: usize) -> anyhow::Result<()> {
    for i in 0..count {
        let now = chat_db::now();
        let name = format!("g{i}");
        let new = chat_db::models::NewChat {
            kind: "group",
            name: Some(&name),
            description: None,
            visibility: "private",
            direct_key: None,
            created_by: Some(user),
            created_at: now,
            last_activity_at: now,
            member_count: 1,
        };
        chat_db::models::ChatRow::create(&app.context.store.db, new, &[(user, "owner")]).await?;
    }
    Ok(())
}

async fn presence_costs_one_bus_message_per_change_whatever_the_chat_count(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.max_chats_per_user = 10_000).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let crowd = app.register("crowd").await?;
    many_groups(&app, crowd.user_id, 2000).await?;
    let mut anns = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let mut events = app.context.bus.subscribe();
    let cycles = 10;
    for round in 0..cycles {
        let mut socket = app.ws("/ws", &crowd.access_token).await?;
        socket.send(json!({"action": "ping"})).await?;
        socket.recv_type("pong").await?;
        drop(socket);
        // The unrelated user's socket stays open and keeps receiving its own chat.
        let text = format!("still here {round}");
        app.send_text(&bob, chat, &text).await?;
        let event = anns.recv_type("chat.message").await?;
        assert_eq!(event["message"], text.as_str());
    }
    // The crowd user's presence changes reach the bus as one message each, on the
    // user's presence topic (sockets that overlap make one stretch online, so there may be
    // fewer than two per cycle), ending with "offline".
    let mut changes = Vec::new();
    let mut per_chat = 0;
    let deadline = tokio::time::Instant::now() + WS_WAIT;
    loop {
        let quiet = tokio::time::Instant::now() + Duration::from_millis(500);
        match tokio::time::timeout_at(quiet.min(deadline), events.recv()).await {
            Err(_) if changes.last() == Some(&false) => break,
            Err(_) if tokio::time::Instant::now() >= deadline => {
                anyhow::bail!("presence never settled on offline: {changes:?}")
            }
            Err(_) => continue,
            Ok(message) => {
                let message = message?;
                let value: Value = serde_json::from_str(&message.payload).unwrap_or_default();
                if value["type"] != "presence" || value["user_id"] != crowd.user_id {
                    continue;
                }
                if message.topic == format!("presence.{}", crowd.user_id) {
                    assert_eq!(value["chats"].as_array().map(Vec::len), Some(2000));
                    changes.push(value["online"] == true);
                } else {
                    per_chat += 1;
                }
            }
        }
    }
    assert_eq!(per_chat, 0, "presence was published per chat");
    assert!(
        (2..=2 * cycles).contains(&changes.len()),
        "{} presence messages for {cycles} connects and disconnects",
        changes.len()
    );
    app.shutdown().await;
    Ok(())
}

/// Peak resident memory of this process (each test runs in its own process under
/// nextest), after resetting the peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A WebSocket over a raw TCP socket with a small receive buffer (so loopback's
/// autotuned buffers, which can take tens of MB, do not swallow what the server sends):
/// the client that does not read.
async fn raw_websocket(port: u16, path: &str, token: &str) -> anyhow::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(16 * 1024)?;
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    anyhow::ensure!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    Ok(stream)
}

async fn a_socket_that_never_reads_is_closed_and_costs_bounded_memory(
    backend: Backend,
) -> anyhow::Result<()> {
    // Rate limits are off (so is the frame budget): the queue bound must stop it.
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    // 100 messages of 4 000 two-byte characters: each page of them is ~800 KB.
    let text = "é".repeat(4000);
    for _ in 0..100 {
        app.send_text(&ann, chat, &text).await?;
    }
    let mut presence = app.context.bus.subscribe();
    let mut socket =
        raw_websocket(app.port, &format!("/ws/chats/{chat}"), &bob.access_token).await?;
    reset_peak_rss();
    let before = peak_rss_bytes();
    // 100 pages (80 MB) asked for, none read …
    for i in 0..100 {
        let frame = json!({"action": "retrieve_message", "number": 100, "request_id": i});
        socket.write_all(&masked_text(&frame.to_string())).await?;
    }
    // … until the server has closed the socket (Bob goes offline).
    let deadline = tokio::time::Instant::now() + 2 * WS_WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, presence.recv())
            .await
            .map_err(|_| anyhow::anyhow!("the socket that does not read was never closed"))??;
        let value: Value = serde_json::from_str(&message.payload).unwrap_or_default();
        if value["type"] == "presence"
            && value["user_id"] == bob.user_id
            && value["online"] == false
        {
            break;
        }
    }
    // The server's part is over (the client's buffer below is not the server's).
    let grown = peak_rss_bytes().saturating_sub(before);
    // Only now read: what the kernel held, then the close frame, then the end.
    let mut received = Vec::new();
    tokio::time::timeout(2 * WS_WAIT, socket.read_to_end(&mut received)).await??;
    eprintln!(
        "peak RSS grew {} KiB; {} bytes reached the client",
        grown >> 10,
        received.len()
    );
    let reason = b"lagging: reconnect and recover with after_seq";
    let mut close = vec![0x88, 2 + reason.len() as u8, 0x0F, 0xA0];
    close.extend_from_slice(reason);
    assert!(
        received.ends_with(&close),
        "closed with 4000 lagging after {} bytes",
        received.len()
    );
    assert!(
        received.len() < 20 << 20,
        "most of the 80 MB was never sent ({} bytes were)",
        received.len()
    );
    assert!(
        // Measured 4–8 MiB (a page rendered at a time, one queued, one in the write
        // buffer); without the byte bound it is 80 MB.
        grown < 16 << 20,
        "the server held {} MiB for one socket that does not read",
        grown >> 20
    );
    // Others are unaffected.
    let mut anns = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    anns.send(json!({"message": "fine"})).await?;
    assert_eq!(anns.recv_type("chat.message").await?["message"], "fine");
    app.shutdown().await;
    Ok(())
}

async fn a_fast_sender_is_slowed_not_disconnected_and_loses_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    // Rate limits on, with budgets a test can go past in seconds (the defaults, 20
    // messages and 30 frames a second, would take minutes for 2 000 messages).
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limits = true;
        c.message_rate = Some(message_budget(400.0, 40.0));
        c.ws_frame_budget = chat_ws::FrameBudget {
            per_second: 500.0,
            burst: 50.0,
        };
    })
    .await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let (cyd, dan) = (app.register("cyd").await?, app.register("dan").await?);
    let other = app.create_group(&cyd, "other", "public").await?;
    app.post(
        &format!("/api/v1/chats/{other}/join"),
        Some(&dan.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    let mut sender = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let mut reader = app
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;
    let mut cyds = app
        .ws(&format!("/ws/chats/{other}"), &cyd.access_token)
        .await?;
    let mut dans = app
        .ws(&format!("/ws/chats/{other}"), &dan.access_token)
        .await?;
    let total = 2000;
    let window = 100;
    let mut acked = Vec::new();
    let mut delivered = Vec::new();
    for start in (0..total).step_by(window) {
        // A window of frames at once: twice the burst of both budgets.
        for i in start..start + window {
            sender
                .send(json!({"message": format!("m{i}"), "client_id": format!("c{i}"), "request_id": i}))
                .await?;
        }
        // Meanwhile another pair chats as usual.
        cyds.send(json!({"message": format!("hello {start}")}))
            .await?;
        assert_eq!(
            dans.recv_type("chat.message").await?["message"],
            format!("hello {start}").as_str()
        );
        for _ in start..start + window {
            let ack = sender.recv_type("ack").await?;
            acked.push(ack["request_id"].as_i64().unwrap_or(-1));
        }
        for _ in start..start + window {
            let event = reader.recv_type("chat.message").await?;
            delivered.push((
                event["seq"].as_i64().unwrap_or(-1),
                event["message"].clone(),
            ));
        }
    }
    // Replies come in frame order: a pong with no error before it means none is coming.
    sender.send(json!({"action": "ping"})).await?;
    sender.expect_none_before(&["error"], "pong").await?;
    assert_eq!(
        acked,
        (0..total as i64).collect::<Vec<_>>(),
        "every send acknowledged, in order"
    );
    let seqs: Vec<i64> = delivered.iter().map(|(seq, _)| *seq).collect();
    let first = seqs.first().copied().unwrap_or_default();
    assert_eq!(
        seqs,
        (first..first + total as i64).collect::<Vec<_>>(),
        "delivered in seq order"
    );
    assert!(
        delivered
            .iter()
            .enumerate()
            .all(|(i, (_, m))| *m == format!("m{i}").as_str())
    );
    // The socket is still open.
    sender.send(json!({"action": "ping"})).await?;
    sender.recv_type("pong").await?;
    app.shutdown().await;
    Ok(())
}

async fn a_leave_racing_the_handshake_is_not_followed(backend: Backend) -> anyhow::Result<()> {
    // The hook holds `/ws` between reading the memberships and registering the socket.
    let (reached_tx, reached_rx) = async_channel();
    let (go_tx, go_rx) = async_channel();
    let hook: chat_ws::HandshakeHook = Arc::new(move || {
        let reached = reached_tx.clone();
        let go = go_rx.clone();
        Box::pin(async move {
            let _ = reached.send(()).await;
            let _ = go.recv().await;
        })
    });
    let app = TestApp::spawn_with(backend, |c| c.ws_before_register = Some(hook)).await?;
    // Bob owns the group, Ann is a member.
    let (bob, ann, chat) = app.two_in_a_group().await?;
    let kept = app.create_group(&bob, "kept", "public").await?;
    app.post(
        &format!("/api/v1/chats/{kept}/join"),
        Some(&ann.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    let connecting = {
        let address = app.port;
        let token = ann.access_token.clone();
        actix_web::rt::spawn(async move { connect_all(address, &token).await })
    };
    reached_rx.recv().await?;
    // Ann's memberships were read; she is removed before her socket registers.
    let mut watch = app.context.bus.subscribe();
    chat_test_support::follow_topics(&app.context.bus, &mut watch, &[format!("chat.{chat}")])
        .await?;
    app.delete(
        &format!("/api/v1/chats/{chat}/members/{}", ann.user_id),
        Some(&bob.access_token),
    )
    .await?
    .expect_status(204)?;
    // The removal has passed the bus (and so the hub) before the socket registers.
    loop {
        let message = tokio::time::timeout(WS_WAIT, watch.recv()).await??;
        if message.payload.contains("chat.member_left") {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    go_tx.send(()).await?;
    let mut anns = connecting.await??;
    anns.send(json!({"action": "ping"})).await?;
    anns.recv_type("pong").await?;
    app.send_text(&bob, chat, "not for ann").await?;
    // Published (the hub reads the bus in order) before the next message is even sent:
    // had it been routed to Ann, it would reach her first.
    loop {
        let message = tokio::time::timeout(WS_WAIT, watch.recv()).await??;
        if message.payload.contains("not for ann") {
            break;
        }
    }
    app.send_text(&bob, kept, "for ann").await?;
    let event = anns.recv_type("chat.message").await?;
    assert_eq!(
        (event["chat_id"].as_i64(), event["message"].as_str()),
        (Some(kept), Some("for ann")),
        "the chat she left is not followed; the one she is in is"
    );
    app.shutdown().await;
    Ok(())
}

/// A bounded channel both ends of which are `Send + Sync` (the hook runs on a worker).
fn async_channel() -> (ChannelTx, ChannelRx) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    (
        ChannelTx(tx),
        ChannelRx(Arc::new(tokio::sync::Mutex::new(rx))),
    )
}

#[derive(Clone)]
struct ChannelTx(tokio::sync::mpsc::Sender<()>);

impl ChannelTx {
    async fn send(&self, value: ()) -> anyhow::Result<()> {
        self.0
            .send(value)
            .await
            .map_err(|_| anyhow::anyhow!("receiver gone"))
    }
}

#[derive(Clone)]
struct ChannelRx(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<()>>>);

impl ChannelRx {
    async fn recv(&self) -> anyhow::Result<()> {
        tokio::time::timeout(WS_WAIT, self.0.lock().await.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("sender gone"))
    }
}

/// Opens `/ws` on a server without a `TestApp` at hand (inside a spawned task).
async fn connect_all(port: u16, token: &str) -> anyhow::Result<chat_test_support::WsClient> {
    chat_test_support::WsClient::connect(
        port,
        "/ws",
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await
}

async fn invisible_chats_answer_exactly_like_missing_ones(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.direct_requires_friendship = false).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let outsider = app.register("outsider").await?;
    let private = app.create_group(&ann, "secret", "private").await?;
    let public = app.create_group(&ann, "open", "public").await?;
    let direct = app
        .post(
            "/api/v1/chats/direct",
            Some(&ann.access_token),
            json!({"user_id": bob.user_id}),
        )
        .await?;
    let direct = direct.json["id"].as_i64().unwrap_or_default();
    let missing = public + private + direct + 1000;
    let token = Some(outsider.access_token.as_str());
    let client = &app;
    let shape = |response: &chat_test_support::Response, id: i64| {
        (
            response.status.as_u16(),
            response.code().to_owned(),
            response.text.replace(&format!("chat {id} "), "chat ID "),
        )
    };
    for hidden in [private, direct] {
        for (method, route, body) in [
            ("GET", "", None),
            ("GET", "/messages", None),
            ("GET", "/members", None),
            ("POST", "/join", Some(json!({}))),
            ("POST", "/messages", Some(json!({"content": "hi"}))),
            ("POST", "/read", Some(json!({"seq": 1}))),
            ("PATCH", "", Some(json!({"name": "x"}))),
        ] {
            let call = |id: i64| {
                let path = format!("/api/v1/chats/{id}{route}");
                let body = body.clone();
                async move {
                    match (method, body) {
                        ("GET", _) => client.get(&path, token).await,
                        ("POST", Some(b)) => client.post(&path, token, b).await,
                        (_, b) => client.patch(&path, token, b.unwrap_or_default()).await,
                    }
                }
            };
            let seen = call(hidden).await?;
            let absent = call(missing).await?;
            assert_eq!(
                shape(&seen, hidden),
                shape(&absent, missing),
                "{method} {route}"
            );
            seen.expect_problem(404, "not_found")?;
        }
        let header = format!("Bearer {}", outsider.access_token);
        let refused = app
            .ws_refused(
                &format!("/ws/chats/{hidden}"),
                &[("Authorization", &header)],
            )
            .await?;
        let absent = app
            .ws_refused(
                &format!("/ws/chats/{missing}"),
                &[("Authorization", &header)],
            )
            .await?;
        assert_eq!((refused, absent), (404, 404));
    }
    // A public group is visible: not being a member there is a 403.
    app.get(&format!("/api/v1/chats/{public}/messages"), token)
        .await?
        .expect_problem(403, "not_a_member")?;
    app.shutdown().await;
    Ok(())
}

async fn sockets_and_chats_per_user_are_capped(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| {
        c.max_sockets_per_user = 2;
        c.max_chats_per_user = 2;
        c.direct_requires_friendship = false;
    })
    .await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let first = app.ws("/ws", &ann.access_token).await?;
    let _second = app.ws("/ws", &ann.access_token).await?;
    let header = format!("Bearer {}", ann.access_token);
    assert_eq!(
        app.ws_refused("/ws", &[("Authorization", &header)]).await?,
        429
    );
    let _bobs = app.ws("/ws", &bob.access_token).await?;
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        match app.ws("/ws", &ann.access_token).await {
            Ok(socket) => {
                reopened = Some(socket);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(reopened.is_some(), "a closed socket frees its place");
    // Chats: two, then 409 on every way in.
    let public = app.create_group(&bob, "open", "public").await?;
    app.create_group(&ann, "one", "private").await?;
    app.create_group(&ann, "two", "private").await?;
    app.post(
        "/api/v1/chats",
        Some(&ann.access_token),
        json!({"name": "three"}),
    )
    .await?
    .expect_problem(409, "too_many_chats")?;
    app.post(
        &format!("/api/v1/chats/{public}/join"),
        Some(&ann.access_token),
        json!({}),
    )
    .await?
    .expect_problem(409, "too_many_chats")?;
    app.add_member(public, ann.user_id, &bob.access_token)
        .await?
        .expect_problem(409, "too_many_chats")?;
    app.post(
        "/api/v1/chats/direct",
        Some(&bob.access_token),
        json!({"user_id": ann.user_id}),
    )
    .await?
    .expect_problem(409, "too_many_chats")?;
    app.shutdown().await;
    Ok(())
}

/// The per-user message budget at `per_second`, `burst` at once.
fn message_budget(per_second: f64, burst: f64) -> chat_services::rate_limit::Limit {
    chat_services::rate_limit::Limit {
        per_second,
        burst,
        ..chat_services::rate_limit::MESSAGES
    }
}

async fn group_creation_and_joins_are_rate_limited(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.rate_limits = true).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let burst = chat_services::rate_limit::GROUP_CREATE.burst as usize;
    let mut groups = Vec::new();
    for i in 0..burst {
        groups.push(app.create_group(&ann, &format!("g{i}"), "public").await?);
    }
    let refused = app
        .post(
            "/api/v1/chats",
            Some(&ann.access_token),
            json!({"name": "one more"}),
        )
        .await?;
    refused.expect_problem(429, "rate_limited")?;
    assert!(refused.header("retry-after").is_some());
    // Another user has a budget of their own.
    app.create_group(&bob, "bobs", "public").await?;
    // The budget is configuration.
    let strict = app
        .spawn_peer_with(|c| {
            c.rate_overrides = vec![chat_services::rate_limit::Limit {
                burst: 1.0,
                ..chat_services::rate_limit::GROUP_CREATE
            }];
        })
        .await?;
    let cyd = strict.register("cyd").await?;
    strict.create_group(&cyd, "one", "public").await?;
    strict
        .post(
            "/api/v1/chats",
            Some(&cyd.access_token),
            json!({"name": "two"}),
        )
        .await?
        .expect_problem(429, "rate_limited")?;
    strict.shutdown().await;
    for chat in &groups {
        app.post(
            &format!("/api/v1/chats/{chat}/join"),
            Some(&bob.access_token),
            json!({}),
        )
        .await?
        .expect_status(200)?;
    }
    assert!(groups.len() < chat_services::rate_limit::CHAT_JOIN.burst as usize);
    // Messages over REST past the budget (20/s, 40 at once): 429 with Retry-After.
    let chat = groups[0];
    let mut refused = None;
    for i in 0..100 {
        let response = app
            .post(
                &format!("/api/v1/chats/{chat}/messages"),
                Some(&bob.access_token),
                json!({"content": format!("rest {i}")}),
            )
            .await?;
        if response.status.as_u16() == 429 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.ok_or_else(|| anyhow::anyhow!("REST sends were never limited"))?;
    refused.expect_problem(429, "rate_limited")?;
    assert!(refused.header("retry-after").is_some());
    app.shutdown().await;
    Ok(())
}

async fn long_request_ids_are_refused_and_the_socket_stays_open(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let mut socket = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let long = "r".repeat(chat_ws::protocol::MAX_REQUEST_ID_CHARS + 1);
    socket
        .send(json!({"action": "ping", "request_id": long}))
        .await?;
    let error = socket.recv_type("error").await?;
    assert_eq!(
        (error["code"].as_str(), &error["request_id"]),
        (Some("bad_frame"), &Value::Null)
    );
    socket
        .send(json!({"action": "ping", "request_id": {"a": [1, 2]}}))
        .await?;
    assert_eq!(socket.recv_type("error").await?["code"], "bad_frame");
    socket
        .send(json!({"action": "ping", "request_id": "short"}))
        .await?;
    assert_eq!(socket.recv_type("pong").await?["request_id"], "short");
    app.shutdown().await;
    Ok(())
}

mod crash {
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use chat_test_support::{
        Backend, TEST_JWT_SECRET, TestApp, WS_WAIT, WsClient, free_port, redis_url,
    };
    use serde_json::json;

    async fn presence_of(socket: &mut WsClient, user_id: i64) -> anyhow::Result<bool> {
        loop {
            let event = socket.recv_type("presence").await?;
            if event["user_id"] == user_id {
                return Ok(event["online"] == true);
            }
        }
    }

    /// A second instance, the real binary, killed with SIGKILL: its users are shown
    /// offline by the instance that stays, within a few heartbeats.
    #[actix_web::test]
    async fn users_of_a_killed_instance_go_offline() -> anyhow::Result<()> {
        let heartbeat = "300ms";
        let a = TestApp::spawn_with(Backend::Postgres, |c| {
            c.presence_heartbeat = Duration::from_millis(300);
        })
        .await?;
        let (ann, bob, _chat) = a.two_in_a_group().await?;
        let mut watch = a.ws("/ws", &ann.access_token).await?;
        let port = free_port()?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHAT_")) {
            command.env_remove(key);
        }
        let redis = redis_url();
        let mut b = command
            .arg("serve")
            .envs([
                ("CHAT_BIND", format!("127.0.0.1:{port}").as_str()),
                ("CHAT_ENV", "test"),
                ("CHAT_DATABASE_URL", a.database.url()),
                ("CHAT_REDIS_URL", redis.as_str()),
                ("CHAT_REDIS_PREFIX", a.config.redis_prefix.as_str()),
                ("CHAT_JWT_SECRET", TEST_JWT_SECRET),
                ("CHAT_AUTO_MIGRATE", "false"),
                ("CHAT_RATE_LIMITS", "off"),
                ("CHAT_PRESENCE_HEARTBEAT", heartbeat),
                ("CHAT_LOG", "warn"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let header = format!("Bearer {}", bob.access_token);
        let mut bobs = None;
        for _ in 0..100 {
            match WsClient::connect(port, "/ws", &[("Authorization", &header)]).await {
                Ok(socket) => {
                    bobs = Some(socket);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let mut bobs = bobs.ok_or_else(|| anyhow::anyhow!("the second instance never came up"))?;
        bobs.send(json!({"action": "ping"})).await?;
        bobs.recv_type("pong").await?;
        assert!(
            presence_of(&mut watch, bob.user_id).await?,
            "online on the other instance"
        );
        b.kill()?;
        b.wait()?;
        // Within a few heartbeats (and well within the wait), not after a day.
        let deadline = tokio::time::Instant::now() + WS_WAIT;
        loop {
            let online = tokio::time::timeout_at(deadline, presence_of(&mut watch, bob.user_id))
                .await
                .map_err(|_| anyhow::anyhow!("still online after the instance was killed"))??;
            if !online {
                break;
            }
        }
        drop(bobs);
        a.shutdown().await;
        Ok(())
    }
}

async fn nobody_can_fill_another_users_chat_cap(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limits = true;
        c.rate_overrides = vec![chat_services::rate_limit::Limit {
            burst: 100.0,
            ..chat_services::rate_limit::GROUP_CREATE
        }];
    })
    .await?;
    let (owner, victim) = (app.register("owner").await?, app.register("victim").await?);
    let added = chat_services::rate_limit::MEMBER_ADDED.burst as usize;
    let mut refused = None;
    for i in 0..=added {
        let chat = app
            .create_group(&owner, &format!("g{i}"), "private")
            .await?;
        let response = app
            .add_member(chat, victim.user_id, &owner.access_token)
            .await?;
        if response.status.as_u16() != 201 {
            refused = Some((i, response));
            break;
        }
    }
    let (at, response) = refused.ok_or_else(|| anyhow::anyhow!("additions were never limited"))?;
    assert_eq!(at, added, "the first {added} additions pass");
    response.expect_problem(429, "rate_limited")?;
    // The victim can still make chats of their own.
    app.create_group(&victim, "mine", "private").await?;
    app.shutdown().await;
    Ok(())
}

async fn a_send_waiting_for_its_budget_is_dropped_when_the_sender_is_removed(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limits = true;
        c.message_rate = Some(message_budget(1.0, 1.0));
    })
    .await?;
    let (owner, member, chat) = app.two_in_a_group().await?;
    let mut socket = app
        .ws(&format!("/ws/chats/{chat}"), &member.access_token)
        .await?;
    socket
        .send(json!({"message": "first", "request_id": 1}))
        .await?;
    socket.recv_type("ack").await?;
    // Over the budget: this one waits about a second …
    socket
        .send(json!({"message": "second", "request_id": 2}))
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // … and the sender is removed meanwhile.
    app.delete(
        &format!("/api/v1/chats/{chat}/members/{}", member.user_id),
        Some(&owner.access_token),
    )
    .await?
    .expect_status(204)?;
    assert_eq!(socket.closed().await?.0, 4003);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let history = app
        .get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&owner.access_token),
        )
        .await?;
    let texts: Vec<&str> = history.json["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|m| m["content"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(texts, ["first"], "the waiting send was not stored");
    app.shutdown().await;
    Ok(())
}
