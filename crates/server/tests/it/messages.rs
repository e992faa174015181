//! Messages: sending, idempotency, seq allocation, history, edits, deletes, events.

use chat_domain::UserId;
use std::time::Duration;

use chat_services::auth::tokens::{JwtKeys, issue_access, verify_access};
use chat_test_support::{Backend, Session, TEST_JWT_SECRET, TestApp, both_backends, follow_topics};
use serde_json::{Value, json};

both_backends!(
    send_and_read_history_in_every_direction,
    client_ids_make_sends_idempotent,
    fifty_concurrent_sends_get_seqs_one_to_fifty,
    message_validation_and_membership,
    edits_and_soft_deletes,
    writes_publish_their_events,
    the_history_route_refuses_every_bad_caller,
    kept_history_pages_match_the_database_and_follow_every_change,
    deleting_a_chat_leaves_none_of_its_messages,
);

#[actix_web::test]
async fn a_peer_never_serves_kept_history_older_than_an_acknowledged_write() -> anyhow::Result<()> {
    peer_sees_every_acknowledged_history_change().await
}

fn seqs(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["seq"].as_i64())
        .collect()
}

async fn send(app: &TestApp, who: &Session, chat: i64, body: Value) -> anyhow::Result<Value> {
    let response = app
        .post(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&who.access_token),
            body,
        )
        .await?;
    anyhow::ensure!(response.status.is_success(), "{}", response.text);
    Ok(response.json)
}

async fn send_and_read_history_in_every_direction(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    for i in 1..=7 {
        let who = if i % 2 == 0 { &bob } else { &ann };
        let message = send(
            &app,
            who,
            chat,
            json!({"content": format!("  message {i}\n")}),
        )
        .await?;
        assert_eq!(message["seq"], i);
        assert_eq!(
            message["content"],
            format!("message {i}"),
            "content is trimmed"
        );
        assert_eq!(message["sender"], who.username);
    }
    let history = async |query: &str| {
        app.get(
            &format!("/api/v1/chats/{chat}/messages{query}"),
            Some(&bob.access_token),
        )
        .await
    };
    assert_eq!(seqs(&history("").await?.json), [7, 6, 5, 4, 3, 2, 1]);
    let newest = history("?limit=3").await?;
    assert_eq!(seqs(&newest.json), [7, 6, 5]);
    let cursor = newest.json["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        seqs(&history(&format!("?limit=3&cursor={cursor}")).await?.json),
        [4, 3, 2]
    );
    assert_eq!(seqs(&history("?before_seq=3").await?.json), [2, 1]);
    // A reconnecting client asks for what it missed, oldest first.
    let missed = history("?after_seq=4&limit=2").await?;
    assert_eq!(seqs(&missed.json), [5, 6]);
    let cursor = missed.json["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let rest = history(&format!("?limit=2&cursor={cursor}")).await?;
    assert_eq!(seqs(&rest.json), [7]);
    assert!(rest.json["next_cursor"].is_null());
    assert_eq!(
        seqs(&history("?after_seq=7").await?.json),
        Vec::<i64>::new()
    );
    // Seed 003's limit/offset.
    assert_eq!(seqs(&history("?limit=2&offset=2").await?.json), [5, 4]);
    history("?after_seq=1&before_seq=5")
        .await?
        .expect_problem(422, "validation_failed")?;
    history("?after_seq=-1")
        .await?
        .expect_problem(422, "validation_failed")?;
    history("?limit=500")
        .await?
        .expect_problem(422, "validation_failed")?;
    // Replies must point into the same chat.
    let first_id = history("?after_seq=0&limit=1").await?.json["items"][0]["id"]
        .as_i64()
        .unwrap_or_default();
    let reply = send(
        &app,
        &bob,
        chat,
        json!({"content": "re", "reply_to": first_id}),
    )
    .await?;
    assert_eq!(reply["reply_to"], first_id);
    let other = app
        .post(
            "/api/v1/chats",
            Some(&ann.access_token),
            json!({"name": "Other"}),
        )
        .await?;
    let other_chat = other.json["id"].as_i64().unwrap_or_default();
    let elsewhere = send(&app, &ann, other_chat, json!({"content": "elsewhere"})).await?;
    app.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&ann.access_token),
        json!({"content": "x", "reply_to": elsewhere["id"]}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    app.shutdown().await;
    Ok(())
}

async fn client_ids_make_sends_idempotent(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let path = format!("/api/v1/chats/{chat}/messages");
    let first = app
        .post(
            &path,
            Some(&ann.access_token),
            json!({"content": "once", "client_id": "abc-1"}),
        )
        .await?;
    first.expect_status(201)?;
    let again = app
        .post(
            &path,
            Some(&ann.access_token),
            json!({"content": "once", "client_id": "abc-1"}),
        )
        .await?;
    again.expect_status(200)?;
    assert_eq!(again.json["id"], first.json["id"]);
    // The same key from another sender is another message.
    app.post(
        &path,
        Some(&bob.access_token),
        json!({"content": "mine", "client_id": "abc-1"}),
    )
    .await?
    .expect_status(201)?;
    // Concurrent resends of one key: one message, no gap in seq.
    let resends = (0..8).map(|_| {
        app.post(
            &path,
            Some(&ann.access_token),
            json!({"content": "race", "client_id": "abc-2"}),
        )
    });
    let mut ids = Vec::new();
    for response in futures_util::future::join_all(resends).await {
        let response = response?;
        assert!(response.status.is_success(), "{}", response.text);
        ids.push(response.json["id"].as_i64().unwrap_or_default());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one message for one client_id: {ids:?}");
    // Stored once, and found once by search.
    let found = app
        .get(&format!("{path}/search?q=race"), Some(&ann.access_token))
        .await?;
    assert_eq!(
        found.json["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        found.text
    );
    let next = app
        .post(&path, Some(&ann.access_token), json!({"content": "after"}))
        .await?;
    assert_eq!(
        next.json["seq"], 4,
        "a rolled-back duplicate must not burn a seq"
    );
    app.post(
        &path,
        Some(&ann.access_token),
        json!({"content": "x", "client_id": "has space"}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    app.shutdown().await;
    Ok(())
}

/// On PostgreSQL `messages` has no foreign key to `chats` (the writer's row checks
/// cost a third of its statement): a trigger on `chats` removes a deleted chat's
/// messages, including those of a batch committing while the deletion waits.
async fn deleting_a_chat_leaves_none_of_its_messages(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let first = send(&app, &ann, chat, json!({"content": "first"})).await?;
    send(
        &app,
        &bob,
        chat,
        json!({"content": "reply", "reply_to": first["id"]}),
    )
    .await?;
    let path = format!("/api/v1/chats/{chat}/messages");
    let sends = (0..30).map(|i| {
        app.post(
            &path,
            Some(&ann.access_token),
            json!({"content": format!("racing {i}")}),
        )
    });
    let (sent, deleted) = futures_util::future::join(
        futures_util::future::join_all(sends),
        app.delete(&format!("/api/v1/chats/{chat}"), Some(&ann.access_token)),
    )
    .await;
    deleted?.expect_status(204)?;
    for response in sent {
        let status = response?.status;
        assert!(
            status.is_success() || status == 404,
            "a send racing the deletion is stored or refused: {status}"
        );
    }
    // Every row of the chat, whatever its id: none may outlive it.
    let left = chat_db::models::MessageRow::history(
        &app.context.store.db,
        chat,
        chat_db::models::HistoryRange::Before(None),
        1_000,
    )
    .await?;
    assert!(
        left.is_empty(),
        "{} messages outlived their chat",
        left.len()
    );
    let page = app.get(&path, Some(&ann.access_token)).await?;
    assert_eq!(page.status, 404, "{}", page.text);
    app.shutdown().await;
    Ok(())
}

async fn fifty_concurrent_sends_get_seqs_one_to_fifty(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.workers = 2).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let cy = app.register("cyd").await?;
    app.post(
        &format!("/api/v1/chats/{chat}/join"),
        Some(&cy.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    // Every instance's hub sees the bus: a chat's events must be published in seq
    // order even when the sends race (the writer publishes, not the request tasks).
    let mut events = app.context.bus.subscribe();
    follow_topics(&app.context.bus, &mut events, &[format!("chat.{chat}")]).await?;
    let senders = [&ann, &bob, &cy];
    let path = format!("/api/v1/chats/{chat}/messages");
    let sends = (0..50).map(|i| {
        app.post(
            &path,
            Some(&senders[i % 3].access_token),
            json!({"content": format!("m{i}")}),
        )
    });
    let mut seqs_seen = Vec::new();
    for response in futures_util::future::join_all(sends).await {
        let response = response?;
        response.expect_status(201)?;
        seqs_seen.push(response.json["seq"].as_i64().unwrap_or_default());
    }
    seqs_seen.sort_unstable();
    assert_eq!(
        seqs_seen,
        (1..=50).collect::<Vec<_>>(),
        "gapless, no duplicates"
    );
    let stored = app
        .get(
            &format!("{path}?after_seq=0&limit=200"),
            Some(&ann.access_token),
        )
        .await?;
    assert_eq!(seqs(&stored.json), (1..=50).collect::<Vec<_>>());
    let view = app
        .get(&format!("/api/v1/chats/{chat}"), Some(&ann.access_token))
        .await?;
    assert_eq!(view.json["last_seq"], 50);
    let topic = format!("chat.{chat}");
    let mut published = Vec::new();
    while published.len() < 50 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await??;
        if event.topic == topic {
            let value: Value = serde_json::from_str(&event.payload)?;
            if value["type"] == "chat.message" {
                published.push(value["seq"].as_i64().unwrap_or_default());
            }
        }
    }
    assert_eq!(
        published,
        (1..=50).collect::<Vec<_>>(),
        "published in seq order"
    );
    app.shutdown().await;
    Ok(())
}

async fn message_validation_and_membership(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let outsider = app.register("outsider").await?;
    let path = format!("/api/v1/chats/{chat}/messages");
    for body in [
        json!({"content": "   "}),
        json!({"content": "x".repeat(4001)}),
        json!({}),
        json!({"content": 5}),
        json!({"content": "a\u{0}b"}),
    ] {
        app.post(&path, Some(&ann.access_token), body)
            .await?
            .expect_problem(422, "validation_failed")?;
    }
    app.post(
        &path,
        Some(&ann.access_token),
        json!({"content": "é".repeat(4000)}),
    )
    .await?
    .expect_status(201)?;
    app.post(
        &path,
        Some(&outsider.access_token),
        json!({"content": "hi"}),
    )
    .await?
    .expect_problem(403, "not_a_member")?;
    app.get(&path, Some(&outsider.access_token))
        .await?
        .expect_problem(403, "not_a_member")?;
    app.post(
        &format!("/api/v1/chats/{chat}/read"),
        Some(&outsider.access_token),
        json!({"seq": 1}),
    )
    .await?
    .expect_problem(403, "not_a_member")?;
    let first = app.get(&path, Some(&ann.access_token)).await?.json["items"][0]["id"]
        .as_i64()
        .unwrap_or_default();
    app.patch(
        &format!("{path}/{first}"),
        Some(&outsider.access_token),
        json!({"content": "hijack"}),
    )
    .await?
    .expect_problem(403, "not_a_member")?;
    app.delete(&format!("{path}/{first}"), Some(&outsider.access_token))
        .await?
        .expect_problem(403, "not_a_member")?;
    app.post(&path, None, json!({"content": "hi"}))
        .await?
        .expect_problem(401, "missing_token")?;
    app.post(
        "/api/v1/chats/999999/messages",
        Some(&ann.access_token),
        json!({"content": "hi"}),
    )
    .await?
    .expect_problem(404, "not_found")?;
    // Nothing the failures sent was stored.
    let stored = app.get(&path, Some(&ann.access_token)).await?;
    assert_eq!(seqs(&stored.json), [1]);
    app.shutdown().await;
    Ok(())
}

async fn edits_and_soft_deletes(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mine = send(&app, &bob, chat, json!({"content": "typo"})).await?;
    let id = mine["id"].as_i64().unwrap_or_default();
    let path = format!("/api/v1/chats/{chat}/messages/{id}");
    app.patch(
        &path,
        Some(&ann.access_token),
        json!({"content": "not yours"}),
    )
    .await?
    .expect_problem(403, "not_the_author")?;
    let edited = app
        .patch(&path, Some(&bob.access_token), json!({"content": "fixed"}))
        .await?;
    edited.expect_status(200)?;
    assert_eq!(edited.json["content"], "fixed");
    assert!(edited.json["edited_at"].is_string());
    app.patch(&path, Some(&bob.access_token), json!({"content": ""}))
        .await?
        .expect_problem(422, "validation_failed")?;
    // A plain member cannot delete someone else's message; the owner can.
    let anns = send(&app, &ann, chat, json!({"content": "owner's"})).await?;
    app.delete(
        &format!("/api/v1/chats/{chat}/messages/{}", anns["id"]),
        Some(&bob.access_token),
    )
    .await?
    .expect_problem(403, "forbidden")?;
    app.delete(&path, Some(&ann.access_token))
        .await?
        .expect_status(204)?;
    app.delete(&path, Some(&ann.access_token))
        .await?
        .expect_status(204)?;
    let history = app
        .get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&bob.access_token),
        )
        .await?;
    let deleted = history.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["id"] == id)
        .cloned()
        .unwrap_or_default();
    assert_eq!(deleted["content"], "", "deleted text is blanked");
    assert!(deleted["deleted_at"].is_string());
    app.patch(
        &path,
        Some(&bob.access_token),
        json!({"content": "resurrect"}),
    )
    .await?
    .expect_problem(409, "message_deleted")?;
    app.delete(
        &format!("/api/v1/chats/{chat}/messages/999999"),
        Some(&ann.access_token),
    )
    .await?
    .expect_problem(404, "not_found")?;
    app.shutdown().await;
    Ok(())
}

async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<chat_db::bus::BusMessage>>,
    topic: &str,
) -> anyhow::Result<Value> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await??;
        if event.topic == topic {
            return Ok(serde_json::from_str(&event.payload)?);
        }
    }
}

async fn writes_publish_their_events(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let mut events = app.context.bus.subscribe();
    let (ann_topic, bob_topic) = (
        format!("user.{}", ann.user_id),
        format!("user.{}", bob.user_id),
    );
    follow_topics(
        &app.context.bus,
        &mut events,
        &[ann_topic.clone(), bob_topic.clone()],
    )
    .await?;
    let chat = app.create_group(&ann, "Room", "public").await?;
    let topic = format!("chat.{chat}");
    // Creating the group announces its owner on her own topic (so the instances
    // holding her `/ws` sockets follow it: nobody follows the chat's topic yet).
    let owner = next_event(&mut events, &ann_topic).await?;
    assert_eq!(
        (
            owner["type"].as_str(),
            owner["chat_id"].as_i64(),
            owner["user_id"].as_i64(),
            owner["role"].as_str()
        ),
        (
            Some("chat.member_joined"),
            Some(chat),
            Some(ann.user_id),
            Some("owner")
        )
    );
    assert_eq!(
        (&owner["added_by"], &owner["last_seq"]),
        (&serde_json::Value::Null, &json!(0))
    );
    follow_topics(&app.context.bus, &mut events, std::slice::from_ref(&topic)).await?;
    app.post(
        &format!("/api/v1/chats/{chat}/join"),
        Some(&bob.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    // Joining is announced to Bob's own topic and to the chat's.
    let own = next_event(&mut events, &bob_topic).await?;
    assert_eq!(
        (own["type"].as_str(), own["user_id"].as_i64()),
        (Some("chat.member_joined"), Some(bob.user_id))
    );
    let joined = next_event(&mut events, &topic).await?;
    assert_eq!(
        (joined["type"].as_str(), joined["user_id"].as_i64()),
        (Some("chat.member_joined"), Some(bob.user_id))
    );
    assert_eq!(joined["username"], "bob");
    let sent = send(
        &app,
        &ann,
        chat,
        json!({"content": "hello", "client_id": "c1"}),
    )
    .await?;
    let message = next_event(&mut events, &topic).await?;
    assert_eq!(message["type"], "chat.message");
    assert_eq!(message["chat_id"], chat);
    assert_eq!(message["id"], sent["id"]);
    assert_eq!(message["seq"], 1);
    assert_eq!(message["message"], "hello");
    assert_eq!(message["sender"], "ann");
    assert_eq!(message["sender_id"], ann.user_id);
    assert_eq!(message["client_id"], "c1");
    let id = sent["id"].as_i64().unwrap_or_default();
    app.patch(
        &format!("/api/v1/chats/{chat}/messages/{id}"),
        Some(&ann.access_token),
        json!({"content": "hello!"}),
    )
    .await?
    .expect_status(200)?;
    let edited = next_event(&mut events, &topic).await?;
    assert_eq!(
        (edited["type"].as_str(), edited["message"].as_str()),
        (Some("chat.message_edited"), Some("hello!"))
    );
    app.post(
        &format!("/api/v1/chats/{chat}/read"),
        Some(&bob.access_token),
        json!({"seq": 1}),
    )
    .await?
    .expect_status(200)?;
    let read = next_event(&mut events, &topic).await?;
    assert_eq!(
        (
            read["type"].as_str(),
            read["user_id"].as_i64(),
            read["seq"].as_i64()
        ),
        (Some("chat.read"), Some(bob.user_id), Some(1))
    );
    app.delete(
        &format!("/api/v1/chats/{chat}/messages/{id}"),
        Some(&ann.access_token),
    )
    .await?
    .expect_status(204)?;
    let deleted = next_event(&mut events, &topic).await?;
    assert_eq!(
        (deleted["type"].as_str(), deleted["deleted_by"].as_i64()),
        (Some("chat.message_deleted"), Some(ann.user_id))
    );
    app.patch(
        &format!("/api/v1/chats/{chat}/members/{}", bob.user_id),
        Some(&ann.access_token),
        json!({"role": "admin"}),
    )
    .await?
    .expect_status(200)?;
    let role = next_event(&mut events, &topic).await?;
    assert_eq!(
        (role["type"].as_str(), role["role"].as_str()),
        (Some("chat.member_role_changed"), Some("admin"))
    );
    app.patch(
        &format!("/api/v1/chats/{chat}"),
        Some(&ann.access_token),
        json!({"name": "Renamed"}),
    )
    .await?
    .expect_status(200)?;
    let updated = next_event(&mut events, &topic).await?;
    assert_eq!(
        (updated["type"].as_str(), updated["name"].as_str()),
        (Some("chat.updated"), Some("Renamed"))
    );
    app.post(
        &format!("/api/v1/chats/{chat}/leave"),
        Some(&bob.access_token),
        json!({}),
    )
    .await?
    .expect_status(204)?;
    let left = next_event(&mut events, &topic).await?;
    assert_eq!(
        (left["type"].as_str(), left["reason"].as_str()),
        (Some("chat.member_left"), Some("left"))
    );
    // Personal notifications.
    let cy = app.register("cyd").await?;
    follow_topics(
        &app.context.bus,
        &mut events,
        &[format!("user.{}", cy.user_id)],
    )
    .await?;
    let request = app
        .post(
            "/api/v1/friends/requests",
            Some(&cy.access_token),
            json!({"user_id": ann.user_id}),
        )
        .await?;
    let note = next_event(&mut events, &format!("user.{}", ann.user_id)).await?;
    assert_eq!(
        (note["type"].as_str(), note["kind"].as_str()),
        (Some("notification"), Some("friend_request"))
    );
    assert_eq!(note["request_id"], request.json["id"]);
    app.request(
        actix_web::http::Method::PUT,
        &format!("/api/v1/chats/{chat}/members/{}", cy.user_id),
        Some(&ann.access_token),
        None,
    )
    .await?
    .expect_status(201)?;
    let cy_topic = format!("user.{}", cy.user_id);
    let own = next_event(&mut events, &cy_topic).await?;
    assert_eq!(own["type"], "chat.member_joined");
    let added = next_event(&mut events, &cy_topic).await?;
    assert_eq!(
        (added["kind"].as_str(), added["chat_id"].as_i64()),
        (Some("added_to_chat"), Some(chat))
    );
    app.delete(&format!("/api/v1/chats/{chat}"), Some(&ann.access_token))
        .await?
        .expect_status(204)?;
    let gone = loop {
        let event = next_event(&mut events, &topic).await?;
        if event["type"] == "chat.deleted" {
            break event;
        }
    };
    assert_eq!(gone["deleted_by"], ann.user_id);
    app.shutdown().await;
    Ok(())
}

/// The history route reads the session and the chat access in one cache round trip
/// (`history_json_for_token`); every refusal `AuthUser` gives elsewhere must still hold, in
/// the same order.
async fn the_history_route_refuses_every_bad_caller(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    send(&app, &ann, chat, json!({"content": "hello"})).await?;
    let outsider = app.register("cyd").await?;
    let path = format!("/api/v1/chats/{chat}/messages");
    let keys = JwtKeys::from_secret(TEST_JWT_SECRET.as_bytes());
    let bob_sid = verify_access(&keys, &bob.access_token)?.sid;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;

    app.get(&path, None)
        .await?
        .expect_problem(401, "missing_token")?;
    app.get(&path, Some("not-a-token"))
        .await?
        .expect_problem(401, "invalid_token")?;
    let expired = issue_access(&keys, UserId(bob.user_id), &bob_sid, now - 3600, now - 5)?;
    app.get(&path, Some(&expired))
        .await?
        .expect_problem(401, "token_expired")?;
    // A valid signature naming ann with bob's session: the session is bob's.
    let swapped = issue_access(&keys, UserId(ann.user_id), &bob_sid, now, now + 600)?;
    app.get(&path, Some(&swapped))
        .await?
        .expect_problem(401, "session_revoked")?;
    app.get(&path, Some(&outsider.access_token))
        .await?
        .expect_problem(403, "not_a_member")?;
    app.get("/api/v1/chats/999999/messages", Some(&bob.access_token))
        .await?
        .expect_problem(404, "not_found")?;
    let page = app.get(&path, Some(&bob.access_token)).await?;
    page.expect_status(200)?;
    assert_eq!(seqs(&page.json), vec![1]);

    app.post("/api/v1/auth/logout", Some(&bob.access_token), json!({}))
        .await?
        .expect_status(204)?;
    app.get(&path, Some(&bob.access_token))
        .await?
        .expect_problem(401, "session_revoked")?;
    app.shutdown().await;
    Ok(())
}

/// Pages served from the history cache since the app started.
fn kept_pages(app: &TestApp) -> u64 {
    app.context.history.stats().hits
}

/// The history route serves repeated pages from the process's memory, byte for byte what
/// the database read gave, and never serves one that misses an acknowledged send, edit
/// or deletion, or to a caller who lost access.
async fn kept_history_pages_match_the_database_and_follow_every_change(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    for i in 1..=30 {
        send(&app, &ann, chat, json!({"content": format!("m{i}")})).await?;
    }
    let path = format!("/api/v1/chats/{chat}/messages");
    let read = async |query: &str| -> anyhow::Result<String> {
        let page = app
            .get(&format!("{path}{query}"), Some(&bob.access_token))
            .await?;
        page.expect_status(200)?;
        Ok(page.text)
    };
    let newest = serde_json::from_str::<Value>(&read("?limit=4").await?)?;
    let cursor = newest["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let queries = [
        String::new(),
        "?limit=5".to_owned(),
        "?before_seq=20&limit=7".to_owned(),
        "?before_seq=3".to_owned(),
        "?before_seq=1".to_owned(),
        "?before_seq=900".to_owned(),
        "?after_seq=3&limit=4".to_owned(),
        "?after_seq=28".to_owned(),
        "?after_seq=30".to_owned(),
        "?limit=4&offset=6".to_owned(),
        "?offset=40".to_owned(),
        format!("?limit=4&cursor={cursor}"),
    ];
    // What a server that keeps nothing answers (same database) …
    let uncached = app.spawn_peer_with(|c| c.history_cache_bytes = 0).await?;
    let mut from_database = Vec::new();
    for query in &queries {
        let page = uncached
            .get(&format!("{path}{query}"), Some(&bob.access_token))
            .await?;
        page.expect_status(200)?;
        from_database.push(page.text);
    }
    assert_eq!(kept_pages(&uncached), 0);
    uncached.shutdown().await;
    // … is what this one serves: the first reads name the chat's history token, the
    // next ones keep what they read, the last ones are served from memory.
    for _ in 0..2 {
        for query in &queries {
            read(query).await?;
        }
    }
    let before = kept_pages(&app);
    for (query, expected) in queries.iter().zip(&from_database) {
        assert_eq!(&read(query).await?, expected, "page {query:?}");
    }
    assert_eq!(kept_pages(&app) - before, queries.len() as u64);
    let first = serde_json::from_str::<Value>(&from_database[0])?;
    assert_eq!(seqs(&first), (1..=30).rev().collect::<Vec<_>>());
    let metrics = app.get("/metrics", None).await?;
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l.starts_with("chat_history_cache_hits_total ") && !l.ends_with(" 0"))
    );

    // An acknowledged send is on the very next newest page.
    let sent = send(&app, &ann, chat, json!({"content": "m31"})).await?;
    let page = serde_json::from_str::<Value>(&read("?limit=3").await?)?;
    assert_eq!(seqs(&page), [31, 30, 29]);
    assert_eq!(page["items"][0]["id"], sent["id"]);
    // Edits and deletions of kept messages show at once.
    let (m25, m24) = (&first["items"][5], &first["items"][6]);
    assert_eq!(
        (m25["seq"].as_i64(), m24["seq"].as_i64()),
        (Some(25), Some(24))
    );
    app.patch(
        &format!("{path}/{}", m25["id"]),
        Some(&ann.access_token),
        json!({"content": "m25, edited"}),
    )
    .await?
    .expect_status(200)?;
    for _ in 0..3 {
        let page = serde_json::from_str::<Value>(&read("?before_seq=27&limit=4").await?)?;
        assert_eq!(page["items"][1]["content"], "m25, edited");
        assert_eq!(page["items"][2]["content"], "m24");
    }
    app.delete(&format!("{path}/{}", m24["id"]), Some(&ann.access_token))
        .await?
        .expect_status(204)?;
    for _ in 0..3 {
        let page = serde_json::from_str::<Value>(&read("?before_seq=27&limit=4").await?)?;
        assert_eq!(seqs(&page), [26, 25, 24, 23]);
        assert_eq!(page["items"][1]["content"], "m25, edited");
        assert!(page["items"][1]["edited_at"].is_string());
        assert_eq!(page["items"][2]["content"], "");
        assert!(page["items"][2]["deleted_at"].is_string());
    }
    // A member removed is refused, kept pages or not.
    app.delete(
        &format!("/api/v1/chats/{chat}/members/{}", bob.user_id),
        Some(&ann.access_token),
    )
    .await?
    .expect_status(204)?;
    app.get(&path, Some(&bob.access_token))
        .await?
        .expect_problem(403, "not_a_member")?;
    app.shutdown().await;
    Ok(())
}

/// Two instances on one database and Redis: pages kept by one are never served once
/// another has acknowledged a send, an edit or a deletion in that chat.
async fn peer_sees_every_acknowledged_history_change() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Postgres).await?;
    let peer = app.spawn_peer().await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    for i in 1..=10 {
        send(&app, &ann, chat, json!({"content": format!("m{i}")})).await?;
    }
    let path = format!("/api/v1/chats/{chat}/messages?limit=5");
    let read_on_peer = async || -> anyhow::Result<Value> {
        let page = peer.get(&path, Some(&bob.access_token)).await?;
        page.expect_status(200)?;
        Ok(page.json)
    };
    for _ in 0..3 {
        read_on_peer().await?;
    }
    assert!(kept_pages(&peer) > 0, "the peer keeps pages");
    let sent = send(&app, &ann, chat, json!({"content": "m11"})).await?;
    let page = read_on_peer().await?;
    assert_eq!(seqs(&page), [11, 10, 9, 8, 7]);
    assert_eq!(page["items"][0]["id"], sent["id"]);
    read_on_peer().await?;
    let kept = kept_pages(&peer);
    assert_eq!(seqs(&read_on_peer().await?), [11, 10, 9, 8, 7]);
    assert_eq!(kept_pages(&peer), kept + 1, "the new page is kept again");
    let m9 = &page["items"][2];
    app.patch(
        &format!("/api/v1/chats/{chat}/messages/{}", m9["id"]),
        Some(&ann.access_token),
        json!({"content": "m9, edited"}),
    )
    .await?
    .expect_status(200)?;
    assert_eq!(read_on_peer().await?["items"][2]["content"], "m9, edited");
    let m8 = &page["items"][3];
    app.delete(
        &format!("/api/v1/chats/{chat}/messages/{}", m8["id"]),
        Some(&ann.access_token),
    )
    .await?
    .expect_status(204)?;
    let page = read_on_peer().await?;
    assert_eq!(page["items"][3]["content"], "");
    assert!(page["items"][3]["deleted_at"].is_string());
    assert_eq!(page["items"][2]["content"], "m9, edited");
    peer.shutdown().await;
    app.shutdown().await;
    Ok(())
}
