//! The production topology without containers: the project's own `docker/nginx.conf`
//! (only its upstream addresses and listen port substituted) run by Debian's nginx in
//! front of two `chat-server` processes sharing PostgreSQL and Redis. Everything below
//! goes through nginx, as a client of the prod stack would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chat_test_support::{
    Backend, Received, Refused, ServerProcess, TEST_JWT_SECRET, TestDatabase, WsClient,
    delete_redis_prefix, free_port, random_suffix, redis_url,
};
use serde_json::{Value, json};

/// Debian's nginx (not on an unprivileged PATH).
fn nginx_binary() -> anyhow::Result<PathBuf> {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return Ok(candidate.into());
        }
    }
    anyhow::bail!(
        "nginx is not installed (apt-get install nginx-light; .ci/run does it): the \
         production topology is tested through it"
    )
}

/// nginx running the project's config in a scratch prefix; killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    prefix: PathBuf,
}

impl Nginx {
    fn start(upstreams: [u16; 2]) -> anyhow::Result<Self> {
        let config = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docker/nginx.conf"
        ))?;
        let port = free_port()?;
        // The substitutions of the config's stated contract, nothing else.
        for needle in ["server chat1:8080", "server chat2:8080", "listen 80;"] {
            anyhow::ensure!(
                config.contains(needle),
                "docker/nginx.conf must contain `{needle}`"
            );
        }
        let config = config
            .replace("chat1:8080", &format!("127.0.0.1:{}", upstreams[0]))
            .replace("chat2:8080", &format!("127.0.0.1:{}", upstreams[1]))
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        let prefix = std::env::temp_dir().join(format!("chat-nginx-{}", random_suffix()));
        std::fs::create_dir_all(&prefix)?;
        // Worker processes of a root master run as nobody: the prefix must be theirs to
        // write temp files in.
        let _ = Command::new("chmod").arg("0777").arg(&prefix).status();
        let file = prefix.join("nginx.conf");
        std::fs::write(&file, config)?;
        let error_log = std::fs::File::create(prefix.join("stderr.log"))?;
        let child = Command::new(nginx_binary()?)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&file)
            .arg("-g")
            .arg(format!("daemon off; pid {}/nginx.pid;", prefix.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(error_log)
            .spawn()?;
        Ok(Nginx {
            child,
            port,
            prefix,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

/// An HTTP client of the proxy.
struct Client {
    http: awc::Client,
    base: String,
    port: u16,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        if let Some(token) = token {
            request = request.insert_header(("authorization", format!("Bearer {token}")));
        }
        let mut response = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        }
        .map_err(|e| anyhow::anyhow!("{method} {path}: {e}"))?;
        let bytes = response.body().await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((response.status().as_u16(), value))
    }

    async fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (got, value) = self.call(method, path, token, body).await?;
        anyhow::ensure!(got == status, "{method} {path}: {got} {value}");
        Ok(value)
    }

    /// A socket on `path`; while a replica drains (503) or restarts, retried with
    /// backoff as a client would.
    async fn ws(&self, path: &str, token: &str) -> anyhow::Result<WsClient> {
        let header = format!("Bearer {token}");
        let mut wait = Duration::from_millis(50);
        for _ in 0..20 {
            match WsClient::connect(self.port, path, &[("authorization", &header)]).await {
                Ok(socket) => return Ok(socket),
                Err(err) if err.downcast_ref::<Refused>().is_some_and(|r| r.0 >= 500) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(err) => return Err(err),
            }
        }
        anyhow::bail!("no socket through the proxy after 20 tries")
    }

    /// Every message of `chat` above `after` (oldest first).
    async fn history_after(
        &self,
        chat: i64,
        token: &str,
        mut after: i64,
    ) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        loop {
            let page = self
                .expect(
                    200,
                    "GET",
                    &format!("/api/v1/chats/{chat}/messages?after_seq={after}&limit=200"),
                    Some(token),
                    None,
                )
                .await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            let Some(last) = items.last() else {
                return Ok(all);
            };
            after = last["seq"].as_i64().unwrap_or(i64::MAX);
            all.extend(items);
        }
    }
}

/// `chat_ws_connections` of the replica on `port`, asked directly (nginx hides /metrics).
async fn sockets_on(port: u16) -> anyhow::Result<i64> {
    let mut response = awc::Client::default()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = String::from_utf8_lossy(&response.body().await?).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("chat_ws_connections "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no chat_ws_connections"))
}

async fn count(port: u16) -> i64 {
    sockets_on(port).await.unwrap_or(-1)
}

/// The socket's replica: the one whose socket count it raised.
async fn pinned(
    client: &Client,
    replicas: &[u16; 2],
    path: &str,
    token: &str,
    want: Option<usize>,
) -> anyhow::Result<(WsClient, usize)> {
    let mut extra = Vec::new();
    for _ in 0..16 {
        // A stopped replica counts as -1 (and never gains the socket).
        let before = [count(replicas[0]).await, count(replicas[1]).await];
        let socket = client.ws(path, token).await?;
        // The replica counts the socket when its task registers it, a moment after
        // the handshake's answer (later still on a loaded machine): look until it has.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let on = loop {
            let after = [count(replicas[0]).await, count(replicas[1]).await];
            if let Some(on) = (0..2).find(|&i| after[i] > before[i]) {
                break on;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the socket is on neither replica"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if want.is_none_or(|w| w == on) {
            drop(extra);
            return Ok((socket, on));
        }
        // Kept open so the balancer (least connections) prefers the other replica next.
        extra.push(socket);
    }
    anyhow::bail!("never landed on replica {want:?}")
}

/// Waits for the `chat.message` event with this text (a socket also gets its own).
async fn next_message(socket: &mut WsClient, text: &str) -> anyhow::Result<()> {
    while socket.recv_type("chat.message").await?["message"] != text {}
    Ok(())
}

fn send_frame(i: usize) -> Value {
    json!({"action": "send_message", "message": format!("burst {i}"), "client_id": format!("burst-{i}"), "request_id": i})
}

#[actix_web::test]
async fn two_replicas_behind_nginx_chat_and_survive_a_sigterm_mid_burst() -> anyhow::Result<()> {
    let nginx_bin = nginx_binary()?;
    anyhow::ensure!(nginx_bin.exists());
    let database = TestDatabase::create(Backend::Postgres).await?;
    let prefix = format!("test-{}", random_suffix());
    let redis = redis_url();
    let scratch = std::env::temp_dir().join(format!("chat-proxy-{}", random_suffix()));
    std::fs::create_dir_all(&scratch)?;
    let env = [
        ("CHAT_ENV", "test"),
        ("CHAT_DATABASE_URL", database.url()),
        ("CHAT_REDIS_URL", redis.as_str()),
        ("CHAT_REDIS_PREFIX", prefix.as_str()),
        ("CHAT_JWT_SECRET", TEST_JWT_SECRET),
        ("CHAT_TRUST_PROXY_HEADERS", "true"),
        ("CHAT_RATE_LIMITS", "off"),
        ("CHAT_BCRYPT_COST", "4"),
        ("CHAT_LOG", "info"),
    ];
    let binary = Path::new(env!("CARGO_BIN_EXE_chat-server"));
    let mut replicas = [
        ServerProcess::start(binary, &scratch, &env)?,
        ServerProcess::start(binary, &scratch, &env)?,
    ];
    let ports = [replicas[0].port, replicas[1].port];
    let nginx = Nginx::start(ports)?;
    let client = Client {
        http: awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish(),
        base: format!("http://127.0.0.1:{}", nginx.port),
        port: nginx.port,
    };
    let result = async {
        // nginx is up when it answers its own health location.
        let mut up = false;
        for _ in 0..100 {
            if let Ok((200, _)) = client.call("GET", "/readyz", None, None).await {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::ensure!(up, "nginx never answered: {}", nginx.log());
        // Metrics are not served to the public.
        assert_eq!(client.call("GET", "/metrics", None, None).await?.0, 404);

        // Sign-up and login through the proxy.
        let mut tokens = Vec::new();
        for name in ["ann", "bob"] {
            client
                .expect(201, "POST", "/api/v1/auth/register", None, Some(json!({"username": name, "email": format!("{name}@example.com"), "password": "proxy-password-1"})))
                .await?;
            let login = client
                .expect(200, "POST", "/api/v1/auth/login", None, Some(json!({"username": name, "password": "proxy-password-1"})))
                .await?;
            tokens.push(login["access_token"].as_str().unwrap_or_default().to_owned());
        }
        let (ann, bob) = (tokens[0].clone(), tokens[1].clone());
        let chat = client
            .expect(201, "POST", "/api/v1/chats", Some(&ann), Some(json!({"name": "Proxied", "visibility": "public"})))
            .await?["id"]
            .as_i64()
            .unwrap_or_default();
        client.expect(200, "POST", &format!("/api/v1/chats/{chat}/join"), Some(&bob), Some(json!({}))).await?;

        // A 2 MB attachment passes the proxy's upload location (not its 64 KiB body
        // limit), streamed to a replica, and both replicas serve it (a shared directory
        // here; a shared volume or a bucket in the stack).
        let boundary = "proxy-upload-boundary";
        let file = vec![b'a'; 2 << 20];
        let mut form = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n\r\n"
        )
        .into_bytes();
        form.extend_from_slice(&file);
        form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut uploaded = client
            .http
            .post(format!("{}/api/v1/chats/{chat}/attachments", client.base))
            .insert_header(("authorization", format!("Bearer {ann}")))
            .insert_header(("content-type", format!("multipart/form-data; boundary={boundary}")))
            .send_body(form)
            .await
            .map_err(|e| anyhow::anyhow!("upload through the proxy: {e}"))?;
        let stored: Value = serde_json::from_slice(&uploaded.body().await?)?;
        anyhow::ensure!(uploaded.status().as_u16() == 201, "upload: {stored}");
        let file_id = stored["id"].as_i64().unwrap_or_default();
        client
            .expect(201, "POST", &format!("/api/v1/chats/{chat}/messages"), Some(&ann), Some(json!({"content": "big file", "attachments": [file_id]})))
            .await?;
        for _ in 0..2 {
            let mut got = client
                .http
                .get(format!("{}/api/v1/attachments/{file_id}", client.base))
                .insert_header(("authorization", format!("Bearer {bob}")))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("download through the proxy: {e}"))?;
            assert_eq!(got.status().as_u16(), 200);
            assert_eq!(got.body().limit(4 << 20).await?.len(), file.len());
        }
        // Any other body over 64 KiB is still refused at the proxy.
        let (status, _) = client
            .call("POST", &format!("/api/v1/chats/{chat}/messages"), Some(&ann), Some(json!({"content": "x".repeat(70_000)})))
            .await?;
        assert_eq!(status, 413);

        // Two sockets pinned to different replicas chat both ways.
        let path = format!("/ws/chats/{chat}");
        let (mut ann_ws, ann_on) = pinned(&client, &ports, &path, &ann, None).await?;
        let (mut bob_ws, bob_on) = pinned(&client, &ports, &path, &bob, Some(1 - ann_on)).await?;
        assert_ne!(ann_on, bob_on);
        ann_ws.send(json!({"action": "send_message", "message": "hi bob", "request_id": "a"})).await?;
        ann_ws.recv_type("ack").await?;
        next_message(&mut bob_ws, "hi bob").await?;
        bob_ws.send(json!({"action": "send_message", "message": "hi ann", "request_id": "b"})).await?;
        bob_ws.recv_type("ack").await?;
        next_message(&mut ann_ws, "hi ann").await?;
        // "big file", "hi bob", "hi ann".
        let before_burst = 3;

        // SIGTERM to ann's replica in the middle of a burst of sends.
        const SENDS: usize = 300;
        let mut acked: BTreeMap<String, i64> = BTreeMap::new();
        for i in 0..SENDS {
            if i < 60 {
                ann_ws.send(send_frame(i)).await?;
            } else {
                let _ = ann_ws.send(send_frame(i)).await;
            }
            if i == 60 {
                while acked.len() < 20 {
                    let ack = ann_ws.recv_type("ack").await?;
                    if let Some(n) = ack["request_id"].as_u64() {
                        acked.insert(format!("burst-{n}"), ack["seq"].as_i64().unwrap_or(0));
                    }
                }
                replicas[ann_on].terminate()?;
            }
        }
        let mut refused = BTreeSet::new();
        loop {
            match ann_ws.next_frame().await? {
                Received::Json(value) if value["type"] == "ack" => {
                    if let Some(n) = value["request_id"].as_u64() {
                        acked.insert(format!("burst-{n}"), value["seq"].as_i64().unwrap_or(0));
                    }
                }
                Received::Json(value) if value["type"] == "error" => {
                    assert_eq!(value["code"], "shutting_down", "{value}");
                    refused.insert(value["request_id"].as_u64().unwrap_or(u64::MAX));
                }
                Received::Json(_) => {}
                Received::Closed(code, reason) => {
                    assert_eq!((code, reason.as_str()), (1001, "server going away"));
                    break;
                }
            }
        }
        // The stopped replica exits cleanly within its grace.
        let status = replicas[ann_on].exited_within(Duration::from_secs(12)).await?;
        assert!(status.success(), "{status}");

        // Reconnect through nginx (it lands on the replica still up) and recover with
        // after_seq: every acknowledged message is there exactly once, nothing else.
        let last_seen = acked.values().copied().max().unwrap_or(0);
        let (mut ann_ws, now_on) = pinned(&client, &ports, &path, &ann, None).await?;
        assert_eq!(now_on, bob_on, "reconnected to the surviving replica");
        let stored = client.history_after(chat, &ann, 0).await?;
        let burst: BTreeMap<String, i64> = stored
            .iter()
            .filter_map(|m| Some((m["client_id"].as_str()?.to_owned(), m["seq"].as_i64()?)))
            .collect();
        assert_eq!(burst, acked, "stored burst messages are exactly the acknowledged ones");
        assert_eq!(stored.len(), before_burst + acked.len());
        let missed = client.history_after(chat, &ann, last_seen).await?;
        assert!(missed.is_empty(), "nothing stored after the last ack: {missed:?}");

        // The unacknowledged sends are resent with their client_ids: each lands once.
        for i in (0..SENDS).filter(|i| !acked.contains_key(&format!("burst-{i}"))) {
            ann_ws.send(send_frame(i)).await?;
            let ack = ann_ws.recv_type("ack").await?;
            assert_eq!(ack["duplicate"], false, "{ack}");
        }
        let stored = client.history_after(chat, &ann, 0).await?;
        assert_eq!(stored.len(), before_burst + SENDS);
        let seqs: Vec<i64> = stored.iter().filter_map(|m| m["seq"].as_i64()).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        // Bob, on the replica that stayed, saw every burst message live, once each.
        let mut live = BTreeSet::new();
        while live.len() < SENDS {
            let event = bob_ws.recv_type("chat.message").await?;
            let client_id = event["client_id"].as_str().unwrap_or_default().to_owned();
            if client_id.starts_with("burst-") {
                assert!(live.insert(client_id), "delivered twice: {event}");
            }
        }
        // What was refused (`shutting_down`) was not stored before the resend.
        assert!(
            refused
                .iter()
                .all(|i| !acked.contains_key(&format!("burst-{i}")))
        );
        anyhow::Ok(())
    }
    .await;
    let outputs: Vec<String> = replicas.into_iter().map(ServerProcess::stop).collect();
    if result.is_err() {
        eprintln!(
            "nginx: {}\nreplica 1: {}\nreplica 2: {}",
            nginx.log(),
            outputs[0],
            outputs[1]
        );
    }
    drop(nginx);
    let _ = delete_redis_prefix(&prefix).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
