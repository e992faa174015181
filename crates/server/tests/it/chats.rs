//! Friends, direct chats and groups — through the real server, both modes.

use chat_test_support::{Backend, Session, TestApp, both_backends};
use serde_json::{Value, json};

both_backends!(
    friend_requests_accept_decline_and_remove,
    crossing_friend_requests_make_one_friendship,
    direct_chats_need_friendship_and_are_unique_per_pair,
    concurrent_direct_chat_creation_makes_one_chat,
    direct_chats_without_the_friendship_rule,
    group_lifecycle_and_permission_matrix,
    ownership_can_be_handed_over,
    site_admins_manage_any_groups_members,
    a_removed_member_is_refused_on_the_very_next_request,
    chat_list_is_ordered_by_activity_with_unread_counts,
    admin_endpoints_list_and_deactivate,
    probing_the_next_ids_does_not_hide_new_chats_or_users,
    friends_and_members_carry_presence_and_read_markers,
    a_member_mutes_and_unmutes_a_chat,
);

/// `muted` of `chat` in `who`'s chat list.
async fn muted_in_list(app: &TestApp, who: &Session, chat: i64) -> anyhow::Result<Value> {
    let listed = app.get("/api/v1/chats", Some(&who.access_token)).await?;
    listed.expect_status(200)?;
    let item = listed.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| item["id"] == chat)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("chat {chat} is not in {}", listed.text))?;
    Ok(item["muted"].clone())
}

/// Muting is a member's own setting: shown in their list and chat view only,
/// idempotent, refused to outsiders as any member-only action is.
async fn a_member_mutes_and_unmutes_a_chat(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let path = format!("/api/v1/chats/{chat}/mute");
    assert_eq!(muted_in_list(&app, &ann, chat).await?, json!(false));
    for _ in 0..2 {
        let muted = app
            .request(
                actix_web::http::Method::PUT,
                &path,
                Some(&ann.access_token),
                None,
            )
            .await?;
        muted.expect_status(200)?;
        assert_eq!(muted.json, json!({"chat_id": chat, "muted": true}));
    }
    assert_eq!(muted_in_list(&app, &ann, chat).await?, json!(true));
    let view = app
        .get(&format!("/api/v1/chats/{chat}"), Some(&ann.access_token))
        .await?;
    assert_eq!(view.json["muted"], json!(true), "{}", view.text);
    assert_eq!(
        muted_in_list(&app, &bob, chat).await?,
        json!(false),
        "another member's setting is their own"
    );
    // Muted, ann still gets the chat's messages.
    let mut anns = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    app.send_text(&bob, chat, "still heard").await?;
    assert_eq!(
        anns.recv_type("chat.message").await?["message"],
        "still heard"
    );
    let unmuted = app.delete(&path, Some(&ann.access_token)).await?;
    unmuted.expect_status(200)?;
    assert_eq!(unmuted.json["muted"], json!(false));
    assert_eq!(muted_in_list(&app, &ann, chat).await?, json!(false));
    // Outsiders: a public group's non-member is told so; a private group does not exist
    // for them; no token is no answer at all.
    let cy = app.register("cyd").await?;
    app.request(
        actix_web::http::Method::PUT,
        &path,
        Some(&cy.access_token),
        None,
    )
    .await?
    .expect_problem(403, "not_a_member")?;
    let private = app.create_group(&ann, "Hidden", "private").await?;
    app.request(
        actix_web::http::Method::PUT,
        &format!("/api/v1/chats/{private}/mute"),
        Some(&cy.access_token),
        None,
    )
    .await?
    .expect_problem(404, "not_found")?;
    app.delete(&path, None)
        .await?
        .expect_problem(401, "missing_token")?;
    app.shutdown().await;
    Ok(())
}

/// The one member or friend named `user_id` in a list answer's items.
fn person(items: &Value, user_id: i64) -> anyhow::Result<Value> {
    items
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| item["user_id"] == user_id || item["user"]["id"] == user_id)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("user {user_id} is not in {items}"))
}

/// Presence and read positions a client needs at start-up, before any event: a friend
/// or member already online shows online (read from the socket counters, shared by
/// every instance), offline with `last_seen_at` once their last socket closed; each
/// member's `last_read_seq`, for members only.
async fn friends_and_members_carry_presence_and_read_markers(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
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
    let members_path = format!("/api/v1/chats/{chat}/members");

    // Nobody connected yet.
    let friends = app.get("/api/v1/friends", Some(&ann.access_token)).await?;
    let bob_as_friend = person(&friends.json["items"], bob.user_id)?;
    assert_eq!(bob_as_friend["online"], false, "{}", friends.text);
    // Sign-up and log-in count as activity too.
    let seen_before = bob_as_friend["last_seen_at"].clone();
    let members = app.get(&members_path, Some(&ann.access_token)).await?;
    members.expect_status(200)?;
    for user in [ann.user_id, bob.user_id] {
        let member = person(&members.json["items"], user)?;
        assert_eq!(
            (&member["online"], &member["last_read_seq"]),
            (&json!(false), &json!(0)),
            "{}",
            members.text
        );
    }

    // Bob connects (on another instance, in production mode: the counters are shared),
    // and reads Ann's two messages.
    let peer = match backend {
        Backend::Postgres => Some(app.spawn_peer().await?),
        Backend::Sqlite => None,
    };
    let instance = peer.as_ref().unwrap_or(&app);
    let mut bobs = instance.ws("/ws", &bob.access_token).await?;
    // A pong proves the socket is counted (it is, before frames are read).
    bobs.send(json!({"action": "ping"})).await?;
    bobs.recv_type("pong").await?;
    for text in ["one", "two"] {
        app.post(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&ann.access_token),
            json!({"content": text}),
        )
        .await?
        .expect_status(201)?;
    }
    app.post(
        &format!("/api/v1/chats/{chat}/read"),
        Some(&bob.access_token),
        json!({"seq": 2}),
    )
    .await?
    .expect_status(200)?;

    let friends = app.get("/api/v1/friends", Some(&ann.access_token)).await?;
    assert_eq!(
        person(&friends.json["items"], bob.user_id)?["online"],
        true,
        "{}",
        friends.text
    );
    let members = app.get(&members_path, Some(&ann.access_token)).await?;
    let (ann_member, bob_member) = (
        person(&members.json["items"], ann.user_id)?,
        person(&members.json["items"], bob.user_id)?,
    );
    assert_eq!(
        (&bob_member["online"], &bob_member["last_read_seq"]),
        (&json!(true), &json!(2)),
        "{}",
        members.text
    );
    assert_eq!(
        (&ann_member["online"], &ann_member["last_read_seq"]),
        (&json!(false), &json!(0)),
        "{}",
        members.text
    );
    // The same in the chat list's and the chat's member previews.
    let list = app.get("/api/v1/chats", Some(&ann.access_token)).await?;
    let listed = list.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == chat)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("chat {chat} not listed: {}", list.text))?;
    let previewed = person(&listed["members"], bob.user_id)?;
    assert_eq!(
        (&previewed["online"], &previewed["last_read_seq"]),
        (&json!(true), &json!(2))
    );
    let one = app
        .get(&format!("/api/v1/chats/{chat}"), Some(&ann.access_token))
        .await?;
    let previewed = person(&one.json["members"], bob.user_id)?;
    assert_eq!(
        (&previewed["online"], &previewed["last_read_seq"]),
        (&json!(true), &json!(2))
    );

    // Members only: someone outside the group sees neither presence nor read markers.
    let cyd = app.register("cyd").await?;
    app.get(&members_path, Some(&cyd.access_token))
        .await?
        .expect_problem(403, "not_a_member")?;

    // Bob's socket closes: offline, with the time he was last seen.
    bobs.close().await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let gone = loop {
        let friends = app.get("/api/v1/friends", Some(&ann.access_token)).await?;
        let bob_as_friend = person(&friends.json["items"], bob.user_id)?;
        // Offline first, then the time recorded.
        if bob_as_friend["online"] == false
            && bob_as_friend["last_seen_at"].is_string()
            && bob_as_friend["last_seen_at"] != seen_before
        {
            break bob_as_friend;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "Bob never went offline: {}",
            friends.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let members = app.get(&members_path, Some(&ann.access_token)).await?;
    let bob_member = person(&members.json["items"], bob.user_id)?;
    assert_eq!(bob_member["online"], false, "{}", members.text);
    assert_eq!(bob_member["last_seen_at"], gone["last_seen_at"]);
    if let Some(peer) = peer {
        peer.shutdown().await;
    }
    app.shutdown().await;
    Ok(())
}

async fn probing_the_next_ids_does_not_hide_new_chats_or_users(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, prober) = (app.register("ann").await?, app.register("prober").await?);
    let first = app.create_group(&ann, "First", "public").await?;
    // The next chat and user ids do not exist yet: asking caches their absence …
    app.get(
        &format!("/api/v1/chats/{}", first + 1),
        Some(&prober.access_token),
    )
    .await?
    .expect_problem(404, "not_found")?;
    app.post(
        "/api/v1/friends/requests",
        Some(&prober.access_token),
        json!({"user_id": prober.user_id + 1}),
    )
    .await?
    .expect_problem(404, "not_found")?;
    // … which must not hide them once they are created.
    let second = app.create_group(&ann, "Second", "public").await?;
    assert_eq!(second, first + 1);
    app.get(&format!("/api/v1/chats/{second}"), Some(&ann.access_token))
        .await?
        .expect_status(200)?;
    app.post(
        &format!("/api/v1/chats/{second}/messages"),
        Some(&ann.access_token),
        json!({"content": "mine"}),
    )
    .await?
    .expect_status(201)?;
    let newcomer = app.register("newcomer").await?;
    assert_eq!(newcomer.user_id, prober.user_id + 1);
    app.post(
        "/api/v1/friends/requests",
        Some(&prober.access_token),
        json!({"user_id": newcomer.user_id}),
    )
    .await?
    .expect_status(201)?;
    app.shutdown().await;
    Ok(())
}

fn ids(list: &Value, field: &str) -> Vec<i64> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v[field].as_i64())
        .collect()
}

async fn friend_requests_accept_decline_and_remove(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, cy) = (
        app.register("ann").await?,
        app.register("bob").await?,
        app.register("cyd").await?,
    );
    let sent = app
        .post(
            "/api/v1/friends/requests",
            Some(&ann.access_token),
            json!({"user_id": bob.user_id}),
        )
        .await?;
    sent.expect_status(201)?;
    assert_eq!(
        (
            sent.json["status"].as_str(),
            sent.json["from_user"]["id"].as_i64()
        ),
        (Some("pending"), Some(ann.user_id))
    );
    let request_id = sent.json["id"].as_i64().unwrap_or_default();
    // Asking again changes nothing.
    let again = app
        .post(
            "/api/v1/friends/requests",
            Some(&ann.access_token),
            json!({"user_id": bob.user_id}),
        )
        .await?;
    again.expect_status(200)?;
    assert_eq!(again.json["id"], request_id);
    let bobs = app
        .get("/api/v1/friends/requests", Some(&bob.access_token))
        .await?;
    assert_eq!(ids(&bobs.json["incoming"], "id"), [request_id]);
    let anns = app
        .get("/api/v1/friends/requests", Some(&ann.access_token))
        .await?;
    assert_eq!(ids(&anns.json["outgoing"], "id"), [request_id]);
    // Only the addressee answers.
    app.post(
        &format!("/api/v1/friends/requests/{request_id}/accept"),
        Some(&ann.access_token),
        json!({}),
    )
    .await?
    .expect_problem(403, "own_request")?;
    app.post(
        &format!("/api/v1/friends/requests/{request_id}/accept"),
        Some(&cy.access_token),
        json!({}),
    )
    .await?
    .expect_problem(404, "not_found")?;
    let accepted = app
        .post(
            &format!("/api/v1/friends/requests/{request_id}/accept"),
            Some(&bob.access_token),
            json!({}),
        )
        .await?;
    accepted.expect_status(200)?;
    assert_eq!(accepted.json["status"], "accepted");
    app.post(
        &format!("/api/v1/friends/requests/{request_id}/decline"),
        Some(&bob.access_token),
        json!({}),
    )
    .await?
    .expect_problem(409, "not_pending")?;
    let friends = app.get("/api/v1/friends", Some(&ann.access_token)).await?;
    let friend_ids: Vec<i64> = friends.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["user"]["id"].as_i64())
        .collect();
    assert_eq!(friend_ids, [bob.user_id]);
    app.post(
        "/api/v1/friends/requests",
        Some(&bob.access_token),
        json!({"user_id": ann.user_id}),
    )
    .await?
    .expect_problem(409, "already_friends")?;
    // Decline, then ask again.
    let to_cy = app
        .post(
            "/api/v1/friends/requests",
            Some(&ann.access_token),
            json!({"user_id": cy.user_id}),
        )
        .await?;
    let cy_request = to_cy.json["id"].as_i64().unwrap_or_default();
    let declined = app
        .post(
            &format!("/api/v1/friends/requests/{cy_request}/decline"),
            Some(&cy.access_token),
            json!({}),
        )
        .await?;
    assert_eq!(declined.json["status"], "declined");
    // The sender waits a day (hardening_auth.rs tests the wait); who declined may ask.
    app.post(
        "/api/v1/friends/requests",
        Some(&ann.access_token),
        json!({"user_id": cy.user_id}),
    )
    .await?
    .expect_problem(409, "recently_declined")?;
    app.post(
        "/api/v1/friends/requests",
        Some(&cy.access_token),
        json!({"user_id": ann.user_id}),
    )
    .await?
    .expect_status(201)?;
    // Either side removes a friendship.
    app.delete(
        &format!("/api/v1/friends/{}", ann.user_id),
        Some(&bob.access_token),
    )
    .await?
    .expect_status(204)?;
    app.delete(
        &format!("/api/v1/friends/{}", ann.user_id),
        Some(&bob.access_token),
    )
    .await?
    .expect_problem(404, "not_found")?;
    let friends = app.get("/api/v1/friends", Some(&ann.access_token)).await?;
    assert_eq!(friends.json["items"].as_array().map(Vec::len), Some(0));
    // Unhappy paths.
    app.post(
        "/api/v1/friends/requests",
        Some(&ann.access_token),
        json!({"user_id": ann.user_id}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    app.post(
        "/api/v1/friends/requests",
        Some(&ann.access_token),
        json!({"user_id": 987654}),
    )
    .await?
    .expect_problem(404, "not_found")?;
    app.post(
        "/api/v1/friends/requests",
        Some(&ann.access_token),
        json!({"user_id": "x"}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    app.get("/api/v1/friends", None)
        .await?
        .expect_problem(401, "missing_token")?;
    app.shutdown().await;
    Ok(())
}

async fn crossing_friend_requests_make_one_friendship(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    // Bob asks; Ann "asks" back, which accepts Bob's request.
    app.post(
        "/api/v1/friends/requests",
        Some(&bob.access_token),
        json!({"user_id": ann.user_id}),
    )
    .await?
    .expect_status(201)?;
    let back = app
        .post(
            "/api/v1/friends/requests",
            Some(&ann.access_token),
            json!({"user_id": bob.user_id}),
        )
        .await?;
    back.expect_status(200)?;
    assert_eq!(back.json["status"], "accepted");
    // Both at once, in the other pair: one friendship, no error.
    let (cy, dee) = (app.register("cyd").await?, app.register("dee").await?);
    let (a, b) = futures_util::future::join(
        app.post(
            "/api/v1/friends/requests",
            Some(&cy.access_token),
            json!({"user_id": dee.user_id}),
        ),
        app.post(
            "/api/v1/friends/requests",
            Some(&dee.access_token),
            json!({"user_id": cy.user_id}),
        ),
    )
    .await;
    assert!(a?.status.is_success() && b?.status.is_success());
    let requests = app
        .get("/api/v1/friends/requests", Some(&cy.access_token))
        .await?;
    let friends = app.get("/api/v1/friends", Some(&cy.access_token)).await?;
    let pending = requests.json["incoming"].as_array().map_or(0, Vec::len)
        + requests.json["outgoing"].as_array().map_or(0, Vec::len);
    let friend_count = friends.json["items"].as_array().map_or(0, Vec::len);
    assert_eq!(
        pending + friend_count,
        1,
        "exactly one relation: {} / {}",
        requests.text,
        friends.text
    );
    app.shutdown().await;
    Ok(())
}

async fn direct_chats_need_friendship_and_are_unique_per_pair(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    app.post(
        "/api/v1/chats/direct",
        Some(&ann.access_token),
        json!({"user_id": bob.user_id}),
    )
    .await?
    .expect_problem(403, "friendship_required")?;
    app.befriend(&ann, &bob).await?;
    let created = app
        .post(
            "/api/v1/chats/direct",
            Some(&ann.access_token),
            json!({"user_id": bob.user_id}),
        )
        .await?;
    created.expect_status(201)?;
    let chat_id = created.json["id"].as_i64().unwrap_or_default();
    assert_eq!(created.json["kind"], "direct");
    assert_eq!(created.json["member_count"], 2);
    assert_eq!(created.json["ws_url"], format!("/ws/chats/{chat_id}"));
    let mut members = ids(&created.json["members"], "user_id");
    members.sort_unstable();
    assert_eq!(members, [ann.user_id, bob.user_id]);
    let again = app
        .post(
            "/api/v1/chats/direct",
            Some(&bob.access_token),
            json!({"user_id": ann.user_id}),
        )
        .await?;
    again.expect_status(200)?;
    assert_eq!(again.json["id"], chat_id);
    app.post(
        "/api/v1/chats/direct",
        Some(&ann.access_token),
        json!({"user_id": ann.user_id}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    app.post(
        "/api/v1/chats/direct",
        Some(&ann.access_token),
        json!({"user_id": 424242}),
    )
    .await?
    .expect_problem(404, "not_found")?;
    // Direct chats have no settings, members to add, or way out.
    app.patch(
        &format!("/api/v1/chats/{chat_id}"),
        Some(&ann.access_token),
        json!({"name": "x"}),
    )
    .await?
    .expect_problem(403, "direct_chat")?;
    app.post(
        &format!("/api/v1/chats/{chat_id}/leave"),
        Some(&ann.access_token),
        json!({}),
    )
    .await?
    .expect_problem(403, "direct_chat")?;
    let cy = app.register("cyd").await?;
    app.request(
        actix_web::http::Method::PUT,
        &format!("/api/v1/chats/{chat_id}/members/{}", cy.user_id),
        Some(&ann.access_token),
        None,
    )
    .await?
    .expect_problem(403, "direct_chat")?;
    app.get(&format!("/api/v1/chats/{chat_id}"), Some(&cy.access_token))
        .await?
        .expect_problem(404, "not_found")?;
    app.shutdown().await;
    Ok(())
}

async fn concurrent_direct_chat_creation_makes_one_chat(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.direct_requires_friendship = false).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let opens = (0..6).map(|i| {
        let (me, other) = if i % 2 == 0 {
            (&ann, &bob)
        } else {
            (&bob, &ann)
        };
        app.post(
            "/api/v1/chats/direct",
            Some(&me.access_token),
            json!({"user_id": other.user_id}),
        )
    });
    let mut chat_ids = Vec::new();
    let mut created = 0;
    for response in futures_util::future::join_all(opens).await {
        let response = response?;
        assert!(response.status.is_success(), "{}", response.text);
        created += usize::from(response.status.as_u16() == 201);
        chat_ids.push(response.json["id"].as_i64().unwrap_or_default());
    }
    chat_ids.dedup();
    assert_eq!(chat_ids.len(), 1, "one chat per pair, got {chat_ids:?}");
    assert_eq!(created, 1);
    let list = app.get("/api/v1/chats", Some(&ann.access_token)).await?;
    assert_eq!(list.json["items"].as_array().map(Vec::len), Some(1));
    app.shutdown().await;
    Ok(())
}

async fn direct_chats_without_the_friendship_rule(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.direct_requires_friendship = false).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    app.post(
        "/api/v1/chats/direct",
        Some(&ann.access_token),
        json!({"user_id": bob.user_id}),
    )
    .await?
    .expect_status(201)?;
    app.shutdown().await;
    Ok(())
}

async fn group_lifecycle_and_permission_matrix(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (owner, admin, member, outsider) = (
        app.register("owner").await?,
        app.register("admin").await?,
        app.register("member").await?,
        app.register("outsider").await?,
    );
    let public = app.create_group(&owner, "Rustaceans", "public").await?;
    let private = app.create_group(&owner, "Secret club", "private").await?;
    let view = app
        .get(
            &format!("/api/v1/chats/{public}"),
            Some(&owner.access_token),
        )
        .await?;
    assert_eq!(
        (
            view.json["role"].as_str(),
            view.json["member_count"].as_i64()
        ),
        (Some("owner"), Some(1))
    );
    // Discovery lists public groups only.
    let found = app
        .get("/api/v1/groups?q=rust", Some(&outsider.access_token))
        .await?;
    assert_eq!(ids(&found.json["items"], "id"), [public]);
    let all = app
        .get("/api/v1/groups", Some(&outsider.access_token))
        .await?;
    assert!(!ids(&all.json["items"], "id").contains(&private));
    // Joining: public yes, private no, twice no.
    for user in [&admin, &member] {
        app.post(
            &format!("/api/v1/chats/{public}/join"),
            Some(&user.access_token),
            json!({}),
        )
        .await?
        .expect_status(200)?;
    }
    app.post(
        &format!("/api/v1/chats/{public}/join"),
        Some(&member.access_token),
        json!({}),
    )
    .await?
    .expect_problem(403, "already_member")?;
    app.post(
        &format!("/api/v1/chats/{private}/join"),
        Some(&outsider.access_token),
        json!({}),
    )
    .await?
    .expect_problem(404, "not_found")?;
    // Roles: only the owner changes them.
    let path = |user: &Session| format!("/api/v1/chats/{public}/members/{}", user.user_id);
    app.patch(
        &path(&admin),
        Some(&member.access_token),
        json!({"role": "admin"}),
    )
    .await?
    .expect_problem(403, "forbidden")?;
    let promoted = app
        .patch(
            &path(&admin),
            Some(&owner.access_token),
            json!({"role": "admin"}),
        )
        .await?;
    promoted.expect_status(200)?;
    assert_eq!(promoted.json["role"], "admin");
    app.patch(
        &path(&admin),
        Some(&owner.access_token),
        json!({"role": "king"}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    // Settings: owner and admins.
    app.patch(
        &format!("/api/v1/chats/{public}"),
        Some(&member.access_token),
        json!({"name": "Mine"}),
    )
    .await?
    .expect_problem(403, "forbidden")?;
    let renamed = app
        .patch(
            &format!("/api/v1/chats/{public}"),
            Some(&admin.access_token),
            json!({"name": " Crabs ", "description": "🦀"}),
        )
        .await?;
    renamed.expect_status(200)?;
    assert_eq!(
        (
            renamed.json["name"].as_str(),
            renamed.json["description"].as_str()
        ),
        (Some("Crabs"), Some("🦀"))
    );
    app.patch(
        &format!("/api/v1/chats/{public}"),
        Some(&admin.access_token),
        json!({"name": ""}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    app.patch(
        &format!("/api/v1/chats/{public}"),
        Some(&admin.access_token),
        json!({"visibility": "hidden"}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    // Adding: owner/admins, to private groups too; members cannot.
    let add = |chat: i64, user: &Session| format!("/api/v1/chats/{chat}/members/{}", user.user_id);
    app.request(
        actix_web::http::Method::PUT,
        &add(private, &outsider),
        Some(&member.access_token),
        None,
    )
    .await?
    .expect_problem(404, "not_found")?;
    let added = app
        .request(
            actix_web::http::Method::PUT,
            &add(private, &member),
            Some(&owner.access_token),
            None,
        )
        .await?;
    added.expect_status(201)?;
    app.request(
        actix_web::http::Method::PUT,
        &add(private, &member),
        Some(&owner.access_token),
        None,
    )
    .await?
    .expect_status(200)?;
    app.request(
        actix_web::http::Method::PUT,
        &add(private, &outsider),
        Some(&member.access_token),
        None,
    )
    .await?
    .expect_problem(403, "forbidden")?;
    // Removing: admins remove members, not admins or the owner.
    app.delete(&path(&owner), Some(&admin.access_token))
        .await?
        .expect_problem(403, "cannot_remove_owner")?;
    app.delete(&path(&member), Some(&admin.access_token))
        .await?
        .expect_status(204)?;
    app.post(
        &format!("/api/v1/chats/{public}/join"),
        Some(&member.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    app.patch(
        &path(&member),
        Some(&owner.access_token),
        json!({"role": "admin"}),
    )
    .await?
    .expect_status(200)?;
    app.delete(&path(&member), Some(&admin.access_token))
        .await?
        .expect_problem(403, "forbidden")?;
    app.delete(&path(&member), Some(&owner.access_token))
        .await?
        .expect_status(204)?;
    app.delete(&path(&member), Some(&owner.access_token))
        .await?
        .expect_problem(404, "not_found")?;
    // Members list.
    let members = app
        .get(
            &format!("/api/v1/chats/{public}/members"),
            Some(&admin.access_token),
        )
        .await?;
    let mut listed = ids(&members.json["items"], "user_id");
    listed.sort_unstable();
    assert_eq!(listed, [owner.user_id, admin.user_id]);
    app.get(
        &format!("/api/v1/chats/{public}/members"),
        Some(&outsider.access_token),
    )
    .await?
    .expect_problem(403, "not_a_member")?;
    // Leaving: anyone but the owner.
    app.post(
        &format!("/api/v1/chats/{public}/leave"),
        Some(&owner.access_token),
        json!({}),
    )
    .await?
    .expect_problem(403, "owner_cannot_leave")?;
    app.post(
        &format!("/api/v1/chats/{public}/leave"),
        Some(&admin.access_token),
        json!({}),
    )
    .await?
    .expect_status(204)?;
    app.post(
        &format!("/api/v1/chats/{public}/leave"),
        Some(&admin.access_token),
        json!({}),
    )
    .await?
    .expect_problem(403, "not_a_member")?;
    // Deleting: owner only; then it is gone for everyone.
    app.post(
        &format!("/api/v1/chats/{public}/join"),
        Some(&admin.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    app.delete(
        &format!("/api/v1/chats/{public}"),
        Some(&admin.access_token),
    )
    .await?
    .expect_problem(403, "forbidden")?;
    app.delete(
        &format!("/api/v1/chats/{public}"),
        Some(&owner.access_token),
    )
    .await?
    .expect_status(204)?;
    app.get(
        &format!("/api/v1/chats/{public}"),
        Some(&owner.access_token),
    )
    .await?
    .expect_problem(404, "not_found")?;
    app.get(
        &format!("/api/v1/chats/{public}/messages"),
        Some(&admin.access_token),
    )
    .await?
    .expect_problem(404, "not_found")?;
    // Bad input.
    app.post(
        "/api/v1/chats",
        Some(&owner.access_token),
        json!({"name": " "}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    app.post(
        "/api/v1/chats",
        Some(&owner.access_token),
        json!({"name": "x", "kind": "direct"}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    app.get("/api/v1/chats/999999", Some(&owner.access_token))
        .await?
        .expect_problem(404, "not_found")?;
    app.shutdown().await;
    Ok(())
}

async fn ownership_can_be_handed_over(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let chat = app.create_group(&ann, "Club", "public").await?;
    app.post(
        &format!("/api/v1/chats/{chat}/join"),
        Some(&bob.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    // The owner's own role only changes by handing over.
    app.patch(
        &format!("/api/v1/chats/{chat}/members/{}", ann.user_id),
        Some(&ann.access_token),
        json!({"role": "member"}),
    )
    .await?
    .expect_problem(403, "cannot_demote_owner")?;
    let handed = app
        .patch(
            &format!("/api/v1/chats/{chat}/members/{}", bob.user_id),
            Some(&ann.access_token),
            json!({"role": "owner"}),
        )
        .await?;
    handed.expect_status(200)?;
    assert_eq!(handed.json["role"], "owner");
    let ann_view = app
        .get(&format!("/api/v1/chats/{chat}"), Some(&ann.access_token))
        .await?;
    assert_eq!(ann_view.json["role"], "admin");
    // The former owner may leave now; the new one may not.
    app.post(
        &format!("/api/v1/chats/{chat}/leave"),
        Some(&bob.access_token),
        json!({}),
    )
    .await?
    .expect_problem(403, "owner_cannot_leave")?;
    app.post(
        &format!("/api/v1/chats/{chat}/leave"),
        Some(&ann.access_token),
        json!({}),
    )
    .await?
    .expect_status(204)?;
    app.shutdown().await;
    Ok(())
}

async fn make_admin(app: &TestApp, username: &str) -> anyhow::Result<Session> {
    let user = app.register(username).await?;
    let changes = chat_db::models::UserChanges {
        is_admin: Some(true),
        ..Default::default()
    };
    chat_db::models::UserRow::update(&app.context.store.db, user.user_id, changes).await?;
    app.login(username, chat_test_support::TEST_PASSWORD).await
}

async fn site_admins_manage_any_groups_members(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let root = make_admin(&app, "root").await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let chat = app.create_group(&ann, "Closed", "private").await?;
    // Seed 001's closed chats: a site admin adds members to a group they are not in.
    app.request(
        actix_web::http::Method::PUT,
        &format!("/api/v1/chats/{chat}/members/{}", bob.user_id),
        Some(&root.access_token),
        None,
    )
    .await?
    .expect_status(201)?;
    app.get(
        &format!("/api/v1/chats/{chat}/members"),
        Some(&root.access_token),
    )
    .await?
    .expect_status(200)?;
    app.delete(
        &format!("/api/v1/chats/{chat}/members/{}", ann.user_id),
        Some(&root.access_token),
    )
    .await?
    .expect_problem(403, "cannot_remove_owner")?;
    // Moderation is not membership: the admin cannot post.
    app.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&root.access_token),
        json!({"content": "hi"}),
    )
    .await?
    .expect_problem(403, "not_a_member")?;
    let message = app
        .post(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&bob.access_token),
            json!({"content": "spam"}),
        )
        .await?;
    let message_id = message.json["id"].as_i64().unwrap_or_default();
    app.delete(
        &format!("/api/v1/chats/{chat}/messages/{message_id}"),
        Some(&root.access_token),
    )
    .await?
    .expect_status(204)?;
    app.delete(
        &format!("/api/v1/chats/{chat}/members/{}", bob.user_id),
        Some(&root.access_token),
    )
    .await?
    .expect_status(204)?;
    app.shutdown().await;
    Ok(())
}

async fn a_removed_member_is_refused_on_the_very_next_request(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let chat = app.create_group(&ann, "Club", "private").await?;
    app.request(
        actix_web::http::Method::PUT,
        &format!("/api/v1/chats/{chat}/members/{}", bob.user_id),
        Some(&ann.access_token),
        None,
    )
    .await?
    .expect_status(201)?;
    // Bob's membership is now cached as a member …
    for _ in 0..2 {
        app.get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&bob.access_token),
        )
        .await?
        .expect_status(200)?;
    }
    app.delete(
        &format!("/api/v1/chats/{chat}/members/{}", bob.user_id),
        Some(&ann.access_token),
    )
    .await?
    .expect_status(204)?;
    // … and the very next request is refused: the private group is now invisible to him.
    app.get(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&bob.access_token),
    )
    .await?
    .expect_problem(404, "not_found")?;
    app.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&bob.access_token),
        json!({"content": "still here?"}),
    )
    .await?
    .expect_problem(404, "not_found")?;
    // Added back: accepted at once.
    app.request(
        actix_web::http::Method::PUT,
        &format!("/api/v1/chats/{chat}/members/{}", bob.user_id),
        Some(&ann.access_token),
        None,
    )
    .await?
    .expect_status(201)?;
    app.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&bob.access_token),
        json!({"content": "back"}),
    )
    .await?
    .expect_status(201)?;
    app.shutdown().await;
    Ok(())
}

async fn chat_list_is_ordered_by_activity_with_unread_counts(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let first = app.create_group(&ann, "First", "public").await?;
    let second = app.create_group(&ann, "Second", "public").await?;
    let third = app.create_group(&ann, "Third", "public").await?;
    for chat in [first, second, third] {
        app.post(
            &format!("/api/v1/chats/{chat}/join"),
            Some(&bob.access_token),
            json!({}),
        )
        .await?
        .expect_status(200)?;
    }
    for text in ["one", "two", "three"] {
        app.post(
            &format!("/api/v1/chats/{first}/messages"),
            Some(&ann.access_token),
            json!({"content": text}),
        )
        .await?
        .expect_status(201)?;
    }
    let list = app.get("/api/v1/chats", Some(&bob.access_token)).await?;
    list.expect_status(200)?;
    let items = list.json["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        items
            .iter()
            .filter_map(|c| c["id"].as_i64())
            .collect::<Vec<_>>(),
        [first, third, second]
    );
    let top = &items[0];
    assert_eq!(
        (top["unread_count"].as_i64(), top["last_seq"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(top["last_message"]["content"], "three");
    assert_eq!(top["last_message"]["sender"], "ann");
    assert_eq!(top["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(top["ws_url"], format!("/ws/chats/{first}"));
    assert!(items[1]["last_message"].is_null() && items[1]["unread_count"] == 0);
    // Read markers move forward only and are clamped to the last message.
    let read = app
        .post(
            &format!("/api/v1/chats/{first}/read"),
            Some(&bob.access_token),
            json!({"seq": 2}),
        )
        .await?;
    assert_eq!(
        (
            read.json["last_read_seq"].as_i64(),
            read.json["unread_count"].as_i64()
        ),
        (Some(2), Some(1))
    );
    let back = app
        .post(
            &format!("/api/v1/chats/{first}/read"),
            Some(&bob.access_token),
            json!({"seq": 1}),
        )
        .await?;
    assert_eq!(back.json["last_read_seq"], 2);
    let beyond = app
        .post(
            &format!("/api/v1/chats/{first}/read"),
            Some(&bob.access_token),
            json!({"seq": 99}),
        )
        .await?;
    assert_eq!(
        (
            beyond.json["last_read_seq"].as_i64(),
            beyond.json["unread_count"].as_i64()
        ),
        (Some(3), Some(0))
    );
    app.post(
        &format!("/api/v1/chats/{first}/read"),
        Some(&bob.access_token),
        json!({"seq": -1}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    // Pages.
    let page = app
        .get("/api/v1/chats?limit=2", Some(&bob.access_token))
        .await?;
    let cursor = page.json["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(ids(&page.json["items"], "id"), [first, third]);
    let rest = app
        .get(
            &format!("/api/v1/chats?limit=2&cursor={cursor}"),
            Some(&bob.access_token),
        )
        .await?;
    assert_eq!(ids(&rest.json["items"], "id"), [second]);
    assert!(rest.json["next_cursor"].is_null());
    app.get("/api/v1/chats?cursor=bogus", Some(&bob.access_token))
        .await?
        .expect_problem(422, "validation_failed")?;
    app.shutdown().await;
    Ok(())
}

async fn admin_endpoints_list_and_deactivate(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let root = make_admin(&app, "root").await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    app.get("/api/v1/admin/users", Some(&ann.access_token))
        .await?
        .expect_problem(403, "admin_only")?;
    app.get("/api/v1/admin/chats", Some(&ann.access_token))
        .await?
        .expect_problem(403, "admin_only")?;
    let users = app
        .get("/api/v1/admin/users?limit=2", Some(&root.access_token))
        .await?;
    users.expect_status(200)?;
    assert!(users.json["items"][0]["email"].is_string() && users.json["next_cursor"].is_string());
    app.create_group(&ann, "Club", "private").await?;
    app.create_group(&bob, "Choir", "public").await?;
    let chats = app
        .get("/api/v1/admin/chats", Some(&root.access_token))
        .await?;
    assert_eq!(chats.json["items"].as_array().map(Vec::len), Some(2));
    // `q` finds groups by name, whatever their visibility.
    let found = app
        .get("/api/v1/admin/chats?q=clu", Some(&root.access_token))
        .await?;
    found.expect_status(200)?;
    let names: Vec<&str> = found.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Club"], "{}", found.text);
    // Deactivation ends the user's sessions at once.
    let off = app
        .patch(
            &format!("/api/v1/admin/users/{}", bob.user_id),
            Some(&root.access_token),
            json!({"is_active": false}),
        )
        .await?;
    off.expect_status(200)?;
    assert_eq!(off.json["is_active"], false);
    app.get("/api/v1/users/me", Some(&bob.access_token))
        .await?
        .expect_problem(401, "session_revoked")?;
    app.get(
        &format!("/api/v1/users/{}", bob.user_id),
        Some(&ann.access_token),
    )
    .await?
    .expect_problem(404, "not_found")?;
    app.patch(
        &format!("/api/v1/admin/users/{}", root.user_id),
        Some(&root.access_token),
        json!({"is_admin": false}),
    )
    .await?
    .expect_problem(403, "cannot_change_self")?;
    app.patch(
        &format!("/api/v1/admin/users/{}", ann.user_id),
        Some(&root.access_token),
        json!({"is_boss": true}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    // Granting admin takes effect on the user's next request.
    app.patch(
        &format!("/api/v1/admin/users/{}", ann.user_id),
        Some(&root.access_token),
        json!({"is_admin": true}),
    )
    .await?
    .expect_status(200)?;
    app.get("/api/v1/admin/users", Some(&ann.access_token))
        .await?
        .expect_status(200)?;
    app.shutdown().await;
    Ok(())
}
