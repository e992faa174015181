//! The `chat-server` binary: configuration errors, `migrate`, `create-admin`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chat_test_support::{Backend, ServerProcess, TestApp, random_suffix};

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

/// `chat-server serve` in `dir`, its output collected.
struct Served;

impl Served {
    fn start(dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<ServerProcess> {
        ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_chat-server")), dir, env)
    }
}

#[actix_web::test]
async fn query_tokens_and_tickets_never_reach_the_logs() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let served = Served::start(
        &scratch.0,
        &[
            ("CHAT_LOG", "debug"),
            ("CHAT_BCRYPT_COST", "4"),
            ("CHAT_RATE_LIMITS", "off"),
        ],
    )?;
    let base = format!("http://127.0.0.1:{}", served.port);
    let forged_token = "tok3n-SHOULD-NOT-BE-LOGGED-81726354";
    let forged_ticket = "tick3t-SHOULD-NOT-BE-LOGGED-91827364";
    let client = awc::Client::builder()
        .max_http_version(awc::http::Version::HTTP_11)
        .finish();
    let result = async {
        // A normal request that logs a line of its own (`account created`).
        let mut registered = client
            .post(format!("{base}/api/v1/auth/register?token={forged_token}"))
            .send_json(&serde_json::json!({
                "username": "logcheck", "email": "logcheck@example.com",
                "password": "correct horse battery",
            }))
            .await
            .map_err(|e| anyhow::anyhow!("register: {e}"))?;
        assert_eq!(registered.status().as_u16(), 201);
        let body: serde_json::Value = registered.json().await?;
        let access = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no access token in {body}"))?
            .to_owned();
        let mut issued = client
            .post(format!("{base}/api/v1/ws/ticket"))
            .bearer_auth(&access)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ticket: {e}"))?;
        assert_eq!(issued.status().as_u16(), 200);
        let ticket = issued.json::<serde_json::Value>().await?["ticket"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no ticket"))?
            .to_owned();

        // Failing handshakes: a forged ticket, a forged token.
        let ws = |path: String| {
            client
                .ws(format!("ws://127.0.0.1:{}{path}", served.port))
                .connect()
        };
        for path in [
            format!("/ws?ticket={forged_ticket}"),
            format!("/ws/chats/1?history=5&token={forged_token}"),
        ] {
            match ws(path.clone()).await {
                Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
                    assert_eq!(status.as_u16(), 401, "{path}");
                }
                other => anyhow::bail!("{path}: expected a 401 refusal, got {:?}", other.err()),
            }
        }
        // Accepted handshakes with a real ticket and a real access token.
        for path in [
            format!("/ws?ticket={ticket}"),
            format!("/ws/?token={access}"),
        ] {
            let (response, connection) = ws(path.clone())
                .await
                .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            assert_eq!(response.status().as_u16(), 101);
            drop(connection);
        }
        anyhow::Ok((access, ticket))
    }
    .await;
    let logs = served.stop();
    let (access, ticket) = result?;
    for secret in [forged_token, forged_ticket, &access, &ticket] {
        assert!(!logs.contains(secret), "{secret} reached the logs:\n{logs}");
    }
    // The requests were logged, with the secrets' places marked.
    assert!(logs.contains("account created"), "{logs}");
    for logged in [
        "/api/v1/auth/register?token=REDACTED",
        "/ws?ticket=REDACTED",
        "/ws/chats/1?history=5&token=REDACTED",
        "/ws/?token=REDACTED",
    ] {
        assert!(logs.contains(logged), "{logged} not logged:\n{logs}");
    }
    Ok(())
}

#[test]
fn healthcheck_probes_readyz_without_curl() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let served = Served::start(&scratch.0, &[("CHAT_LOG", "info")])?;
    let addr = format!("127.0.0.1:{}", served.port);
    let ready = run(&scratch.0, &["healthcheck", "--addr", &addr], &[])?;
    assert_eq!(
        ready.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    assert!(String::from_utf8_lossy(&ready.stdout).starts_with("ready"));
    // CHAT_BIND is the default address (0.0.0.0 is probed on the loopback).
    let by_config = run(
        &scratch.0,
        &["healthcheck"],
        &[("CHAT_BIND", &format!("0.0.0.0:{}", served.port))],
    )?;
    assert_eq!(by_config.status.code(), Some(0));
    served.stop();
    let down = run(
        &scratch.0,
        &["healthcheck", "--addr", &addr, "--timeout", "1"],
        &[],
    )?;
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).starts_with("not ready"));
    Ok(())
}

#[actix_web::test]
async fn backup_copies_the_live_database_and_the_copy_serves() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let served = Served::start(
        &scratch.0,
        &[("CHAT_BCRYPT_COST", "4"), ("CHAT_RATE_LIMITS", "off")],
    )?;
    let client = awc::Client::default();
    let register = client
        .post(format!(
            "http://127.0.0.1:{}/api/v1/auth/register",
            served.port
        ))
        .send_json(&serde_json::json!({
            "username": "kept", "email": "kept@example.com", "password": "correct horse battery",
        }))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(register.status().as_u16(), 201);
    // While the server runs.
    let copy = scratch.0.join("copy.db");
    let backup = run(&scratch.0, &["backup", "copy.db"], &[])?;
    assert_eq!(
        backup.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(copy.exists());
    let again = run(&scratch.0, &["backup", "copy.db"], &[])?;
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing file is never overwritten"
    );
    served.stop();
    // A server on the copy has the account.
    let restored = Served::start(
        &scratch.0,
        &[
            ("CHAT_DATABASE_URL", "sqlite://copy.db"),
            ("CHAT_BCRYPT_COST", "4"),
            ("CHAT_RATE_LIMITS", "off"),
        ],
    )?;
    let login = client
        .post(format!(
            "http://127.0.0.1:{}/api/v1/auth/login",
            restored.port
        ))
        .send_json(&serde_json::json!({"username": "kept", "password": "correct horse battery"}))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(login.status().as_u16(), 200);
    restored.stop();
    let postgres = run(
        &scratch.0,
        &["backup", "pg.db"],
        &[("CHAT_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
    )?;
    assert_eq!(postgres.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&postgres.stderr).contains("pg_dump"));
    Ok(())
}

#[actix_web::test]
async fn seed_demo_fills_a_fresh_database_that_serves() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let password = "demo-password-1";
    let seeded = run(&scratch.0, &["seed-demo", "--password", password], &[])?;
    let stdout = String::from_utf8_lossy(&seeded.stdout);
    assert!(
        seeded.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    assert!(stdout.contains(&format!("password of every demo account: {password}")));
    // Once per database.
    let again = run(&scratch.0, &["seed-demo"], &[])?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // Never in production (known passwords).
    let prod = run(
        &scratch.0,
        &["seed-demo"],
        &[
            ("CHAT_ENV", "prod"),
            (
                "CHAT_JWT_SECRET",
                "a-production-secret-of-more-than-32-bytes",
            ),
        ],
    )?;
    assert!(!prod.status.success());
    assert!(String::from_utf8_lossy(&prod.stderr).contains("CHAT_ENV=prod"));

    let served = Served::start(&scratch.0, &[])?;
    let base = format!("http://127.0.0.1:{}/api/v1", served.port);
    let result = async {
        let client = awc::Client::default();
        let mut login = client
            .post(format!("{base}/auth/login"))
            .send_json(&serde_json::json!({"username": "alice", "password": password}))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(login.status().as_u16(), 200);
        let token = login.json::<serde_json::Value>().await?["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no token"))?;
        let bearer = format!("Bearer {token}");
        let mut chats = client
            .get(format!("{base}/chats"))
            .insert_header(("authorization", bearer.as_str()))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let chats: serde_json::Value = chats.json().await?;
        let items = chats["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 3, "{chats}");
        assert!(
            items.iter().all(|c| !c["last_message"].is_null()),
            "{chats}"
        );
        let mut friends = client
            .get(format!("{base}/friends"))
            .insert_header(("authorization", bearer.as_str()))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let friends: serde_json::Value = friends.json().await?;
        assert_eq!(
            friends["items"].as_array().map(Vec::len),
            Some(2),
            "{friends}"
        );
        anyhow::Ok(())
    }
    .await;
    served.stop();
    result
}

#[actix_web::test]
async fn sigterm_stops_the_binary_gracefully_and_promptly() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let mut served = Served::start(&scratch.0, &[("CHAT_LOG", "info")])?;
    let mut socket_client = awc::Client::default()
        .get(format!("http://127.0.0.1:{}/healthz", served.port))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(socket_client.status().as_u16(), 200);
    let _ = socket_client.body().await;
    served.terminate()?;
    // The grace is 10 s; nothing is open, so it takes about CHAT_SHUTDOWN_DELAY (1 s).
    let status = served
        .exited_within(std::time::Duration::from_secs(12))
        .await?;
    assert!(status.success(), "exit status {status}");
    let output = served.stop();
    assert!(output.contains("SIGTERM received"), "{output}");
    assert!(output.contains("stopped"), "{output}");
    Ok(())
}

#[test]
fn help_explains_every_subcommand_and_flag() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let top = run(&scratch.0, &["--help"], &[])?;
    let top = String::from_utf8_lossy(&top.stdout).into_owned();
    let commands = [
        "serve",
        "migrate",
        "create-admin",
        "backup",
        "seed-demo",
        "healthcheck",
    ];
    for command in commands {
        let listed = top
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{command} ")))
            .ok_or_else(|| anyhow::anyhow!("{command} not listed:\n{top}"))?;
        assert!(listed.split_whitespace().count() > 3, "{listed}");
        let help = run(&scratch.0, &[command, "--help"], &[])?;
        assert!(help.status.success());
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        // Every flag and argument line carries an explanation after its name.
        for line in help
            .lines()
            .filter(|l| l.trim_start().starts_with("--") || l.trim_start().starts_with('<'))
        {
            let explained = line
                .trim_start()
                .split("  ")
                .filter(|p| !p.is_empty())
                .count();
            assert!(explained >= 2, "{command}: unexplained `{line}`");
        }
    }
    assert!(top.contains("docs/configuration.md"));
    Ok(())
}
