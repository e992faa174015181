//! Message search — through the real server, both modes (SQLite FTS5, PostgreSQL
//! tsvector): found by their words, ranked, paged; edits and deletions followed; never a
//! message of a chat the searcher is not (or no longer) in.

use actix_web::http::Method;
use chat_test_support::{Backend, Session, TestApp, both_backends};
use serde_json::{Value, json};

both_backends!(
    messages_are_found_by_their_words_ranked_and_paged,
    edits_and_deletions_are_followed,
    search_across_my_chats_covers_only_chats_i_am_in,
    bad_searches_are_refused,
);

async fn send(app: &TestApp, who: &Session, chat: i64, text: &str) -> anyhow::Result<i64> {
    let sent = app.send_message(who, chat, text).await?;
    Ok(sent["id"].as_i64().unwrap_or_default())
}

/// The texts of a search's first page (and its `next_cursor`).
async fn found(app: &TestApp, who: &Session, path: &str) -> anyhow::Result<(Vec<String>, Value)> {
    let page = app.get(path, Some(&who.access_token)).await?;
    page.expect_status(200)?;
    let texts = page.json["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["content"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok((texts, page.json))
}

async fn messages_are_found_by_their_words_ranked_and_paged(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    for text in [
        "the quick brown fox",
        "a lazy dog sleeps",
        "quick quick quick",
        "viele grüße",
        "Bonne ÉCOLE",
        "nothing to see",
    ] {
        send(&app, &ann, chat, text).await?;
    }
    let search = |q: &str| format!("/api/v1/chats/{chat}/messages/search?q={q}");
    // Every message with the word, the one that is most about it first.
    let (texts, page) = found(&app, &bob, &search("QUICK")).await?;
    assert_eq!(
        texts,
        ["quick quick quick", "the quick brown fox"],
        "{page}"
    );
    assert_eq!(page["items"][0]["chat_id"], chat);
    assert_eq!(page["items"][0]["sender"], "ann");
    assert_eq!(page["next_cursor"], Value::Null);
    // All words must be there; a word may be the start of a longer one.
    assert_eq!(
        found(&app, &bob, &search("quick%20fox")).await?.0,
        ["the quick brown fox"]
    );
    assert_eq!(
        found(&app, &bob, &search("laz")).await?.0,
        ["a lazy dog sleeps"]
    );
    assert_eq!(
        found(&app, &bob, &search("gr%C3%BC%C3%9Fe")).await?.0,
        ["viele grüße"]
    );
    // Case is folded beyond ASCII, in the text and in the search words.
    for q in ["%C3%A9cole", "%C3%89COLE"] {
        assert_eq!(
            found(&app, &bob, &search(q)).await?.0,
            ["Bonne ÉCOLE"],
            "{q}"
        );
    }
    // Punctuation and operators are separators, not syntax.
    assert_eq!(
        found(&app, &bob, &search("%22fox%22%20OR*")).await?.0,
        Vec::<String>::new(),
        "\"fox\" OR* means the words fox and or"
    );
    assert!(found(&app, &bob, &search("zebra")).await?.0.is_empty());
    // Pages: 7 matches, 3 at a time, each once.
    for n in 0..7 {
        send(&app, &bob, chat, &format!("page marker {n}")).await?;
    }
    let mut seen = Vec::new();
    let mut path = format!("{}&limit=3", search("marker"));
    loop {
        let (texts, page) = found(&app, &ann, &path).await?;
        assert!(texts.len() <= 3);
        seen.extend(texts);
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("{}&limit=3&cursor={cursor}", search("marker")),
            None => break,
        }
    }
    seen.sort();
    let expected: Vec<String> = (0..7).map(|n| format!("page marker {n}")).collect();
    assert_eq!(seen, expected);
    app.shutdown().await;
    Ok(())
}

async fn edits_and_deletions_are_followed(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let edited = send(&app, &ann, chat, "meet at the harbour").await?;
    let deleted = send(&app, &ann, chat, "the harbour code is 4711").await?;
    let search = |q: &str| format!("/api/v1/chats/{chat}/messages/search?q={q}");
    assert_eq!(found(&app, &bob, &search("harbour")).await?.0.len(), 2);
    app.patch(
        &format!("/api/v1/chats/{chat}/messages/{edited}"),
        Some(&ann.access_token),
        json!({"content": "meet at the station"}),
    )
    .await?
    .expect_status(200)?;
    app.request(
        Method::DELETE,
        &format!("/api/v1/chats/{chat}/messages/{deleted}"),
        Some(&ann.access_token),
        None,
    )
    .await?
    .expect_status(204)?;
    // The old words are gone, the new ones found; a deleted message never is.
    assert!(found(&app, &bob, &search("harbour")).await?.0.is_empty());
    assert!(found(&app, &bob, &search("4711")).await?.0.is_empty());
    assert_eq!(
        found(&app, &bob, &search("station")).await?.0,
        ["meet at the station"]
    );
    app.shutdown().await;
    Ok(())
}

async fn search_across_my_chats_covers_only_chats_i_am_in(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, cyd) = (
        app.register("ann").await?,
        app.register("bob").await?,
        app.register("cyd").await?,
    );
    let ours = app.create_group(&ann, "Ours", "private").await?;
    let bobs = app.create_group(&bob, "Bob's", "private").await?;
    let cyds = app.create_group(&cyd, "Cyd's", "private").await?;
    app.add_member(bobs, ann.user_id, &bob.access_token)
        .await?
        .expect_status(201)?;
    send(&app, &ann, ours, "needle in ours").await?;
    send(&app, &bob, bobs, "needle in bob's").await?;
    send(&app, &cyd, cyds, "needle in cyd's").await?;
    let mine = |who: &Session| {
        let path = "/api/v1/search/messages?q=needle".to_owned();
        let app = &app;
        let who = who.clone();
        async move {
            let (_, page) = found(app, &who, &path).await?;
            let mut chats: Vec<i64> = page["items"]
                .as_array()
                .map(|items| items.iter().filter_map(|i| i["chat_id"].as_i64()).collect())
                .unwrap_or_default();
            chats.sort_unstable();
            anyhow::Ok(chats)
        }
    };
    assert_eq!(mine(&ann).await?, [ours, bobs]);
    assert_eq!(mine(&bob).await?, [bobs]);
    // Removed from Bob's group, Ann no longer finds what was said there …
    app.request(
        Method::DELETE,
        &format!("/api/v1/chats/{bobs}/members/{}", ann.user_id),
        Some(&bob.access_token),
        None,
    )
    .await?
    .expect_status(204)?;
    assert_eq!(mine(&ann).await?, [ours]);
    // … nor by searching that chat alone, as for any private chat she is not in.
    app.get(
        &format!("/api/v1/chats/{bobs}/messages/search?q=needle"),
        Some(&ann.access_token),
    )
    .await?
    .expect_problem(404, "not_found")?;
    app.get(
        &format!("/api/v1/chats/{cyds}/messages/search?q=needle"),
        Some(&ann.access_token),
    )
    .await?
    .expect_problem(404, "not_found")?;
    app.shutdown().await;
    Ok(())
}

async fn bad_searches_are_refused(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let token = Some(ann.access_token.as_str());
    for query in [
        "",
        "?q=",
        "?q=%20%2A%2A%2A%20-",
        "?q=x&limit=0",
        "?q=x&cursor=nope",
    ] {
        app.get(&format!("/api/v1/search/messages{query}"), token)
            .await?
            .expect_problem(422, "validation_failed")?;
    }
    let long = "a".repeat(201);
    app.get(
        &format!("/api/v1/chats/{chat}/messages/search?q={long}"),
        token,
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    app.get("/api/v1/search/messages?q=x", None)
        .await?
        .expect_status(401)?;
    app.shutdown().await;
    Ok(())
}
