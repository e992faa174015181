//! Rotating the JWT secret without logging everyone out: the previous secret verifies
//! (access and refresh tokens) during the window; only the new one signs.

use chat_test_support::{Backend, TestApp, both_backends};

both_backends!(tokens_signed_with_the_previous_secret_work_during_a_rotation);

const OLD: &str = "the-old-secret-the-old-secret-0123456789";
const NEW: &str = "the-new-secret-the-new-secret-0123456789";

async fn tokens_signed_with_the_previous_secret_work_during_a_rotation(
    backend: Backend,
) -> anyhow::Result<()> {
    let before = TestApp::spawn_with(backend, |c| c.jwt_secret = Some(OLD.to_owned())).await?;
    let ann = before.register("ann").await?;
    // The same database, restarted with the new secret and the old one as previous.
    let rotating = before
        .spawn_peer_with(|c| {
            c.jwt_secret = Some(NEW.to_owned());
            c.jwt_secret_previous = Some(OLD.to_owned());
        })
        .await?;
    rotating
        .get("/api/v1/users/me", Some(&ann.access_token))
        .await?
        .expect_status(200)?;
    let refreshed = rotating.refresh(&ann.refresh_token).await?;
    refreshed.expect_status(200)?;
    let access = refreshed.json["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let refresh = refreshed.json["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // After the window: only the new secret.
    let after = before
        .spawn_peer_with(|c| c.jwt_secret = Some(NEW.to_owned()))
        .await?;
    after
        .get("/api/v1/users/me", Some(&access))
        .await?
        .expect_status(200)?;
    after.refresh(&refresh).await?.expect_status(200)?;
    // A token signed with the old secret is refused once the window is over …
    let bob = before.register("bob").await?;
    after
        .get("/api/v1/users/me", Some(&bob.access_token))
        .await?
        .expect_problem(401, "invalid_token")?;
    // … and what the rotating server signed, the old one cannot verify (it signs with
    // the new secret only).
    before
        .get("/api/v1/users/me", Some(&access))
        .await?
        .expect_problem(401, "invalid_token")?;
    after.shutdown().await;
    rotating.shutdown().await;
    before.shutdown().await;
    Ok(())
}
