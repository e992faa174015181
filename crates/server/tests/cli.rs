//! The `chat-server` binary: configuration errors, `migrate`, `create-admin`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chat_test_support::{Backend, TestApp, random_suffix};

/// A scratch working directory (the binary reads `.env` and writes `data/` there).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("chat-cli-{}", random_suffix()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    command
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHAT_")) {
        command.env_remove(key);
    }
    command.env("CHAT_LOG", "warn").envs(env.iter().copied());
    Ok(command.output()?)
}

#[test]
fn invalid_configuration_stops_with_one_line_naming_the_key() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("CHAT_BIND", "not-an-address")], "CHAT_BIND"),
        (&[("CHAT_ENV", "prod")], "CHAT_JWT_SECRET"),
        (
            &[("CHAT_ENV", "prod"), ("CHAT_JWT_SECRET", "too-short")],
            "CHAT_JWT_SECRET",
        ),
        (
            &[("CHAT_DATABASE_URL", "mysql://nope")],
            "CHAT_DATABASE_URL",
        ),
        (&[("CHAT_ACCESS_TTL", "forever")], "CHAT_ACCESS_TTL"),
    ];
    for (env, key) in cases {
        let output = run(&scratch.0, &["serve"], env)?;
        assert_eq!(output.status.code(), Some(2), "{env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("invalid configuration: {key}: ")),
            "{stderr}"
        );
    }
    // A config file with an unknown key is refused too; a good one is read.
    std::fs::write(scratch.0.join("bad.env"), "CHAT_BINDD=127.0.0.1:1\n")?;
    let output = run(&scratch.0, &["--config", "bad.env", "migrate"], &[])?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("CHAT_BINDD"));
    Ok(())
}

#[test]
fn migrate_creates_the_default_sqlite_database_and_is_idempotent() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let first = run(&scratch.0, &["migrate"], &[])?;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let applied: usize = String::from_utf8_lossy(&first.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(applied >= 2, "{}", String::from_utf8_lossy(&first.stdout));
    assert!(
        scratch.0.join("data/chat.db").is_file(),
        "the default sqlite://data/chat.db was not created"
    );
    let second = run(&scratch.0, &["migrate"], &[])?;
    assert!(String::from_utf8_lossy(&second.stdout).contains("0 migration(s) applied"));
    Ok(())
}

#[actix_web::test]
async fn create_admin_makes_a_site_admin_who_can_log_in() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let scratch = Scratch::new()?;
    let env = [
        ("CHAT_DATABASE_URL", app.database.url()),
        ("CHAT_BCRYPT_COST", "4"),
    ];
    let created = run(
        &scratch.0,
        &[
            "create-admin",
            "--username",
            "root_user",
            "--email",
            "root@example.com",
        ],
        &[&env[..], &[("CHAT_ADMIN_PASSWORD", "admin password 1")]].concat(),
    )?;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).contains("created admin root_user"));
    let admin = app.login("root_user", "admin password 1").await?;
    let me = app
        .get("/api/v1/users/me", Some(&admin.access_token))
        .await?;
    assert_eq!(me.json["is_admin"], true);

    // An existing user is promoted without touching the password.
    let zoe = app.register("zoe").await?;
    let promoted = run(&scratch.0, &["create-admin", "--username", "ZOE"], &env)?;
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    assert!(String::from_utf8_lossy(&promoted.stdout).contains("zoe (id"));
    let zoe_again = app.login("zoe", chat_test_support::TEST_PASSWORD).await?;
    assert_eq!(zoe_again.user_id, zoe.user_id);
    let me = app
        .get("/api/v1/users/me", Some(&zoe_again.access_token))
        .await?;
    assert_eq!(me.json["is_admin"], true);

    // Not interactive and a value missing: a clear error, no prompt.
    let missing = run(&scratch.0, &["create-admin", "--username", "newbie"], &env)?;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--email is required"));
    let invalid = run(
        &scratch.0,
        &[
            "create-admin",
            "--username",
            "x",
            "--email",
            "x@example.com",
            "--password",
            "long enough",
        ],
        &env,
    )?;
    assert_eq!(invalid.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("username"));
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn dev_mode_keeps_its_generated_jwt_secret_across_restarts() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let db = format!("sqlite://{}/data/chat.db", scratch.0.display());
    let config = |c: &mut chat_server::Config| {
        c.jwt_secret = None;
        c.database_url =
            chat_db::DatabaseUrl::parse(&db).unwrap_or_else(|_| c.database_url.clone());
        c.auto_migrate = true;
    };
    let first = TestApp::spawn_with(Backend::Sqlite, config).await?;
    let secret_file = scratch.0.join("data/jwt_secret");
    assert!(secret_file.is_file());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret_file)?.permissions().mode() & 0o777,
        0o600
    );
    let amy = first.register("amy").await?;
    first.shutdown().await;
    let second = TestApp::spawn_with(Backend::Sqlite, config).await?;
    second
        .get("/api/v1/users/me", Some(&amy.access_token))
        .await?
        .expect_status(200)?;
    second.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn serve_in_prod_mode_logs_json_and_answers() -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let scratch = Scratch::new()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHAT_")) {
        command.env_remove(key);
    }
    let secret = "a-production-secret-of-more-than-32-bytes";
    let mut child = command
        .arg("serve")
        .current_dir(&scratch.0)
        .envs([
            ("CHAT_ENV", "prod"),
            ("CHAT_BIND", "127.0.0.1:0"),
            ("CHAT_JWT_SECRET", secret),
            ("CHAT_LOG", "info"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let result = async {
        let mut port = None;
        while port.is_none() {
            let line = lines_rx.recv_timeout(std::time::Duration::from_secs(60))?;
            let event: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| anyhow::anyhow!("not a JSON log line ({e}): {line}"))?;
            assert!(!line.contains(secret), "the secret reached the logs");
            if event["message"] == "listening" {
                port = event["port"].as_u64();
            }
        }
        let port = port.ok_or_else(|| anyhow::anyhow!("no port logged"))?;
        let mut response = awc::Client::default()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.json::<serde_json::Value>().await?["status"], "ok");
        // No secret file is written in prod: the secret comes from the environment.
        assert!(!scratch.0.join("data/jwt_secret").exists());
        anyhow::Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}
