//! The WebSocket protocol over real sockets, both modes.

use std::time::Duration;

use chat_test_support::{Backend, TestApp, both_backends};
use serde_json::json;

both_backends!(
    handshake_refusals_are_http_statuses,
    an_empty_bearer_is_no_credential_on_either_path,
    every_authentication_method_works,
    messages_reach_every_member_socket_with_an_ack,
    the_all_chats_socket_follows_membership_changes,
    retrieve_and_history_on_connect,
    bad_frames_get_errors_and_the_socket_stays_open,
    oversize_frames_close_the_socket,
    typing_and_read_events,
    logout_and_removal_close_sockets,
    events_arrive_in_seq_order_under_concurrent_senders,
    reconnect_and_recover_gets_exactly_what_was_missed,
    direct_sockets_in_the_seed_style,
    presence_reaches_chat_members_and_friends,
    a_slow_consumer_is_closed_without_stalling_others,
    changing_admin_rights_closes_the_users_sockets,
    the_all_chats_socket_follows_chats_created_after_it_opened,
    a_socket_keeps_reading_while_its_sends_commit,
    pipelined_refusals_and_duplicates_are_answered_in_frame_order,
);

/// Among pipelined sends, a refused one (empty text) and a resend of a `client_id` still
/// uncommitted are answered in their place: ack, duplicate ack with the original seq,
/// error, ack — and only the two distinct messages are stored and broadcast.
/// The next `count` replies on a socket (acks, JSON pongs, errors), in arrival order;
/// events (messages, presence) come whenever they come and are skipped.
async fn replies(
    socket: &mut chat_test_support::WsClient,
    count: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut answers = Vec::new();
    while answers.len() < count {
        let frame = socket.recv().await?;
        if matches!(frame["type"].as_str(), Some("ack" | "pong" | "error")) {
            answers.push(frame);
        }
    }
    Ok(answers)
}

async fn pipelined_refusals_and_duplicates_are_answered_in_frame_order(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut anns = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;
    let lock = app.database.hold_write_lock().await?;
    for frame in [
        json!({"action": "send_message", "message": "one", "client_id": "k-1", "request_id": "r1"}),
        json!({"action": "send_message", "message": "one", "client_id": "k-1", "request_id": "r2"}),
        json!({"action": "send_message", "message": "", "request_id": "r3"}),
        json!({"action": "send_message", "message": "two", "request_id": "r4"}),
    ] {
        anns.send(frame).await?;
    }
    // All four were read while the first is uncommitted.
    anns.ping(b"read past them").await?;
    drop(lock);
    let answers = replies(&mut anns, 4).await?;
    let order: Vec<_> = answers
        .iter()
        .map(|a| {
            (
                a["type"].as_str(),
                a["request_id"].as_str(),
                a["seq"].as_i64(),
                a["duplicate"].as_bool(),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            (Some("ack"), Some("r1"), Some(1), Some(false)),
            (Some("ack"), Some("r2"), Some(1), Some(true)),
            (Some("error"), Some("r3"), None, None),
            (Some("ack"), Some("r4"), Some(2), Some(false)),
        ]
    );
    assert_eq!(answers[2]["code"], "validation_failed", "{}", answers[2]);
    for (seq, text) in [(1, "one"), (2, "two")] {
        let event = bobs.recv_type("chat.message").await?;
        assert_eq!(
            (event["seq"].as_i64(), event["message"].as_str()),
            (Some(seq), Some(text))
        );
    }
    // Nothing more was broadcast: the next message Bob hears is the one sent next.
    anns.send(json!({"action": "send_message", "message": "three", "request_id": "r5"}))
        .await?;
    let next = bobs.recv_type("chat.message").await?;
    assert_eq!(
        (next["seq"].as_i64(), next["message"].as_str()),
        (Some(3), Some("three"))
    );
    app.shutdown().await;
    Ok(())
}

/// A socket's sends are pipelined: while they wait for their commit (held up here by the
/// database's write lock) the socket is still read — a protocol ping is answered — and
/// once they commit their acks come in the order they were sent, with seqs in that order.
/// Any other action waits for the sends before it: its answer comes after their acks.
async fn a_socket_keeps_reading_while_its_sends_commit(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut anns = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;
    let lock = app.database.hold_write_lock().await?;
    for n in 1..=3 {
        anns.send(json!({"action": "send_message", "message": format!("m{n}"), "request_id": format!("r{n}")}))
            .await?;
    }
    // The seeds' bare frame is a send too.
    anns.send(json!({"message": "m4", "request_id": "r4"}))
        .await?;
    // Answered while every send is uncommitted: the socket was read past them.
    anns.ping(b"still reading").await?;
    anns.send(json!({"action": "ping", "request_id": "p"}))
        .await?;
    drop(lock);
    let answers = replies(&mut anns, 5).await?;
    let order: Vec<_> = answers
        .iter()
        .map(|a| {
            (
                a["type"].as_str(),
                a["request_id"].as_str(),
                a["seq"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            (Some("ack"), Some("r1"), Some(1)),
            (Some("ack"), Some("r2"), Some(2)),
            (Some("ack"), Some("r3"), Some(3)),
            (Some("ack"), Some("r4"), Some(4)),
            (Some("pong"), Some("p"), None),
        ]
    );
    for seq in 1..=4 {
        let event = bobs.recv_type("chat.message").await?;
        assert_eq!(
            (event["seq"].as_i64(), event["message"].as_str()),
            (Some(seq), Some(format!("m{seq}").as_str()))
        );
    }
    app.shutdown().await;
    Ok(())
}

/// A direct chat either side opens, and a group one creates, after the `/ws` sockets
/// connected: each starts with a `chat.member_joined` per member, and its messages
/// reach the sockets at once (the web client opens one socket and keeps it).
async fn the_all_chats_socket_follows_chats_created_after_it_opened(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let ann = app.register("ann").await?;
    let bob = app.register("bob").await?;
    let request = app
        .post(
            "/api/v1/friends/requests",
            Some(&ann.access_token),
            json!({"user_id": bob.user_id}),
        )
        .await?;
    let request_id = request.json["id"].as_i64().unwrap_or_default();
    app.post(
        &format!("/api/v1/friends/requests/{request_id}/accept"),
        Some(&bob.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    let mut anns = app.ws("/ws", &ann.access_token).await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;

    let direct = app
        .post(
            "/api/v1/chats/direct",
            Some(&bob.access_token),
            json!({"user_id": ann.user_id}),
        )
        .await?;
    direct.expect_status(201)?;
    let direct = direct.json["id"].as_i64().unwrap_or_default();
    // Both members' sockets hear both joins of the new chat (on their own topics: no
    // instance follows the chat's topic before it exists), and follow it from then on.
    for socket in [&mut bobs, &mut anns] {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let event = socket.recv_type("chat.member_joined").await?;
            assert_eq!(event["chat_id"], direct);
            seen.push((event["user_id"].as_i64(), event["added_by"].as_i64()));
        }
        assert_eq!(
            seen,
            vec![
                (Some(bob.user_id), None),
                (Some(ann.user_id), Some(bob.user_id))
            ]
        );
    }
    app.post(
        &format!("/api/v1/chats/{direct}/messages"),
        Some(&bob.access_token),
        json!({"content": "first words"}),
    )
    .await?
    .expect_status(201)?;
    for socket in [&mut anns, &mut bobs] {
        // Nothing was said before the joins, so nothing is announced as missed (with
        // Redis, a message that beat the chat's subscription would be, legitimately).
        let mut message = socket.recv_type_any(&["chat.message", "resync"]).await?;
        if backend == Backend::Postgres && message["type"] == "resync" {
            message = socket.recv_type("chat.message").await?;
        }
        assert_eq!(
            (
                message["type"].as_str(),
                message["chat_id"].as_i64(),
                message["message"].as_str()
            ),
            (Some("chat.message"), Some(direct), Some("first words"))
        );
    }

    // A group Ann creates: her socket hears what is said in it (here from another
    // session of hers).
    let group = app
        .post(
            "/api/v1/chats",
            Some(&ann.access_token),
            json!({"name": "Fresh"}),
        )
        .await?;
    let group = group.json["id"].as_i64().unwrap_or_default();
    let owner = anns.recv_type("chat.member_joined").await?;
    assert_eq!(
        (
            owner["chat_id"].as_i64(),
            owner["user_id"].as_i64(),
            owner["role"].as_str()
        ),
        (Some(group), Some(ann.user_id), Some("owner"))
    );
    let elsewhere = app.login("ann", chat_test_support::TEST_PASSWORD).await?;
    app.post(
        &format!("/api/v1/chats/{group}/messages"),
        Some(&elsewhere.access_token),
        json!({"content": "from my phone"}),
    )
    .await?
    .expect_status(201)?;
    let message = anns.recv_type("chat.message").await?;
    assert_eq!(
        (message["chat_id"].as_i64(), message["message"].as_str()),
        (Some(group), Some("from my phone"))
    );
    // Bob is not in the group: the next message he hears is the one sent in their
    // direct chat after Ann heard hers (published after it, so it would come second).
    app.post(
        &format!("/api/v1/chats/{direct}/messages"),
        Some(&bob.access_token),
        json!({"content": "after"}),
    )
    .await?
    .expect_status(201)?;
    let next = bobs.recv_type("chat.message").await?;
    assert_eq!(
        (next["chat_id"].as_i64(), next["message"].as_str()),
        (Some(direct), Some("after"))
    );
    app.shutdown().await;
    Ok(())
}

async fn changing_admin_rights_closes_the_users_sockets(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, _chat) = app.two_in_a_group().await?;
    let changes = chat_db::models::UserChanges {
        is_admin: Some(true),
        ..Default::default()
    };
    chat_db::models::UserRow::update(&app.context.store.db, ann.user_id, changes).await?;
    let root = app.login("ann", chat_test_support::TEST_PASSWORD).await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;
    // Bob's socket holds his rights as of the handshake: granting new ones closes it.
    app.patch(
        &format!("/api/v1/admin/users/{}", bob.user_id),
        Some(&root.access_token),
        json!({"is_admin": true}),
    )
    .await?
    .expect_status(200)?;
    assert_eq!(
        bobs.closed().await?,
        (4002, "permissions changed: reconnect".to_owned())
    );
    app.shutdown().await;
    Ok(())
}

async fn a_slow_consumer_is_closed_without_stalling_others(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut slow = app
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;
    let mut fast = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    for socket in [&mut slow, &mut fast] {
        socket.send(json!({"action": "ping"})).await?;
        socket.recv_type("pong").await?;
    }
    // Far more than the socket buffers and the 1 MiB queue hold, as if sent from
    // other instances: the bus is where every instance's events come from.
    let text = "x".repeat(4000);
    let total: i64 = 6000;
    // Paced in batches the reading socket keeps up with (400 KB; a burst past its whole
    // queue at once would close any socket: that is the bound working).
    let batch = 100;
    for start in (1..=total).step_by(batch) {
        for seq in start..start + batch as i64 {
            let event = json!({"type": "chat.message", "chat_id": chat, "id": seq, "seq": seq, "message": text, "sender": "ann", "sender_id": ann.user_id});
            app.context
                .bus
                .publish(&format!("chat.{chat}"), event.to_string())
                .await;
        }
        for expected in start..start + batch as i64 {
            let event = fast.recv_type("chat.message").await?;
            assert_eq!(
                event["seq"], expected,
                "the reading socket gets everything, in order"
            );
        }
    }
    let (code, reason) = slow.closed().await?;
    assert_eq!(
        (code, reason.as_str()),
        (4000, "lagging: reconnect and recover with after_seq")
    );
    app.shutdown().await;
    Ok(())
}

async fn presence_of(
    socket: &mut chat_test_support::WsClient,
    user_id: i64,
) -> anyhow::Result<serde_json::Value> {
    loop {
        let event = socket.recv_type("presence").await?;
        if event["user_id"] == user_id {
            return Ok(event);
        }
    }
}

async fn presence_reaches_chat_members_and_friends(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let cyd = app.register("cyd").await?;
    let request = app
        .post(
            "/api/v1/friends/requests",
            Some(&ann.access_token),
            json!({"user_id": cyd.user_id}),
        )
        .await?;
    let request_id = request.json["id"].as_i64().unwrap_or_default();
    app.post(
        &format!("/api/v1/friends/requests/{request_id}/accept"),
        Some(&cyd.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    let mut anns = app.ws("/ws", &ann.access_token).await?;
    // A chat member comes online on a chat socket, then a second socket changes nothing.
    let bobs = app
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;
    let online = presence_of(&mut anns, bob.user_id).await?;
    // One event per change on /ws, however many chats are shared (so no chat_id).
    assert_eq!(
        (online["online"].as_bool(), online["chat_id"].as_i64()),
        (Some(true), None)
    );
    let mut bobs_second = app.ws("/ws", &bob.access_token).await?;
    // A pong proves the socket's presence is recorded (it is, before frames are read).
    bobs_second.send(json!({"action": "ping"})).await?;
    bobs_second.recv_type("pong").await?;
    drop(bobs);
    anns.expect_none(&["presence"], Duration::from_millis(500))
        .await?;
    drop(bobs_second);
    let offline = presence_of(&mut anns, bob.user_id).await?;
    assert_eq!(offline["online"], false);
    assert!(offline["last_seen_at"].is_string());
    // A friend with no chat in common is told too (on /ws, without chat_id).
    let cyds = app.ws("/ws", &cyd.access_token).await?;
    let friend = presence_of(&mut anns, cyd.user_id).await?;
    assert_eq!(
        (friend["online"].as_bool(), friend.get("chat_id").is_none()),
        (Some(true), true)
    );
    drop(cyds);
    assert_eq!(presence_of(&mut anns, cyd.user_id).await?["online"], false);
    app.shutdown().await;
    Ok(())
}

async fn handshake_refusals_are_http_statuses(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let outsider = app.register("outsider").await?;
    assert_eq!(app.ws_refused("/ws", &[]).await?, 401);
    assert_eq!(
        app.ws_refused("/ws", &[("Authorization", "Bearer nonsense")])
            .await?,
        401
    );
    assert_eq!(app.ws_refused("/ws?token=nonsense", &[]).await?, 401);
    let bearer = format!("Bearer {}", outsider.access_token);
    assert_eq!(
        app.ws_refused(&format!("/ws/chats/{chat}"), &[("Authorization", &bearer)])
            .await?,
        403
    );
    assert_eq!(
        app.ws_refused("/ws/chats/999999", &[("Authorization", &bearer)])
            .await?,
        404
    );
    assert_eq!(
        app.ws_refused(
            "/ws",
            &[
                ("Authorization", &bearer),
                ("Origin", "https://evil.example")
            ]
        )
        .await?,
        403
    );
    assert_eq!(
        app.ws_refused(
            &format!("/ws/chats/{chat}?history=500"),
            &[("Authorization", &format!("Bearer {}", ann.access_token))]
        )
        .await?,
        422
    );
    // The same refusals are problem documents for plain HTTP clients.
    app.get("/ws", None)
        .await?
        .expect_problem(401, "missing_token")?;
    app.get(&format!("/ws/chats/{chat}"), Some(&outsider.access_token))
        .await?
        .expect_problem(403, "not_a_member")?;
    // A same-origin browser is welcome.
    let own_origin = format!("http://127.0.0.1:{}", app.port);
    app.ws_with(
        "/ws",
        &[
            ("Authorization", &format!("Bearer {}", ann.access_token)),
            ("Origin", &own_origin),
        ],
    )
    .await?;
    app.shutdown().await;
    Ok(())
}

async fn every_authentication_method_works(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let mut by_header = app.ws("/ws", &ann.access_token).await?;
    let mut by_query = app
        .ws_with(&format!("/ws/chats/{chat}?token={}", ann.access_token), &[])
        .await?;
    let mut by_protocol = app
        .ws_with(
            &format!("/ws/chats/{chat}"),
            &[(
                "Sec-WebSocket-Protocol",
                &format!("chat, {}", ann.access_token),
            )],
        )
        .await?;
    assert_eq!(by_protocol.protocol.as_deref(), Some("chat"));
    let ticket = app
        .post("/api/v1/ws/ticket", Some(&ann.access_token), json!({}))
        .await?;
    ticket.expect_status(200)?;
    assert_eq!(ticket.json["expires_in"], 30);
    let ticket = ticket.json["ticket"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut by_ticket = app.ws_with(&format!("/ws?ticket={ticket}"), &[]).await?;
    assert_eq!(
        app.ws_refused(&format!("/ws?ticket={ticket}"), &[]).await?,
        401,
        "tickets are single-use"
    );
    assert_eq!(app.ws_refused("/ws?ticket=made-up", &[]).await?, 401);
    for socket in [
        &mut by_header,
        &mut by_query,
        &mut by_protocol,
        &mut by_ticket,
    ] {
        socket
            .send(json!({"action": "ping", "request_id": 7}))
            .await?;
        let pong = socket.recv_type("pong").await?;
        assert_eq!(pong["request_id"], 7);
    }
    app.shutdown().await;
    Ok(())
}

async fn messages_reach_every_member_socket_with_an_ack(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut anns = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;
    anns.send(json!({"action": "send_message", "message": "hello", "request_id": "r1", "client_id": "c-1"})).await?;
    let ack = anns.recv_type("ack").await?;
    assert_eq!(
        (
            ack["request_id"].as_str(),
            ack["seq"].as_i64(),
            ack["chat_id"].as_i64()
        ),
        (Some("r1"), Some(1), Some(chat))
    );
    assert_eq!(ack["duplicate"], false);
    for socket in [&mut anns, &mut bobs] {
        let event = socket.recv_type("chat.message").await?;
        assert_eq!(event["message"], "hello");
        assert_eq!(event["sender"], "ann");
        assert_eq!(event["sender_id"], ann.user_id);
        assert_eq!(event["chat_id"], chat);
        assert_eq!(event["seq"], 1);
        assert_eq!(event["id"], ack["message_id"]);
        assert_eq!(event["client_id"], "c-1");
    }
    // A resent client_id is acknowledged as a duplicate and not broadcast again.
    anns.send(json!({"action": "send_message", "message": "hello", "request_id": "r2", "client_id": "c-1"})).await?;
    let dup = anns.recv_type("ack").await?;
    assert_eq!(
        (dup["duplicate"].as_bool(), dup["seq"].as_i64()),
        (Some(true), Some(1))
    );
    // The seeds' bare frame is a send; REST sends are broadcast too.
    anns.send(json!({"message": "bare", "request_id": "r3"}))
        .await?;
    assert_eq!(anns.recv_type("ack").await?["request_id"], "r3");
    app.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&bob.access_token),
        json!({"content": "over rest"}),
    )
    .await?
    .expect_status(201)?;
    for socket in [&mut anns, &mut bobs] {
        let bare = socket.recv_type("chat.message").await?;
        let rest = socket.recv_type("chat.message").await?;
        assert_eq!(
            (bare["message"].as_str(), rest["message"].as_str()),
            (Some("bare"), Some("over rest"))
        );
        assert_eq!(
            (bare["seq"].as_i64(), rest["seq"].as_i64()),
            (Some(2), Some(3))
        );
    }
    app.shutdown().await;
    Ok(())
}

async fn the_all_chats_socket_follows_membership_changes(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;
    let second = app
        .post(
            "/api/v1/chats",
            Some(&ann.access_token),
            json!({"name": "Second"}),
        )
        .await?;
    let second = second.json["id"].as_i64().unwrap_or_default();
    // Added to a new chat: notified, then its messages arrive at once.
    app.request(
        actix_web::http::Method::PUT,
        &format!("/api/v1/chats/{second}/members/{}", bob.user_id),
        Some(&ann.access_token),
        None,
    )
    .await?
    .expect_status(201)?;
    let note = bobs.recv_type("notification").await?;
    assert_eq!(
        (note["kind"].as_str(), note["chat_id"].as_i64()),
        (Some("added_to_chat"), Some(second))
    );
    app.post(
        &format!("/api/v1/chats/{second}/messages"),
        Some(&ann.access_token),
        json!({"content": "welcome"}),
    )
    .await?;
    let welcome = bobs.recv_type("chat.message").await?;
    assert_eq!(
        (welcome["chat_id"].as_i64(), welcome["message"].as_str()),
        (Some(second), Some("welcome"))
    );
    // Sending on /ws names the chat.
    bobs.send(
        json!({"action": "send_message", "chat_id": chat, "message": "from /ws", "request_id": 1}),
    )
    .await?;
    assert_eq!(bobs.recv_type("ack").await?["chat_id"], chat);
    assert_eq!(
        bobs.recv_type("chat.message").await?["message"],
        "from /ws",
        "the sender's socket gets its own message"
    );
    bobs.send(json!({"action": "send_message", "message": "where to?", "request_id": 2}))
        .await?;
    let missing = bobs.recv_type("error").await?;
    assert_eq!(
        (missing["code"].as_str(), missing["request_id"].as_i64()),
        (Some("missing_field"), Some(2))
    );
    // A send to the second chat passes the full check; the socket's next sends there
    // rely on it while the socket follows the chat.
    for (n, text) in [(3, "thanks"), (4, "again")] {
        bobs.send(
            json!({"action": "send_message", "chat_id": second, "message": text, "request_id": n}),
        )
        .await?;
        // The ack and the socket's own copy of the message, in either order.
        let (mut acked, mut echoed) = (false, false);
        while !(acked && echoed) {
            let frame = bobs.recv_type_any(&["ack", "chat.message"]).await?;
            match frame["type"].as_str() {
                Some("ack") => acked = frame["request_id"] == n,
                _ => echoed = frame["message"] == text,
            }
        }
    }
    // Removed: the leave event arrives, and nothing after it.
    app.delete(
        &format!("/api/v1/chats/{second}/members/{}", bob.user_id),
        Some(&ann.access_token),
    )
    .await?
    .expect_status(204)?;
    let left = bobs.recv_type("chat.member_left").await?;
    assert_eq!(left["user_id"], bob.user_id);
    // … and the socket's sends there are refused from then on, nothing stored.
    bobs.send(
        json!({"action": "send_message", "chat_id": second, "message": "let me in", "request_id": 5}),
    )
    .await?;
    let refused = bobs.recv_type("error").await?;
    assert_eq!(
        (refused["code"].as_str(), refused["request_id"].as_i64()),
        (Some("not_found"), Some(5)),
        "{refused}"
    );
    let history = app
        .get(
            &format!("/api/v1/chats/{second}/messages"),
            Some(&ann.access_token),
        )
        .await?;
    let texts: Vec<&str> = history.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(!texts.contains(&"let me in"), "{texts:?}");
    assert!(texts.contains(&"again"), "{texts:?}");
    app.post(
        &format!("/api/v1/chats/{second}/messages"),
        Some(&ann.access_token),
        json!({"content": "secret"}),
    )
    .await?;
    app.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&ann.access_token),
        json!({"content": "still here"}),
    )
    .await?;
    let next = bobs.recv_type("chat.message").await?;
    assert_eq!(
        next["message"], "still here",
        "no message of the chat bob was removed from"
    );
    app.shutdown().await;
    Ok(())
}

async fn retrieve_and_history_on_connect(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    for i in 1..=5 {
        app.post(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&ann.access_token),
            json!({"content": format!("m{i}")}),
        )
        .await?;
    }
    let mut socket = app
        .ws(&format!("/ws/chats/{chat}?history=3"), &bob.access_token)
        .await?;
    let pushed = socket.recv_type("messages").await?;
    let seqs: Vec<i64> = pushed["data"]["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["seq"].as_i64())
        .collect();
    assert_eq!(seqs, [5, 4, 3]);
    socket
        .send(
            json!({"action": "retrieve_message", "number": 2, "before_seq": 3, "request_id": "h"}),
        )
        .await?;
    let page = socket.recv_type("messages").await?;
    assert_eq!(page["action"], "retrieve_message");
    assert_eq!(page["request_id"], "h");
    assert_eq!(page["data"]["meta"]["number_msgs"], 2);
    assert_eq!(page["data"]["meta"]["has_more"], false);
    let first = &page["data"]["messages"][1];
    assert_eq!(
        (
            first["seq"].as_i64(),
            first["message"].as_str(),
            first["sender"].as_str()
        ),
        (Some(1), Some("m1"), Some("ann"))
    );
    socket
        .send(json!({"action": "retrieve_message", "number": 0}))
        .await?;
    assert_eq!(
        socket.recv_type("error").await?["code"],
        "validation_failed"
    );
    app.shutdown().await;
    Ok(())
}

async fn bad_frames_get_errors_and_the_socket_stays_open(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let outsider_chat = app
        .post(
            "/api/v1/chats",
            Some(&ann.access_token),
            json!({"name": "Mine"}),
        )
        .await?;
    let carl = app.register("carl").await?;
    let mut socket = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let cases = [
        ("not json at all".to_owned(), "bad_frame"),
        ("[1, 2, 3]".to_owned(), "bad_frame"),
        (
            json!({"action": "dance", "request_id": "x"}).to_string(),
            "unknown_action",
        ),
        (json!({"request_id": "y"}).to_string(), "missing_field"),
        (
            json!({"action": "send_message", "message": 42}).to_string(),
            "bad_frame",
        ),
        (
            json!({"action": "send_message"}).to_string(),
            "missing_field",
        ),
        (
            json!({"action": "send_message", "message": "   "}).to_string(),
            "validation_failed",
        ),
        (
            json!({"action": "send_message", "message": "x", "chat_id": outsider_chat.json["id"]})
                .to_string(),
            "wrong_chat",
        ),
        (
            json!({"action": "edit_message", "message_id": 999, "message": "x"}).to_string(),
            "not_found",
        ),
        (json!({"action": "mark_read"}).to_string(), "missing_field"),
    ];
    for (frame, code) in &cases {
        socket.send_text(frame).await?;
        let error = socket.recv_type("error").await?;
        assert_eq!(error["code"], *code, "for {frame}: {error}");
        assert!(error["detail"].is_string());
    }
    let unknown = json!({"action": "dance", "request_id": "x"}).to_string();
    socket.send_text(&unknown).await?;
    assert_eq!(socket.recv_type("error").await?["request_id"], "x");
    // Still open and working.
    socket.send(json!({"message": "still fine"})).await?;
    assert_eq!(
        socket.recv_type("chat.message").await?["message"],
        "still fine"
    );
    // A non-member's /ws cannot post into the chat.
    let mut carls = app.ws("/ws", &carl.access_token).await?;
    carls
        .send(json!({"action": "send_message", "chat_id": chat, "message": "let me in"}))
        .await?;
    assert_eq!(carls.recv_type("error").await?["code"], "not_a_member");
    app.shutdown().await;
    Ok(())
}

async fn oversize_frames_close_the_socket(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let mut socket = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let huge = json!({"message": "x".repeat(70 * 1024)}).to_string();
    socket.send_text(&huge).await?;
    let (code, reason) = socket.closed().await?;
    assert_eq!((code, reason.as_str()), (1009, "frame too large"));
    // Nothing was stored.
    let history = app
        .get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&ann.access_token),
        )
        .await?;
    assert_eq!(history.json["items"].as_array().map(Vec::len), Some(0));
    app.shutdown().await;
    Ok(())
}

async fn typing_and_read_events(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut anns = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let mut bobs = app
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;
    anns.send(json!({"action": "typing"})).await?;
    let typing = bobs.recv_type("chat.typing").await?;
    assert_eq!(
        (typing["user_id"].as_i64(), typing["username"].as_str()),
        (Some(ann.user_id), Some("ann"))
    );
    anns.send(json!({"message": "read me"})).await?;
    bobs.recv_type("chat.message").await?;
    bobs.send(json!({"action": "mark_read", "seq": 1, "request_id": "m"}))
        .await?;
    let ack = bobs.recv_type("ack").await?;
    assert_eq!(
        (ack["last_read_seq"].as_i64(), ack["unread_count"].as_i64()),
        (Some(1), Some(0))
    );
    let read = anns.recv_type("chat.read").await?;
    assert_eq!(
        (read["user_id"].as_i64(), read["seq"].as_i64()),
        (Some(bob.user_id), Some(1))
    );
    // Edits and deletes over the socket.
    let id = ack["chat_id"].as_i64().and(
        app.get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&ann.access_token),
        )
        .await?
        .json["items"][0]["id"]
            .as_i64(),
    );
    anns.send(json!({"action": "edit_message", "message_id": id, "message": "read me!"}))
        .await?;
    assert_eq!(
        bobs.recv_type("chat.message_edited").await?["message"],
        "read me!"
    );
    bobs.send(json!({"action": "delete_message", "message_id": id, "request_id": "d"}))
        .await?;
    assert_eq!(bobs.recv_type("error").await?["code"], "forbidden");
    anns.send(json!({"action": "delete_message", "message_id": id}))
        .await?;
    assert_eq!(
        bobs.recv_type("chat.message_deleted").await?["id"].as_i64(),
        id
    );
    app.shutdown().await;
    Ok(())
}

async fn logout_and_removal_close_sockets(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut anns = app.ws("/ws", &ann.access_token).await?;
    let mut bobs_chat = app
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;
    app.request(
        actix_web::http::Method::POST,
        "/api/v1/auth/logout",
        Some(&ann.access_token),
        None,
    )
    .await?
    .expect_status(204)?;
    assert_eq!(anns.closed().await?, (4001, "session revoked".to_owned()));
    app.delete(
        &format!("/api/v1/chats/{chat}/members/{}", bob.user_id),
        Some(&ann.access_token),
    )
    .await?
    .expect_problem(401, "session_revoked")?;
    let ann = app.login("ann", chat_test_support::TEST_PASSWORD).await?;
    app.delete(
        &format!("/api/v1/chats/{chat}/members/{}", bob.user_id),
        Some(&ann.access_token),
    )
    .await?
    .expect_status(204)?;
    assert_eq!(
        bobs_chat.closed().await?,
        (4003, "removed from chat".to_owned())
    );
    app.shutdown().await;
    Ok(())
}

async fn events_arrive_in_seq_order_under_concurrent_senders(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.workers = 2).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut watcher = app
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;
    let path = format!("/api/v1/chats/{chat}/messages");
    let sends = (0..30).map(|i| {
        let who = if i % 2 == 0 { &ann } else { &bob };
        app.post(
            &path,
            Some(&who.access_token),
            json!({"content": format!("c{i}")}),
        )
    });
    for response in futures_util::future::join_all(sends).await {
        response?.expect_status(201)?;
    }
    let mut seqs = Vec::new();
    while seqs.len() < 30 {
        seqs.push(
            watcher.recv_type("chat.message").await?["seq"]
                .as_i64()
                .unwrap_or_default(),
        );
    }
    assert_eq!(
        seqs,
        (1..=30).collect::<Vec<_>>(),
        "in seq order, none lost"
    );
    app.shutdown().await;
    Ok(())
}

async fn reconnect_and_recover_gets_exactly_what_was_missed(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut bobs = app
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;
    app.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&ann.access_token),
        json!({"content": "seen"}),
    )
    .await?;
    let last_seen = bobs.recv_type("chat.message").await?["seq"]
        .as_i64()
        .unwrap_or_default();
    drop(bobs);
    for text in ["missed 1", "missed 2", "missed 3"] {
        app.post(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&ann.access_token),
            json!({"content": text}),
        )
        .await?;
    }
    let mut bobs = app
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;
    let missed = app
        .get(
            &format!("/api/v1/chats/{chat}/messages?after_seq={last_seen}"),
            Some(&bob.access_token),
        )
        .await?;
    let texts: Vec<&str> = missed.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(texts, ["missed 1", "missed 2", "missed 3"]);
    app.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&ann.access_token),
        json!({"content": "live again"}),
    )
    .await?;
    let live = bobs.recv_type("chat.message").await?;
    assert_eq!(
        (live["message"].as_str(), live["seq"].as_i64()),
        (Some("live again"), Some(5))
    );
    app.shutdown().await;
    Ok(())
}

async fn direct_sockets_in_the_seed_style(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.direct_requires_friendship = false).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let mut anns = app
        .ws(&format!("/ws/direct/{}", bob.user_id), &ann.access_token)
        .await?;
    // Seed clients end the path with a slash.
    let mut bobs = app
        .ws(&format!("/ws/direct/{}/", ann.user_id), &bob.access_token)
        .await?;
    anns.send(json!({"message": "hi bob"})).await?;
    let event = bobs.recv_type("chat.message").await?;
    assert_eq!(
        (event["message"].as_str(), event["sender"].as_str()),
        (Some("hi bob"), Some("ann"))
    );
    assert_eq!(
        anns.recv_type("chat.message").await?["chat_id"],
        event["chat_id"]
    );
    assert_eq!(
        app.ws_refused(
            &format!("/ws/direct/{}", ann.user_id),
            &[("Authorization", &format!("Bearer {}", ann.access_token))]
        )
        .await?,
        422
    );
    assert_eq!(
        app.ws_refused(
            "/ws/direct/999999",
            &[("Authorization", &format!("Bearer {}", ann.access_token))]
        )
        .await?,
        404
    );
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn a_socket_on_one_instance_hears_sends_on_another() -> anyhow::Result<()> {
    let a = TestApp::spawn(Backend::Postgres).await?;
    let b = a.spawn_peer().await?;
    sockets_hear_each_other_across_instances(a, b).await
}

/// Messages, presence and a logout cross from one instance (`a`) to another (`b`).
pub(crate) async fn sockets_hear_each_other_across_instances(
    a: TestApp,
    b: TestApp,
) -> anyhow::Result<()> {
    let (ann, bob, chat) = a.two_in_a_group().await?;
    let mut on_b = b
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;
    let mut on_a = a
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    // The subscription on B is in place once B hears its own instance's events.
    on_b.send(json!({"action": "typing"})).await?;
    on_a.recv_type("chat.typing").await?;
    a.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&ann.access_token),
        json!({"content": "via rest on A"}),
    )
    .await?
    .expect_status(201)?;
    on_a.send(json!({"message": "via ws on A"})).await?;
    let first = on_b.recv_type("chat.message").await?;
    let second = on_b.recv_type("chat.message").await?;
    assert_eq!(
        (first["message"].as_str(), second["message"].as_str()),
        (Some("via rest on A"), Some("via ws on A"))
    );
    // Presence counts sockets over both instances.
    let mut ann_watch = a.ws("/ws", &ann.access_token).await?;
    let mut bob_on_a = a.ws("/ws", &bob.access_token).await?;
    bob_on_a.send(json!({"action": "ping"})).await?;
    bob_on_a.recv_type("pong").await?;
    drop(on_b);
    ann_watch
        .expect_none(&["presence"], Duration::from_millis(700))
        .await?;
    drop(bob_on_a);
    loop {
        let event = ann_watch.recv_type("presence").await?;
        if event["user_id"] == bob.user_id && event["online"] == false {
            break;
        }
    }
    // Logging out on B closes the socket held by A.
    b.request(
        actix_web::http::Method::POST,
        "/api/v1/auth/logout",
        Some(&ann.access_token),
        None,
    )
    .await?
    .expect_status(204)?;
    assert_eq!(on_a.closed().await?.0, 4001);
    b.shutdown().await;
    a.shutdown().await;
    Ok(())
}

/// One bearer parser for REST and handshakes: `Bearer ` with nothing after it is no
/// credential at all (REST: 401 missing_token; a handshake goes on to its other
/// methods), not a wrong one.
async fn an_empty_bearer_is_no_credential_on_either_path(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let ann = app.register("ann").await?;
    let rest = app
        .request_with_headers(
            awc::http::Method::GET,
            "/api/v1/users/me",
            None,
            &[("Authorization", "Bearer ")],
            None,
        )
        .await?;
    rest.expect_problem(401, "missing_token")?;
    let mut socket = app
        .ws_with(
            &format!("/ws?token={}", ann.access_token),
            &[("Authorization", "Bearer ")],
        )
        .await?;
    socket.send(serde_json::json!({"action": "ping"})).await?;
    socket.recv_type("pong").await?;
    app.shutdown().await;
    Ok(())
}
