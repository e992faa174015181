//! Production mode with several instances on one Redis: each instance subscribes only to
//! the chats and users its sockets follow, and what crosses instances still arrives.

use chat_test_support::{Backend, Session, TestApp};
use serde_json::json;

async fn group(app: &TestApp, owner: &Session, members: &[&Session]) -> anyhow::Result<i64> {
    let chat = app.create_group(owner, "Room", "private").await?;
    for member in members {
        app.add_member(chat, member.user_id, &owner.access_token)
            .await?
            .expect_status(201)?;
    }
    Ok(chat)
}

#[actix_web::test]
async fn an_instance_receives_only_the_traffic_its_sockets_follow() -> anyhow::Result<()> {
    let a = TestApp::spawn(Backend::Postgres).await?;
    let b = a.spawn_peer().await?;
    receives_only_what_it_follows(a, b).await
}

/// Instance `b` receives the bus traffic of the chats its sockets follow, not the rest,
/// and drops a subscription when its last socket goes.
pub(crate) async fn receives_only_what_it_follows(a: TestApp, b: TestApp) -> anyhow::Result<()> {
    let (ann, bob) = (a.register("ann").await?, a.register("bob").await?);
    let followed = group(&a, &ann, &[&bob]).await?;
    let busy = group(&a, &ann, &[&bob]).await?;
    // Bob follows one chat, on instance B.
    let mut bobs = b
        .ws(&format!("/ws/chats/{followed}"), &bob.access_token)
        .await?;
    a.send_text(&ann, followed, "first").await?;
    assert_eq!(bobs.recv_type("chat.message").await?["message"], "first");
    let before = b.metric("chat_bus_messages_received_total").await?;
    for n in 0..30 {
        a.send_text(&ann, busy, &format!("busy {n}")).await?;
    }
    a.send_text(&ann, followed, "second").await?;
    // What B follows crosses over, in order …
    assert_eq!(bobs.recv_type("chat.message").await?["message"], "second");
    // … and the 30 messages of the chat no socket of B follows never reach B.
    let received = b.metric("chat_bus_messages_received_total").await? - before;
    assert!(
        (1.0..10.0).contains(&received),
        "instance B received {received} bus messages for 1 it needed"
    );
    // Presence, user topics and the chat: bob's user, the chat, and presence.*.
    assert_eq!(b.metric("chat_bus_subscriptions").await?, 3.0);
    drop(bobs);
    let mut left = b.metric("chat_bus_subscriptions").await?;
    for _ in 0..100 {
        if left == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = b.metric("chat_bus_subscriptions").await?;
    }
    assert_eq!(left, 1.0, "only presence.* is left once the socket is gone");
    b.shutdown().await;
    a.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn a_member_added_on_another_instance_hears_the_chat() -> anyhow::Result<()> {
    let a = TestApp::spawn(Backend::Postgres).await?;
    let b = a.spawn_peer().await?;
    let (ann, bob) = (a.register("ann").await?, a.register("bob").await?);
    // Bob's `/ws` socket is on B, which follows no chat of his yet.
    let mut bobs = b.ws("/ws", &bob.access_token).await?;
    bobs.send(json!({"action": "ping"})).await?;
    bobs.recv_type("pong").await?;
    // Ann, on A, makes a group with a history and adds Bob.
    let chat = group(&a, &ann, &[]).await?;
    a.send_text(&ann, chat, "before bob").await?;
    a.add_member(chat, bob.user_id, &ann.access_token)
        .await?
        .expect_status(201)?;
    let joined = bobs.recv_type("chat.member_joined").await?;
    assert_eq!(
        (
            joined["chat_id"].as_i64(),
            joined["user_id"].as_i64(),
            joined["last_seq"].as_i64()
        ),
        (Some(chat), Some(bob.user_id), Some(1))
    );
    let note = bobs.recv_type("notification").await?;
    assert_eq!(
        (note["kind"].as_str(), note["chat_id"].as_i64()),
        (Some("added_to_chat"), Some(chat))
    );
    // B learned of the membership on Bob's own topic (its `chat.member_joined`) and
    // follows the chat: the next messages reach him, in order, without a reconnect.
    for text in ["one", "two"] {
        a.send_text(&ann, chat, text).await?;
    }
    let first = bobs.recv_type_any(&["chat.message", "resync"]).await?;
    match first["type"].as_str() {
        // The first message passed before B's subscription was in place: the gap
        // is announced from the seq the membership began at.
        Some("resync") => {
            assert_eq!(
                (first["chat_id"].as_i64(), first["after_seq"].as_i64()),
                (Some(chat), Some(1))
            );
            assert_eq!(bobs.recv_type("chat.message").await?["message"], "two");
        }
        _ => {
            assert_eq!(
                (first["message"].as_str(), first["seq"].as_i64()),
                (Some("one"), Some(2))
            );
            assert_eq!(bobs.recv_type("chat.message").await?["message"], "two");
        }
    }
    b.shutdown().await;
    a.shutdown().await;
    Ok(())
}

/// A message sent right after a membership begins, with no message after it, reaches
/// the new member on another instance, or is announced as missed (`resync` from the
/// membership's start) once that instance's subscription is in place — never lost
/// without a word.
#[actix_web::test]
async fn a_message_racing_a_new_membership_reaches_the_member_or_is_announced() -> anyhow::Result<()>
{
    let a = TestApp::spawn(Backend::Postgres).await?;
    let b = a.spawn_peer().await?;
    let (ann, bob) = (a.register("ann").await?, a.register("bob").await?);
    let mut bobs = b.ws("/ws", &bob.access_token).await?;
    bobs.send(json!({"action": "ping"})).await?;
    bobs.recv_type("pong").await?;
    for round in 0..3 {
        let chat = group(&a, &ann, &[]).await?;
        a.send_text(&ann, chat, "before bob").await?;
        // The join and the message leave A back to back: B may subscribe to the chat
        // after the message passed.
        a.add_member(chat, bob.user_id, &ann.access_token)
            .await?
            .expect_status(201)?;
        a.send_text(&ann, chat, "right after").await?;
        let joined = bobs.recv_type("chat.member_joined").await?;
        assert_eq!(joined["chat_id"].as_i64(), Some(chat), "round {round}");
        let next = bobs.recv_type_any(&["chat.message", "resync"]).await?;
        let got = match next["type"].as_str() {
            Some("resync") => (next["chat_id"].as_i64(), next["after_seq"].as_i64()),
            _ => (next["chat_id"].as_i64(), next["seq"].as_i64()),
        };
        let expected = match next["type"].as_str() {
            Some("resync") => (Some(chat), Some(1)),
            _ => (Some(chat), Some(2)),
        };
        assert_eq!(got, expected, "round {round}: {next}");
    }
    b.shutdown().await;
    a.shutdown().await;
    Ok(())
}
