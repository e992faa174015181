//! Attachments — through the real server: uploaded as multipart/form-data, typed by
//! their bytes (not by what the client claims), attached to a message, downloaded by
//! members only (inline for images, as a download otherwise, never as something a
//! browser would run), and removed with their message or chat. Both modes on a local
//! directory, and production mode against an S3-compatible server (moto).

use std::path::Path;

use actix_web::http::Method;
use chat_test_support::{Backend, S3Server, Session, TestApp, both_backends};
use serde_json::{Value, json};

both_backends!(
    files_are_uploaded_sent_downloaded_and_removed_with_their_message,
    uploads_are_bounded_and_checked,
    a_deleted_chat_takes_its_files_with_it,
    a_file_goes_with_one_message_even_when_sends_race_or_repeat,
    uploads_never_sent_are_removed_and_bounded,
);

const BOUNDARY: &str = "chat-test-boundary-7MA4YWxkTrZu0gW";

/// A 3 × 2 PNG's signature and header (all a type and size check reads).
fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend_from_slice(&3u32.to_be_bytes());
    bytes.extend_from_slice(&2u32.to_be_bytes());
    bytes.extend_from_slice(b"\x08\x02\0\0\0\x12\x34\x56\x78\0\0\0\0IEND\xae\x42\x60\x82");
    bytes
}

fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n".to_vec()
}

/// A multipart/form-data body with one file field (`claimed`: the type the client says).
fn form(field: &str, filename: &str, claimed: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
         Content-Type: {claimed}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_form(
    app: &TestApp,
    who: Option<&Session>,
    chat: i64,
    body: Vec<u8>,
) -> anyhow::Result<chat_test_support::Response> {
    app.request(
        Method::POST,
        &format!("/api/v1/chats/{chat}/attachments"),
        who.map(|s| s.access_token.as_str()),
        Some((&format!("multipart/form-data; boundary={BOUNDARY}"), body)),
    )
    .await
}

/// Uploads a file and returns the answer (201 expected).
async fn upload(
    app: &TestApp,
    who: &Session,
    chat: i64,
    (filename, claimed, bytes): (&str, &str, &[u8]),
) -> anyhow::Result<Value> {
    let stored = upload_form(app, Some(who), chat, form("file", filename, claimed, bytes)).await?;
    stored.expect_status(201)?;
    Ok(stored.json)
}

async fn download(
    app: &TestApp,
    who: &Session,
    id: i64,
) -> anyhow::Result<chat_test_support::Response> {
    app.get(
        &format!("/api/v1/attachments/{id}"),
        Some(&who.access_token),
    )
    .await
}

async fn send_with(
    app: &TestApp,
    who: &Session,
    chat: i64,
    content: &str,
    attachments: &[i64],
) -> anyhow::Result<chat_test_support::Response> {
    app.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&who.access_token),
        json!({"content": content, "attachments": attachments}),
    )
    .await
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| {
                let path = e.path();
                if path.is_dir() { files_under(&path) } else { 1 }
            })
            .sum()
    })
}

fn files_dir(app: &TestApp) -> std::path::PathBuf {
    match &app.config.files {
        chat_db::files::FilesConfig::Local(dir) => dir.clone(),
        chat_db::files::FilesConfig::S3(_) => std::path::PathBuf::new(),
    }
}

async fn files_are_uploaded_sent_downloaded_and_removed_with_their_message(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let eve = app.register("eve").await?;
    let mut bobs = app
        .ws(&format!("/ws/chats/{chat}"), &bob.access_token)
        .await?;

    // The type comes from the bytes, whatever the client claims; the name loses its path.
    let image = upload(&app, &ann, chat, ("cat.png", "application/pdf", &png())).await?;
    assert_eq!(
        (
            &image["content_type"],
            &image["width"],
            &image["height"],
            &image["size"],
            &image["filename"]
        ),
        (
            &json!("image/png"),
            &json!(3),
            &json!(2),
            &json!(png().len()),
            &json!("cat.png")
        ),
        "{image}"
    );
    let image_id = image["id"].as_i64().unwrap_or_default();
    assert_eq!(image["url"], format!("/api/v1/attachments/{image_id}"));
    let doc = upload(&app, &ann, chat, ("../../report.pdf", "image/png", &pdf())).await?;
    assert_eq!(
        (&doc["content_type"], &doc["width"], &doc["filename"]),
        (
            &json!("application/pdf"),
            &Value::Null,
            &json!("report.pdf")
        ),
        "{doc}"
    );
    let doc_id = doc["id"].as_i64().unwrap_or_default();

    // Not sent yet: only Ann sees it.
    download(&app, &bob, image_id)
        .await?
        .expect_problem(404, "not_found")?;
    download(&app, &ann, image_id).await?.expect_status(200)?;
    // Bob cannot send Ann's upload.
    send_with(&app, &bob, chat, "mine now", &[image_id])
        .await?
        .expect_problem(422, "validation_failed")?;

    // A message of files alone: no text needed.
    let sent = send_with(&app, &ann, chat, "", &[image_id, doc_id]).await?;
    sent.expect_status(201)?;
    assert_eq!(sent.json["content"], "");
    assert_eq!(
        sent.json["attachments"]
            .as_array()
            .map(|a| a.iter().map(|f| f["id"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(image_id), json!(doc_id)]),
        "{}",
        sent.text
    );
    let message = sent.json["id"].as_i64().unwrap_or_default();
    // Live, and in the history.
    let live = bobs.recv_type("chat.message").await?;
    assert_eq!(live["attachments"][0]["id"], image_id, "{live}");
    let page = app
        .get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&bob.access_token),
        )
        .await?;
    assert_eq!(
        page.json["items"][0]["attachments"][1]["filename"],
        "report.pdf"
    );
    // An attachment goes with one message only.
    send_with(&app, &ann, chat, "again", &[image_id])
        .await?
        .expect_problem(422, "validation_failed")?;

    // Members download: an image inline, anything else as a download, and neither may
    // run script from this origin.
    let got = download(&app, &bob, image_id).await?;
    got.expect_status(200)?;
    assert_eq!(got.bytes, png());
    assert_eq!(got.header("content-type"), Some("image/png"));
    assert!(
        got.header("content-disposition")
            .is_some_and(|d| d.starts_with("inline;")),
        "{:?}",
        got.header("content-disposition")
    );
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert!(
        got.header("content-security-policy")
            .is_some_and(|p| p.contains("sandbox") && p.contains("default-src 'none'"))
    );
    let got = download(&app, &bob, doc_id).await?;
    assert_eq!(got.bytes, pdf());
    assert_eq!(got.header("content-type"), Some("application/pdf"));
    assert_eq!(
        got.header("content-disposition"),
        Some("attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf")
    );
    // Outsiders: a public group's non-member is told so; nobody without a token.
    download(&app, &eve, image_id)
        .await?
        .expect_problem(403, "not_a_member")?;
    let anonymous = app
        .get(&format!("/api/v1/attachments/{image_id}"), None)
        .await?;
    assert_eq!(anonymous.status.as_u16(), 401);
    app.get("/api/v1/attachments/999999", Some(&bob.access_token))
        .await?
        .expect_problem(404, "not_found")?;

    // Deleting the message removes its files.
    assert_eq!(files_under(&files_dir(&app)), 2);
    app.delete(
        &format!("/api/v1/chats/{chat}/messages/{message}"),
        Some(&ann.access_token),
    )
    .await?
    .expect_status(204)?;
    download(&app, &ann, image_id)
        .await?
        .expect_problem(404, "not_found")?;
    assert_eq!(files_under(&files_dir(&app)), 0);
    let page = app
        .get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&bob.access_token),
        )
        .await?;
    assert_eq!(page.json["items"][0]["attachments"], json!([]));
    app.shutdown().await;
    Ok(())
}

async fn uploads_are_bounded_and_checked(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.max_upload_bytes = 1 << 20).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let eve = app.register("eve").await?;
    // Over CHAT_MAX_UPLOAD_MB: 413, nothing kept — also when the bytes come in
    // another field.
    let big = vec![b'x'; (1 << 20) + 1];
    upload_form(
        &app,
        Some(&ann),
        chat,
        form("file", "big.txt", "text/plain", &big),
    )
    .await?
    .expect_problem(413, "payload_too_large")?;
    let padded = vec![b'x'; (1 << 20) + (128 << 10)];
    upload_form(
        &app,
        Some(&ann),
        chat,
        form("padding", "pad.txt", "text/plain", &padded),
    )
    .await?
    .expect_problem(413, "payload_too_large")?;
    assert_eq!(files_under(&files_dir(&app)), 0);
    // Exactly the limit is fine.
    let fits = upload(&app, &ann, chat, ("fits.txt", "text/plain", &big[1..])).await?;
    assert_eq!(fits["size"], 1 << 20);
    // No `file` field, an empty file, not multipart at all.
    upload_form(
        &app,
        Some(&ann),
        chat,
        form("other", "a.txt", "text/plain", b"hi"),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    upload_form(
        &app,
        Some(&ann),
        chat,
        form("file", "empty.txt", "text/plain", b""),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    let plain = app
        .request(
            Method::POST,
            &format!("/api/v1/chats/{chat}/attachments"),
            Some(&ann.access_token),
            Some(("application/json", b"{}".to_vec())),
        )
        .await?;
    plain.expect_problem(400, "bad_multipart")?;
    // Who may upload: members only; nobody anonymous.
    upload_form(
        &app,
        Some(&eve),
        chat,
        form("file", "x.txt", "text/plain", b"hi"),
    )
    .await?
    .expect_problem(403, "not_a_member")?;
    let anonymous =
        upload_form(&app, None, chat, form("file", "x.txt", "text/plain", b"hi")).await?;
    assert_eq!(anonymous.status.as_u16(), 401);
    let hidden = app.create_group(&ann, "Secret", "private").await?;
    upload_form(
        &app,
        Some(&eve),
        hidden,
        form("file", "x.txt", "text/plain", b"hi"),
    )
    .await?
    .expect_problem(404, "not_found")?;
    // Markup claiming to be an image is served as text, as a download.
    let page = upload(
        &app,
        &ann,
        chat,
        (
            "evil.svg",
            "image/svg+xml",
            b"<svg onload=\"alert(1)\"></svg>",
        ),
    )
    .await?;
    assert_eq!(page["content_type"], "text/plain; charset=utf-8");
    let id = page["id"].as_i64().unwrap_or_default();
    let got = download(&app, &ann, id).await?;
    assert!(
        got.header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment;"))
    );
    // At most 10 per message, each once, each of this chat.
    send_with(&app, &ann, chat, "twice", &[id, id])
        .await?
        .expect_problem(422, "validation_failed")?;
    let mut many = Vec::new();
    for i in 0..11 {
        let file = upload(&app, &ann, chat, (&format!("{i}.txt"), "text/plain", b"hi")).await?;
        many.push(file["id"].as_i64().unwrap_or_default());
    }
    send_with(&app, &ann, chat, "eleven", &many)
        .await?
        .expect_problem(422, "validation_failed")?;
    send_with(&app, &ann, hidden, "elsewhere", &many[..1])
        .await?
        .expect_problem(422, "validation_failed")?;
    // Refused sends took nothing: ten of them still go in one message.
    send_with(&app, &ann, chat, "ten", &many[..10])
        .await?
        .expect_status(201)?;
    app.shutdown().await;
    Ok(())
}

async fn a_deleted_chat_takes_its_files_with_it(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let sent = upload(&app, &ann, chat, ("a.pdf", "application/pdf", &pdf())).await?;
    let id = sent["id"].as_i64().unwrap_or_default();
    send_with(&app, &ann, chat, "see attached", &[id])
        .await?
        .expect_status(201)?;
    upload(&app, &ann, chat, ("unsent.png", "image/png", &png())).await?;
    assert_eq!(files_under(&files_dir(&app)), 2);
    app.delete(&format!("/api/v1/chats/{chat}"), Some(&ann.access_token))
        .await?
        .expect_status(204)?;
    // Removed in the background, after the answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while files_under(&files_dir(&app)) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(files_under(&files_dir(&app)), 0);
    download(&app, &ann, id)
        .await?
        .expect_problem(404, "not_found")?;
    app.shutdown().await;
    Ok(())
}

async fn a_file_goes_with_one_message_even_when_sends_race_or_repeat(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    // A resend (same client_id) of a message with files is answered with the original.
    let file = upload(&app, &ann, chat, ("a.pdf", "application/pdf", &pdf())).await?;
    let id = file["id"].as_i64().unwrap_or_default();
    let path = format!("/api/v1/chats/{chat}/messages");
    let body = json!({"content": "once", "client_id": "k-1", "attachments": [id]});
    let send = || app.post(&path, Some(&ann.access_token), body.clone());
    let first = send().await?;
    first.expect_status(201)?;
    let again = send().await?;
    again.expect_status(200)?;
    assert_eq!(again.json["id"], first.json["id"], "{}", again.text);
    assert_eq!(again.json["attachments"][0]["id"], id);
    // Two sends racing for one file: exactly one carries it.
    let raced = upload(&app, &ann, chat, ("b.pdf", "application/pdf", &pdf())).await?;
    let raced = raced["id"].as_i64().unwrap_or_default();
    let both = [raced];
    let (one, two) = tokio::join!(
        send_with(&app, &ann, chat, "mine", &both),
        send_with(&app, &ann, chat, "no, mine", &both),
    );
    let mut statuses = [one?.status.as_u16(), two?.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 422]);
    let page = app
        .get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&ann.access_token),
        )
        .await?;
    let carrying = page.json["items"].as_array().map_or(0, |items| {
        items
            .iter()
            .filter(|m| m["attachments"][0]["id"] == raced)
            .count()
    });
    assert_eq!(carrying, 1, "{}", page.text);
    app.shutdown().await;
    Ok(())
}

async fn uploads_never_sent_are_removed_and_bounded(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let sent = upload(&app, &ann, chat, ("sent.pdf", "application/pdf", &pdf())).await?;
    let sent = sent["id"].as_i64().unwrap_or_default();
    send_with(&app, &ann, chat, "kept", &[sent])
        .await?
        .expect_status(201)?;
    let mut unsent = Vec::new();
    for i in 0..chat_services::attachments::MAX_UNSENT {
        let file = upload(&app, &ann, chat, (&format!("{i}.txt"), "text/plain", b"hi")).await?;
        unsent.push(file["id"].as_i64().unwrap_or_default());
    }
    // That was the most that may wait to be sent.
    upload_form(
        &app,
        Some(&ann),
        chat,
        form("file", "over.txt", "text/plain", b"hi"),
    )
    .await?
    .expect_problem(409, "too_many_uploads")?;
    // The sweep (run here as if a day had passed) removes every unsent file and keeps
    // the sent one.
    let later = chat_db::now() + chrono::Duration::minutes(1);
    let removed = chat_services::attachments::remove_abandoned(&app.context, later, 1000).await?;
    assert_eq!(removed, unsent.len());
    assert_eq!(files_under(&files_dir(&app)), 1);
    download(&app, &ann, sent).await?.expect_status(200)?;
    download(&app, &ann, unsent[0])
        .await?
        .expect_problem(404, "not_found")?;
    upload(&app, &ann, chat, ("again.txt", "text/plain", b"hi")).await?;
    app.shutdown().await;
    Ok(())
}

/// Production mode with its files in an S3-compatible bucket.
#[actix_web::test]
async fn attachments_live_in_an_s3_bucket() -> anyhow::Result<()> {
    let s3 = S3Server::start().await?;
    let files = s3.config();
    let app = TestApp::spawn_with(Backend::Postgres, |c| c.files = files).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let image = upload(&app, &ann, chat, ("cat.png", "image/png", &png())).await?;
    let id = image["id"].as_i64().unwrap_or_default();
    assert_eq!((&image["width"], &image["height"]), (&json!(3), &json!(2)));
    assert_eq!(s3.keys().await?.len(), 1);
    let sent = send_with(&app, &ann, chat, "from the bucket", &[id]).await?;
    sent.expect_status(201)?;
    let got = download(&app, &bob, id).await?;
    got.expect_status(200)?;
    assert_eq!(got.bytes, png());
    // A second instance (same database and bucket) serves it too.
    let peer = app.spawn_peer().await?;
    let again = download(&peer, &bob, id).await?;
    assert_eq!(again.bytes, png());
    let message = sent.json["id"].as_i64().unwrap_or_default();
    app.delete(
        &format!("/api/v1/chats/{chat}/messages/{message}"),
        Some(&ann.access_token),
    )
    .await?
    .expect_status(204)?;
    assert!(s3.keys().await?.is_empty(), "the object is gone");
    download(&peer, &bob, id)
        .await?
        .expect_problem(404, "not_found")?;
    peer.shutdown().await;
    app.shutdown().await;
    Ok(())
}

/// Uploads are held in memory until stored, so a process receives only so many at once,
/// and one user only two of them: past those an upload is answered 503 (429 for the
/// user's own) before any byte is read, and a slot frees when its upload ends (here: its
/// client goes away mid-body).
#[actix_web::test]
async fn uploads_past_the_processs_slots_are_turned_away_until_one_frees() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    // 256 MB files: two slots.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.max_upload_bytes = 256 << 20).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await?;
        let head = format!(
            "POST /api/v1/chats/{chat}/attachments HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {}\r\n\
             Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
             Content-Length: 100000000\r\n\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.bin\"\r\n\r\n",
            ann.access_token
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&[b'x'; 4096]).await?;
        stalled.push(stream);
    }
    // Both slots are taken once the server has read those requests' heads.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.context.uploads.available() > 0 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the slow uploads took no slot"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Ann has her two; Bob finds every slot of the process taken.
    let mine = upload_form(
        &app,
        Some(&ann),
        chat,
        form("file", "a.txt", "text/plain", b"hi"),
    )
    .await?;
    mine.expect_problem(429, "rate_limited")?;
    let refused = upload_form(
        &app,
        Some(&bob),
        chat,
        form("file", "a.txt", "text/plain", b"hi"),
    )
    .await?;
    refused.expect_problem(503, "unavailable")?;
    assert_eq!(refused.header("retry-after"), Some("1"));
    // The stalled clients leave: their slots free, and uploads go through again.
    drop(stalled);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = upload_form(
            &app,
            Some(&ann),
            chat,
            form("file", "b.txt", "text/plain", b"hi"),
        )
        .await?;
        if answer.status.as_u16() == 201 {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no slot freed: {}",
            answer.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.shutdown().await;
    Ok(())
}
