//! The WebSocket twins of the feature routes — `search_messages`, `mute_chat` /
//! `unmute_chat`, `block_user` / `unblock_user` — through the real server, both modes:
//! the same service calls as REST, answered on the socket, refusals as `error` events.

use chat_test_support::{Backend, TestApp, both_backends};
use serde_json::json;

both_backends!(search_mute_and_block_work_over_the_websocket);

async fn search_mute_and_block_work_over_the_websocket(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    app.send_text(&ann, chat, "the quick brown fox").await?;
    app.send_text(&ann, chat, "nothing to see").await?;
    let other = app.create_group(&ann, "Other", "public").await?;
    app.join(&bob, other).await?;
    app.send_text(&ann, other, "a quick reply").await?;
    let mut bobs = app.ws("/ws", &bob.access_token).await?;

    // In one chat, and across mine.
    bobs.send(
        json!({"action": "search_messages", "chat_id": chat, "q": "quick", "request_id": "s1"}),
    )
    .await?;
    let found = bobs.recv_type("search_results").await?;
    assert_eq!(found["request_id"], "s1");
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["items"][0]["message"], "the quick brown fox");
    assert_eq!(found["next_cursor"], serde_json::Value::Null);
    bobs.send(json!({"action": "search_messages", "q": "quick", "limit": 1, "request_id": "s2"}))
        .await?;
    let first = bobs.recv_type("search_results").await?;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1), "{first}");
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    assert!(!cursor.is_empty(), "{first}");
    bobs.send(
        json!({"action": "search_messages", "q": "quick", "cursor": cursor, "request_id": "s3"}),
    )
    .await?;
    let second = bobs.recv_type("search_results").await?;
    assert_ne!(
        second["items"][0]["id"], first["items"][0]["id"],
        "{second}"
    );
    // No words: the same refusal as over REST.
    bobs.send(json!({"action": "search_messages", "q": "!!", "request_id": "s4"}))
        .await?;
    let refused = bobs.recv_type("error").await?;
    assert_eq!(
        (refused["code"].as_str(), refused["request_id"].as_str()),
        (Some("validation_failed"), Some("s4"))
    );

    // Mute and unmute: the chat list agrees.
    bobs.send(json!({"action": "mute_chat", "chat_id": chat, "request_id": "m1"}))
        .await?;
    let muted = bobs.recv_type("ack").await?;
    assert_eq!(
        (&muted["muted"], &muted["chat_id"]),
        (&json!(true), &json!(chat))
    );
    let list = app
        .get(&format!("/api/v1/chats/{chat}"), Some(&bob.access_token))
        .await?;
    assert_eq!(list.json["muted"], true);
    bobs.send(json!({"action": "unmute_chat", "chat_id": chat, "request_id": "m2"}))
        .await?;
    assert_eq!(bobs.recv_type("ack").await?["muted"], false);

    // Block and unblock: REST sees it; blocking oneself is refused.
    bobs.send(json!({"action": "block_user", "user_id": ann.user_id, "request_id": "b1"}))
        .await?;
    let blocked = bobs.recv_type("ack").await?;
    assert_eq!(
        (
            &blocked["user_id"],
            &blocked["blocked"],
            &blocked["request_id"]
        ),
        (&json!(ann.user_id), &json!(true), &json!("b1"))
    );
    let blocks = app
        .get("/api/v1/users/me/blocks", Some(&bob.access_token))
        .await?;
    assert_eq!(
        blocks.json["items"][0]["user"]["id"], ann.user_id,
        "{}",
        blocks.text
    );
    bobs.send(json!({"action": "unblock_user", "user_id": ann.user_id, "request_id": "b2"}))
        .await?;
    assert_eq!(bobs.recv_type("ack").await?["blocked"], false);
    bobs.send(json!({"action": "block_user", "user_id": bob.user_id, "request_id": "b3"}))
        .await?;
    assert_eq!(bobs.recv_type("error").await?["code"], "validation_failed");
    bobs.send(json!({"action": "block_user", "request_id": "b4"}))
        .await?;
    assert_eq!(bobs.recv_type("error").await?["code"], "missing_field");
    app.shutdown().await;
    Ok(())
}
