//! Blocking a user — through the real server, both modes: a blocked user cannot send
//! me friend requests, open a direct chat with me or post in ours (REST and a live
//! WebSocket), is told only "cannot message this user", and their notifications stop
//! reaching me; unblocking restores it.

use std::time::Duration;

use actix_web::http::Method;
use chat_test_support::{Backend, Session, TEST_PASSWORD, TestApp, both_backends};
use serde_json::{Value, json};

both_backends!(
    a_blocked_user_cannot_reach_me_until_unblocked,
    blocks_are_listed_and_each_side_has_its_own,
    a_blocked_users_notifications_do_not_reach_me,
    blocking_refuses_myself_unknown_users_and_anonymous_callers,
    a_block_lifted_keeps_a_declined_requests_cooldown,
    a_direct_chat_under_a_block_carries_no_presence,
);

async fn set_block(
    app: &TestApp,
    who: &Session,
    user_id: i64,
    blocked: bool,
) -> anyhow::Result<Value> {
    let method = if blocked { Method::PUT } else { Method::DELETE };
    let response = app
        .request(
            method,
            &format!("/api/v1/users/{user_id}/block"),
            Some(&who.access_token),
            None,
        )
        .await?;
    response.expect_status(200)?;
    assert_eq!(
        (
            response.json["user_id"].as_i64(),
            response.json["blocked"].as_bool()
        ),
        (Some(user_id), Some(blocked)),
        "{}",
        response.text
    );
    Ok(response.json)
}

async fn send(app: &TestApp, who: &Session, chat: i64, text: &str) -> anyhow::Result<u16> {
    let response = app
        .post(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&who.access_token),
            json!({"content": text}),
        )
        .await?;
    let status = response.status.as_u16();
    if status == 403 {
        response.expect_problem(403, "user_unreachable")?;
        assert_eq!(response.json["detail"], "cannot message this user");
    }
    Ok(status)
}

async fn friend_request(app: &TestApp, from: &Session, to: &Session) -> anyhow::Result<u16> {
    Ok(app
        .post(
            "/api/v1/friends/requests",
            Some(&from.access_token),
            json!({"user_id": to.user_id}),
        )
        .await?
        .status
        .as_u16())
}

async fn open_direct(app: &TestApp, from: &Session, to: &Session) -> anyhow::Result<i64> {
    let opened = app
        .post(
            "/api/v1/chats/direct",
            Some(&from.access_token),
            json!({"user_id": to.user_id}),
        )
        .await?;
    anyhow::ensure!(
        matches!(opened.status.as_u16(), 200 | 201),
        "direct chat: {}",
        opened.text
    );
    Ok(opened.json["id"].as_i64().unwrap_or_default())
}

async fn a_blocked_user_cannot_reach_me_until_unblocked(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    app.befriend(&bob, &ann).await?;
    let chat = open_direct(&app, &bob, &ann).await?;
    // Bob's live socket has sent there once (its next sends trust that check for a while).
    let mut bobs = app
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;
    bobs.send(json!({"action": "send_message", "message": "hi", "request_id": "r1"}))
        .await?;
    let ack = bobs.recv_type("ack").await?;
    assert_eq!(ack["request_id"], "r1");
    let hi = ack["message_id"].as_i64().unwrap_or_default();

    set_block(&app, &ann, bob.user_id, true).await?;
    set_block(&app, &ann, bob.user_id, true).await?;
    // Bob is told no more than that he cannot message Ann: over REST …
    assert_eq!(send(&app, &bob, chat, "hello?").await?, 403);
    // … and on the socket he already had (the block made it check in full again).
    tokio::time::sleep(Duration::from_millis(300)).await;
    bobs.send(json!({"action": "send_message", "message": "still?", "request_id": "r2"}))
        .await?;
    let refused = bobs.recv_type_any(&["ack", "error"]).await?;
    assert_eq!(
        (
            refused["type"].as_str(),
            refused["code"].as_str(),
            refused["request_id"].as_str()
        ),
        (Some("error"), Some("user_unreachable"), Some("r2")),
        "{refused}"
    );
    // Not even a typing notice goes through.
    bobs.send(json!({"action": "typing", "request_id": "t1"}))
        .await?;
    let typing = bobs.recv_type("error").await?;
    assert_eq!(
        (typing["code"].as_str(), typing["request_id"].as_str()),
        (Some("user_unreachable"), Some("t1"))
    );
    // Nor can he rewrite what he sent, or pull her into a group of his.
    app.patch(
        &format!("/api/v1/chats/{chat}/messages/{hi}"),
        Some(&bob.access_token),
        json!({"content": "hi, edited"}),
    )
    .await?
    .expect_problem(403, "user_unreachable")?;
    let group = app.create_group(&bob, "Bob's", "private").await?;
    app.add_member(group, ann.user_id, &bob.access_token)
        .await?
        .expect_problem(403, "user_unreachable")?;
    // Ann cannot post there either while she blocks him.
    assert_eq!(send(&app, &ann, chat, "bye").await?, 403);
    // Their friendship ended, and Bob's new requests are refused.
    let friends = app.get("/api/v1/friends", Some(&ann.access_token)).await?;
    assert_eq!(
        friends.json["items"].as_array().map(Vec::len),
        Some(0),
        "{}",
        friends.text
    );
    assert_eq!(friend_request(&app, &bob, &ann).await?, 403);
    // Nothing was stored: the history holds the one message sent before the block.
    let history = app
        .get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&ann.access_token),
        )
        .await?;
    assert_eq!(
        history.json["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        history.text
    );

    set_block(&app, &ann, bob.user_id, false).await?;
    assert_eq!(send(&app, &bob, chat, "hello again").await?, 201);
    assert_eq!(send(&app, &ann, chat, "welcome back").await?, 201);
    assert_eq!(friend_request(&app, &bob, &ann).await?, 201);
    app.shutdown().await;
    Ok(())
}

async fn blocks_are_listed_and_each_side_has_its_own(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.direct_requires_friendship = false).await?;
    let (ann, bob, cy) = (
        app.register("ann").await?,
        app.register("bob").await?,
        app.register("cyd").await?,
    );
    // A block stops a new direct chat before it exists.
    set_block(&app, &ann, cy.user_id, true).await?;
    let refused = app
        .post(
            "/api/v1/chats/direct",
            Some(&cy.access_token),
            json!({"user_id": ann.user_id}),
        )
        .await?;
    refused.expect_problem(403, "user_unreachable")?;
    let mine = app
        .post(
            "/api/v1/chats/direct",
            Some(&ann.access_token),
            json!({"user_id": cy.user_id}),
        )
        .await?;
    mine.expect_problem(403, "user_unreachable")?;
    set_block(&app, &ann, bob.user_id, true).await?;
    let list = app
        .get("/api/v1/users/me/blocks", Some(&ann.access_token))
        .await?;
    list.expect_status(200)?;
    let listed: Vec<i64> = list.json["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["user"]["id"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        listed,
        [bob.user_id, cy.user_id],
        "most recent first: {}",
        list.text
    );
    assert!(list.json["items"][0]["blocked_at"].is_string());
    assert!(
        list.json["items"][0]["user"].get("email").is_none(),
        "public fields only"
    );
    // A user I block does not learn it from their own list.
    let theirs = app
        .get("/api/v1/users/me/blocks", Some(&bob.access_token))
        .await?;
    assert_eq!(theirs.json["items"], json!([]));
    // Both block each other: one unblocking leaves the other's block standing.
    set_block(&app, &ann, cy.user_id, false).await?;
    let chat = open_direct(&app, &ann, &cy).await?;
    set_block(&app, &cy, ann.user_id, true).await?;
    set_block(&app, &ann, cy.user_id, true).await?;
    set_block(&app, &ann, cy.user_id, false).await?;
    assert_eq!(send(&app, &ann, chat, "hello").await?, 403);
    set_block(&app, &cy, ann.user_id, false).await?;
    assert_eq!(send(&app, &ann, chat, "hello").await?, 201);
    app.shutdown().await;
    Ok(())
}

async fn a_blocked_users_notifications_do_not_reach_me(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, cyd) = (
        app.register("ann").await?,
        app.register("bob").await?,
        app.register("cyd").await?,
    );
    chat_services::auth::create_admin(
        &app.context,
        chat_services::auth::RegisterInput {
            username: "root".to_owned(),
            email: "root@example.com".to_owned(),
            password: TEST_PASSWORD.to_owned(),
            display_name: None,
        },
    )
    .await?;
    let root = app.login("root", TEST_PASSWORD).await?;
    set_block(&app, &ann, bob.user_id, true).await?;
    set_block(&app, &ann, root.user_id, true).await?;
    let mut anns = app.ws("/ws", &ann.access_token).await?;
    // Bob cannot add Ann to his group at all.
    let bobs = app.create_group(&bob, "Bob's", "private").await?;
    app.add_member(bobs, ann.user_id, &bob.access_token)
        .await?
        .expect_problem(403, "user_unreachable")?;
    // A site admin she blocks still may (moderation), but his notice does not reach
    // her; Cyd's, sent after it, does.
    for (who, name) in [(&root, "Root's"), (&cyd, "Cyd's")] {
        let group = app.create_group(who, name, "private").await?;
        app.add_member(group, ann.user_id, &who.access_token)
            .await?
            .expect_status(201)?;
    }
    let note = anns.recv_type("notification").await?;
    assert_eq!(
        (note["kind"].as_str(), note["by_user_id"].as_i64()),
        (Some("added_to_chat"), Some(cyd.user_id)),
        "{note}"
    );
    // Blocking is not leaving: Ann is a member of the admin's group and reads it.
    let chats = app.get("/api/v1/chats", Some(&ann.access_token)).await?;
    assert_eq!(
        chats.json["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        chats.text
    );
    app.shutdown().await;
    Ok(())
}

async fn blocking_refuses_myself_unknown_users_and_anonymous_callers(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let ann = app.register("ann").await?;
    let path = |id: i64| format!("/api/v1/users/{id}/block");
    app.request(
        Method::PUT,
        &path(ann.user_id),
        Some(&ann.access_token),
        None,
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    app.request(Method::PUT, &path(999_999), Some(&ann.access_token), None)
        .await?
        .expect_problem(404, "not_found")?;
    app.request(Method::PUT, &path(ann.user_id + 1), None, None)
        .await?
        .expect_status(401)?;
    app.get("/api/v1/users/me/blocks", None)
        .await?
        .expect_status(401)?;
    // Lifting a block that is not there changes nothing.
    set_block(&app, &ann, 999_999, false).await?;
    app.shutdown().await;
    Ok(())
}

async fn a_block_lifted_keeps_a_declined_requests_cooldown(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let request = app
        .post(
            "/api/v1/friends/requests",
            Some(&ann.access_token),
            json!({"user_id": bob.user_id}),
        )
        .await?;
    request.expect_status(201)?;
    let id = request.json["id"].as_i64().unwrap_or_default();
    app.post(
        &format!("/api/v1/friends/requests/{id}/decline"),
        Some(&bob.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    // Blocking and unblocking Bob does not let Ann ask him again before the cooldown.
    set_block(&app, &ann, bob.user_id, true).await?;
    set_block(&app, &ann, bob.user_id, false).await?;
    app.post(
        "/api/v1/friends/requests",
        Some(&ann.access_token),
        json!({"user_id": bob.user_id}),
    )
    .await?
    .expect_problem(409, "recently_declined")?;
    app.shutdown().await;
    Ok(())
}

async fn a_direct_chat_under_a_block_carries_no_presence(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    app.befriend(&ann, &bob).await?;
    let chat = open_direct(&app, &ann, &bob).await?;
    set_block(&app, &ann, bob.user_id, true).await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;
    // Ann comes and goes: Bob, whom she blocks, is not told.
    let anns = app.ws("/ws", &ann.access_token).await?;
    // Nor do the lists show it, either way: the direct chat's member previews and member
    // list, and the chat's own view, say nothing of the other side's presence.
    for (who, other) in [(&bob, &ann), (&ann, &bob)] {
        let presence_in = |members: &Value| {
            members.as_array().and_then(|m| {
                m.iter()
                    .find(|m| m["user_id"] == other.user_id)
                    .map(|m| (m["online"].clone(), m["last_seen_at"].clone()))
            })
        };
        let list = app.get("/api/v1/chats", Some(&who.access_token)).await?;
        let items = list.json["items"].as_array().cloned().unwrap_or_default();
        let members_of = |id: i64| {
            items
                .iter()
                .find(|c| c["id"] == id)
                .map(|c| c["members"].clone())
                .unwrap_or_default()
        };
        assert_eq!(
            presence_in(&members_of(chat)),
            Some((Value::Null, Value::Null)),
            "{}",
            list.text
        );
        let view = app
            .get(&format!("/api/v1/chats/{chat}"), Some(&who.access_token))
            .await?;
        assert_eq!(
            presence_in(&view.json["members"]),
            Some((Value::Null, Value::Null))
        );
        let members = app
            .get(
                &format!("/api/v1/chats/{chat}/members"),
                Some(&who.access_token),
            )
            .await?;
        assert_eq!(
            presence_in(&members.json["items"]),
            Some((Value::Null, Value::Null)),
            "{}",
            members.text
        );
    }
    bobs.expect_none(&["presence"], Duration::from_millis(500))
        .await?;
    drop(anns);
    bobs.expect_none(&["presence"], Duration::from_millis(500))
        .await?;
    // Unblocked, their direct chat carries it again.
    set_block(&app, &ann, bob.user_id, false).await?;
    let _anns = app.ws("/ws", &ann.access_token).await?;
    let seen = bobs.recv_type("presence").await?;
    assert_eq!(
        (seen["user_id"].as_i64(), seen["online"].as_bool()),
        (Some(ann.user_id), Some(true)),
        "{seen}"
    );
    app.shutdown().await;
    Ok(())
}
