//! `@username` mentions — through the real server, both modes: resolved to members when
//! a message is sent (REST or WebSocket) and stored with it, a `notification` to each
//! mentioned member's `/ws` (not when they muted the chat or block the sender), and an
//! unread-mentions count per chat in the chat list that reading and deletion bring down.
//! Naming someone who is not a member does nothing and tells the sender nothing.

use actix_web::http::Method;
use chat_test_support::{Backend, Session, TestApp, both_backends};
use serde_json::{Value, json};

both_backends!(
    mentions_are_resolved_stored_notified_and_counted,
    muted_chats_and_blocked_senders_do_not_notify,
);

/// `unread_mentions` of `chat` in `who`'s chat list.
async fn unread_mentions(app: &TestApp, who: &Session, chat: i64) -> anyhow::Result<Value> {
    let list = app.get("/api/v1/chats", Some(&who.access_token)).await?;
    list.expect_status(200)?;
    let item = list.json["items"]
        .as_array()
        .and_then(|items| items.iter().find(|c| c["id"] == chat))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("chat {chat} not listed: {}", list.text))?;
    Ok(item["unread_mentions"].clone())
}

async fn mentions_are_resolved_stored_notified_and_counted(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let cyd = app.register("cyd").await?;
    app.join(&cyd, chat).await?;
    // Dan exists but is not in the chat.
    let dan = app.register("dan").await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;
    let mut dans = app.ws("/ws", &dan.access_token).await?;

    let sent = app
        .send_message(
            &ann,
            chat,
            "hi @Bob and @cyd. Also @dan, @nobody, @ann and mail bob@example.com",
        )
        .await?;
    let mut expected = vec![bob.user_id, cyd.user_id];
    expected.sort_unstable();
    // Only members are mentioned (not the sender, not Dan, not a name nobody has): the
    // answer is the same whether a named user exists or not.
    assert_eq!(sent["mentions"], json!(expected), "{sent}");
    let id = sent["id"].as_i64().unwrap_or_default();
    let seq = sent["seq"].as_i64().unwrap_or_default();

    // Bob hears the message (with its mentions) and a notification on his /ws.
    let live = bobs.recv_type("chat.message").await?;
    assert_eq!(live["mentions"], json!(expected), "{live}");
    let note = bobs.recv_type("notification").await?;
    assert_eq!(
        (
            note["kind"].as_str(),
            note["chat_id"].as_i64(),
            note["message_id"].as_i64(),
            note["seq"].as_i64(),
            note["from_user_id"].as_i64(),
            note["from_username"].as_str(),
        ),
        (
            Some("mention"),
            Some(chat),
            Some(id),
            Some(seq),
            Some(ann.user_id),
            Some("ann"),
        ),
        "{note}"
    );
    assert!(
        note["excerpt"]
            .as_str()
            .is_some_and(|e| e.starts_with("hi @Bob")),
        "{note}"
    );
    // Mentions are stored: history shows them as sent.
    let page = app
        .get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&cyd.access_token),
        )
        .await?;
    assert_eq!(page.json["items"][0]["mentions"], json!(expected));

    // A mention over the WebSocket reaches Ann the same way.
    let mut anns = app.ws("/ws", &ann.access_token).await?;
    bobs.send(json!({"action": "send_message", "chat_id": chat,
        "message": "thanks @ann", "request_id": "s"}))
        .await?;
    let ack = bobs.recv_type("ack").await?;
    let note = anns.recv_type("notification").await?;
    assert_eq!(
        (note["kind"].as_str(), note["message_id"].as_i64()),
        (Some("mention"), ack["message_id"].as_i64()),
        "{note}"
    );

    // The chat list counts unread mentions per member.
    assert_eq!(unread_mentions(&app, &bob, chat).await?, 1);
    assert_eq!(unread_mentions(&app, &cyd, chat).await?, 1);
    assert_eq!(unread_mentions(&app, &ann, chat).await?, 1);
    // Reading past it clears it; deleting a message takes its mention away.
    app.post(
        &format!("/api/v1/chats/{chat}/read"),
        Some(&bob.access_token),
        json!({"seq": seq}),
    )
    .await?
    .expect_status(200)?;
    assert_eq!(unread_mentions(&app, &bob, chat).await?, 0);
    app.request(
        Method::DELETE,
        &format!("/api/v1/chats/{chat}/messages/{id}"),
        Some(&ann.access_token),
        None,
    )
    .await?
    .expect_status(204)?;
    assert_eq!(unread_mentions(&app, &cyd, chat).await?, 0);
    let page = app
        .get(
            &format!("/api/v1/chats/{chat}/messages?after_seq=0"),
            Some(&cyd.access_token),
        )
        .await?;
    assert_eq!(page.json["items"][0]["id"], id, "{}", page.text);
    assert_eq!(
        page.json["items"][0]["mentions"],
        json!([]),
        "a deleted message names no one"
    );
    // Dan, who is not a member, heard nothing: the first thing he is told is his own
    // mention once he has joined.
    app.join(&dan, chat).await?;
    let later = app.send_message(&ann, chat, "welcome @dan").await?;
    let note = dans.recv_type("notification").await?;
    assert_eq!(
        (note["kind"].as_str(), note["message_id"].as_i64()),
        (Some("mention"), later["id"].as_i64()),
        "{note}"
    );
    app.shutdown().await;
    Ok(())
}

async fn muted_chats_and_blocked_senders_do_not_notify(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let cyd = app.register("cyd").await?;
    app.join(&cyd, chat).await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;
    let mut cyds = app.ws("/ws", &cyd.access_token).await?;
    // Cyd mutes the chat; Bob blocks Ann.
    app.request(
        Method::PUT,
        &format!("/api/v1/chats/{chat}/mute"),
        Some(&cyd.access_token),
        None,
    )
    .await?
    .expect_status(200)?;
    app.request(
        Method::PUT,
        &format!("/api/v1/users/{}/block", ann.user_id),
        Some(&bob.access_token),
        None,
    )
    .await?
    .expect_status(200)?;
    let quiet = app.send_message(&ann, chat, "@bob @cyd look").await?;
    assert_eq!(
        quiet["mentions"].as_array().map(Vec::len),
        Some(2),
        "still mentioned: {quiet}"
    );
    // Bob's first notification is Cyd's mention, sent after Ann's.
    let from_cyd = app.send_message(&cyd, chat, "@bob over here").await?;
    let note = bobs.recv_type("notification").await?;
    assert_eq!(
        (note["kind"].as_str(), note["message_id"].as_i64()),
        (Some("mention"), from_cyd["id"].as_i64()),
        "{note}"
    );
    // Cyd unmutes: her first notification is the mention after that.
    app.request(
        Method::DELETE,
        &format!("/api/v1/chats/{chat}/mute"),
        Some(&cyd.access_token),
        None,
    )
    .await?
    .expect_status(200)?;
    let loud = app.send_message(&bob, chat, "@cyd ping").await?;
    let note = cyds.recv_type("notification").await?;
    assert_eq!(
        (note["kind"].as_str(), note["message_id"].as_i64()),
        (Some("mention"), loud["id"].as_i64()),
        "{note}"
    );
    // Muting stops the notice, not the count.
    assert_eq!(unread_mentions(&app, &cyd, chat).await?, 2);
    app.shutdown().await;
    Ok(())
}
