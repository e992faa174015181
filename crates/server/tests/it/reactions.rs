//! Emoji reactions — through the real server, both modes: added and taken back over
//! REST and WebSocket (idempotent), counted with each reader's own `me` in history pages
//! (kept in memory or read from the database), the chat list and search, broadcast live
//! as `chat.reaction`; members only, emoji only, at most 20 different per message, none
//! on a deleted message.

use actix_web::http::Method;
use chat_test_support::{Backend, Session, TestApp, both_backends};
use serde_json::{Value, json};

both_backends!(
    reactions_are_counted_per_reader_everywhere_a_message_is_shown,
    reactions_travel_live_and_over_the_websocket,
    reactions_are_refused_to_outsiders_non_emoji_and_deleted_messages,
    a_message_takes_at_most_twenty_different_emoji,
);

/// `%F0%9F%91%8D` for 👍: how a client puts an emoji in a path.
fn encoded(emoji: &str) -> String {
    emoji.bytes().map(|b| format!("%{b:02X}")).collect()
}

async fn react(
    app: &TestApp,
    who: &Session,
    (chat, message): (i64, i64),
    emoji: &str,
    add: bool,
) -> anyhow::Result<chat_test_support::Response> {
    let method = if add { Method::PUT } else { Method::DELETE };
    app.request(
        method,
        &format!(
            "/api/v1/chats/{chat}/messages/{message}/reactions/{}",
            encoded(emoji)
        ),
        Some(&who.access_token),
        None,
    )
    .await
}

async fn send(app: &TestApp, who: &Session, chat: i64, text: &str) -> anyhow::Result<i64> {
    let sent = app.send_message(who, chat, text).await?;
    assert_eq!(sent["reactions"], json!([]), "{sent}");
    Ok(sent["id"].as_i64().unwrap_or_default())
}

/// The `reactions` of message `id` in `who`'s newest history page.
async fn in_history(app: &TestApp, who: &Session, chat: i64, id: i64) -> anyhow::Result<Value> {
    let page = app
        .get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&who.access_token),
        )
        .await?;
    page.expect_status(200)?;
    let item = page.json["items"]
        .as_array()
        .and_then(|items| items.iter().find(|m| m["id"] == id))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("message {id} not in {}", page.text))?;
    Ok(item["reactions"].clone())
}

fn tally(emoji: &str, count: i64, me: bool) -> Value {
    json!({"emoji": emoji, "count": count, "me": me})
}

async fn reactions_are_counted_per_reader_everywhere_a_message_is_shown(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let older = send(&app, &ann, chat, "an older message about rockets").await?;
    let id = send(&app, &ann, chat, "launch day").await?;
    // Read once before any reaction, so the page is kept in memory: a reaction must
    // still show on the next read.
    assert_eq!(in_history(&app, &bob, chat, id).await?, json!([]));

    let first = react(&app, &bob, (chat, id), "👍", true).await?;
    first.expect_status(200)?;
    assert_eq!(
        first.json,
        json!({"chat_id": chat, "message_id": id, "reactions": [tally("👍", 1, true)]})
    );
    // Idempotent: the same reaction again changes nothing.
    react(&app, &bob, (chat, id), "👍", true)
        .await?
        .expect_status(200)?;
    react(&app, &ann, (chat, id), "👍", true)
        .await?
        .expect_status(200)?;
    react(&app, &ann, (chat, id), "🚀", true)
        .await?
        .expect_status(200)?;
    react(&app, &bob, (chat, older), "🎉", true)
        .await?
        .expect_status(200)?;

    // Each reader sees the same counts and their own `me`, in the order first used;
    // twice each, so the second read is served from the kept page.
    for _ in 0..2 {
        assert_eq!(
            in_history(&app, &ann, chat, id).await?,
            json!([tally("👍", 2, true), tally("🚀", 1, true)])
        );
        assert_eq!(
            in_history(&app, &bob, chat, id).await?,
            json!([tally("👍", 2, true), tally("🚀", 1, false)])
        );
        assert_eq!(
            in_history(&app, &ann, chat, older).await?,
            json!([tally("🎉", 1, false)])
        );
    }
    // The chat list's last message and the chat's own view carry them too …
    let list = app.get("/api/v1/chats", Some(&bob.access_token)).await?;
    let item = list.json["items"]
        .as_array()
        .and_then(|items| items.iter().find(|c| c["id"] == chat))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        item["last_message"]["reactions"],
        json!([tally("👍", 2, true), tally("🚀", 1, false)]),
        "{}",
        list.text
    );
    let view = app
        .get(&format!("/api/v1/chats/{chat}"), Some(&ann.access_token))
        .await?;
    assert_eq!(
        view.json["last_message"]["reactions"],
        json!([tally("👍", 2, true), tally("🚀", 1, true)])
    );
    // … and so do search results.
    let found = app
        .get(
            &format!("/api/v1/chats/{chat}/messages/search?q=rockets"),
            Some(&ann.access_token),
        )
        .await?;
    assert_eq!(
        found.json["items"][0]["reactions"],
        json!([tally("🎉", 1, false)]),
        "{}",
        found.text
    );

    // Taking one back (twice: idempotent) leaves the others.
    for _ in 0..2 {
        let now = react(&app, &bob, (chat, id), "👍", false).await?;
        now.expect_status(200)?;
        assert_eq!(
            now.json["reactions"],
            json!([tally("👍", 1, false), tally("🚀", 1, false)])
        );
    }
    assert_eq!(
        in_history(&app, &bob, chat, id).await?,
        json!([tally("👍", 1, false), tally("🚀", 1, false)])
    );
    // A reaction nobody holds any more is gone from the list.
    react(&app, &ann, (chat, id), "🚀", false)
        .await?
        .expect_status(200)?;
    assert_eq!(
        in_history(&app, &ann, chat, id).await?,
        json!([tally("👍", 1, true)])
    );
    app.shutdown().await;
    Ok(())
}

async fn reactions_travel_live_and_over_the_websocket(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let id = send(&app, &ann, chat, "hello").await?;
    let mut anns = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;

    bobs.send(
        json!({"action": "add_reaction", "chat_id": chat, "message_id": id,
        "emoji": "❤️", "request_id": "r1"}),
    )
    .await?;
    let ack = bobs.recv_type("ack").await?;
    assert_eq!(
        (&ack["request_id"], &ack["message_id"], &ack["reactions"]),
        (&json!("r1"), &json!(id), &json!([tally("❤️", 1, true)])),
        "{ack}"
    );
    let event = anns.recv_type("chat.reaction").await?;
    assert_eq!(
        (
            &event["chat_id"],
            &event["message_id"],
            &event["user_id"],
            &event["emoji"],
            &event["added"],
            &event["count"]
        ),
        (
            &json!(chat),
            &json!(id),
            &json!(bob.user_id),
            &json!("❤️"),
            &json!(true),
            &json!(1)
        ),
        "{event}"
    );
    assert!(event["seq"].as_i64().is_some_and(|s| s > 0), "{event}");

    // A repeat changes nothing and is not broadcast; taking it back is.
    bobs.send(
        json!({"action": "add_reaction", "chat_id": chat, "message_id": id,
        "emoji": "❤️", "request_id": "r2"}),
    )
    .await?;
    bobs.recv_type("ack").await?;
    bobs.send(
        json!({"action": "remove_reaction", "chat_id": chat, "message_id": id,
        "emoji": "❤️", "request_id": "r3"}),
    )
    .await?;
    let ack = bobs.recv_type("ack").await?;
    assert_eq!(ack["reactions"], json!([]), "{ack}");
    let event = anns.recv_type("chat.reaction").await?;
    assert_eq!(
        (&event["added"], &event["count"]),
        (&json!(false), &json!(0)),
        "the repeat was not announced: {event}"
    );

    // retrieve_message shows reactions too.
    react(&app, &ann, (chat, id), "😂", true)
        .await?
        .expect_status(200)?;
    anns.send(json!({"action": "retrieve_message", "number": 5, "request_id": "h"}))
        .await?;
    let page = anns.recv_type("messages").await?;
    assert_eq!(
        page["data"]["messages"][0]["reactions"],
        json!([tally("😂", 1, true)]),
        "{page}"
    );
    // Bad frames are answered with an error, and the socket stays open.
    bobs.send(
        json!({"action": "add_reaction", "chat_id": chat, "message_id": id,
        "request_id": "e1"}),
    )
    .await?;
    let missing = bobs.recv_type("error").await?;
    assert_eq!(missing["code"], "missing_field", "{missing}");
    bobs.send(
        json!({"action": "add_reaction", "chat_id": chat, "message_id": id,
        "emoji": "lol", "request_id": "e2"}),
    )
    .await?;
    let invalid = bobs.recv_type("error").await?;
    assert_eq!(
        (invalid["code"].as_str(), invalid["request_id"].as_str()),
        (Some("validation_failed"), Some("e2"))
    );
    bobs.send(json!({"action": "ping", "request_id": "p"}))
        .await?;
    bobs.recv_type("pong").await?;
    app.shutdown().await;
    Ok(())
}

async fn reactions_are_refused_to_outsiders_non_emoji_and_deleted_messages(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let eve = app.register("eve").await?;
    let id = send(&app, &ann, chat, "hello").await?;
    // Not a member of a public group: may read it, may not react.
    react(&app, &eve, (chat, id), "👍", true)
        .await?
        .expect_problem(403, "not_a_member")?;
    // A private group's outsiders learn nothing of it.
    let private = app.create_group(&ann, "Secret", "private").await?;
    let hidden = send(&app, &ann, private, "psst").await?;
    react(&app, &eve, (private, hidden), "👍", true)
        .await?
        .expect_problem(404, "not_found")?;
    // No token, a message of another chat, no such message.
    let anonymous = app
        .request(
            Method::PUT,
            &format!(
                "/api/v1/chats/{chat}/messages/{id}/reactions/{}",
                encoded("👍")
            ),
            None,
            None,
        )
        .await?;
    assert_eq!(anonymous.status.as_u16(), 401);
    react(&app, &ann, (chat, hidden), "👍", true)
        .await?
        .expect_problem(404, "not_found")?;
    react(&app, &ann, (chat, id + 1000), "👍", true)
        .await?
        .expect_problem(404, "not_found")?;
    // Not an emoji (plain text, markup, two emoji with a space).
    for bad in ["ok", "<b>", "👍 👍"] {
        react(&app, &bob, (chat, id), bad, true)
            .await?
            .expect_problem(422, "validation_failed")?;
    }
    // A deleted message takes none, and loses the ones it had.
    react(&app, &bob, (chat, id), "👍", true)
        .await?
        .expect_status(200)?;
    app.delete(
        &format!("/api/v1/chats/{chat}/messages/{id}"),
        Some(&ann.access_token),
    )
    .await?
    .expect_status(204)?;
    react(&app, &bob, (chat, id), "🎉", true)
        .await?
        .expect_problem(409, "message_deleted")?;
    assert_eq!(in_history(&app, &bob, chat, id).await?, json!([]));
    app.shutdown().await;
    Ok(())
}

async fn a_message_takes_at_most_twenty_different_emoji(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let id = send(&app, &ann, chat, "vote").await?;
    // 😀 … 😓: twenty different emoji, ten from each (the budget allows 30 at once).
    let emoji: Vec<String> = (0x1F600u32..0x1F615)
        .filter_map(char::from_u32)
        .map(String::from)
        .collect();
    for (i, e) in emoji.iter().take(20).enumerate() {
        let who = if i % 2 == 0 { &ann } else { &bob };
        react(&app, who, (chat, id), e, true)
            .await?
            .expect_status(200)?;
    }
    react(&app, &bob, (chat, id), &emoji[20], true)
        .await?
        .expect_problem(409, "too_many_reactions")?;
    // One already there can still be chosen by another member.
    let joined = react(&app, &bob, (chat, id), &emoji[0], true).await?;
    joined.expect_status(200)?;
    assert_eq!(joined.json["reactions"][0], tally(&emoji[0], 2, true));
    assert_eq!(joined.json["reactions"].as_array().map(Vec::len), Some(20));
    app.shutdown().await;
    Ok(())
}
