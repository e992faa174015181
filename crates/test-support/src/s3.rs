//! A local S3-compatible server for one test: `moto` in server mode (PyPI `moto[server]`),
//! on a free loopback port, with one bucket. Started by [`S3Server::start`], killed when
//! the value is dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_db::files::{FilesConfig, S3Config};

use crate::{free_port, random_suffix};

/// How long moto gets to start answering.
const STARTING: Duration = Duration::from_secs(30);

/// A running moto server with one bucket.
pub struct S3Server {
    port: u16,
    bucket: String,
    child: Child,
}

/// The `moto_server` to run: `CHAT_TEST_MOTO_SERVER`, else the one on `PATH`, else the
/// virtualenv `.ci/run` installs it into.
fn program() -> String {
    if let Ok(path) = std::env::var("CHAT_TEST_MOTO_SERVER") {
        return path;
    }
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("moto_server").is_file())
    });
    if on_path {
        "moto_server".to_owned()
    } else {
        "/opt/moto/bin/moto_server".to_owned()
    }
}

impl S3Server {
    /// Starts moto and creates a bucket. Tried three times: a free port picked here may
    /// be taken by another test before moto binds it.
    pub async fn start() -> anyhow::Result<Self> {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::start_once().await {
                Ok(server) => return Ok(server),
                Err(err) => failures.push(err.to_string()),
            }
        }
        anyhow::bail!("no S3 server (moto) after three tries: {failures:?}")
    }

    async fn start_once() -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new(program())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "moto_server could not start ({e}); install it with `pip install 'moto[server]'` or set CHAT_TEST_MOTO_SERVER"
                )
            })?;
        let server = S3Server {
            port,
            bucket: format!("chat-test-{}", random_suffix().to_lowercase()),
            child,
        };
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(5))
            .finish();
        let started = Instant::now();
        loop {
            // moto accepts unsigned requests: creating the bucket is one plain PUT.
            match client.put(server.bucket_url()).send().await {
                Ok(response) if response.status().is_success() => return Ok(server),
                Ok(response) => anyhow::bail!("moto refused the bucket: {}", response.status()),
                Err(_) if started.elapsed() < STARTING => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => anyhow::bail!("moto did not start on port {port}: {err}"),
            }
        }
    }

    fn bucket_url(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, self.bucket)
    }

    /// The server's file-store configuration.
    pub fn config(&self) -> FilesConfig {
        FilesConfig::S3(S3Config {
            bucket: self.bucket.clone(),
            region: "us-east-1".to_owned(),
            endpoint: Some(format!("http://127.0.0.1:{}", self.port)),
            credentials: Some(("test".to_owned(), "test".to_owned())),
        })
    }

    /// The keys stored in the bucket now.
    pub async fn keys(&self) -> anyhow::Result<Vec<String>> {
        let mut response = awc::Client::new()
            .get(format!("{}?list-type=2", self.bucket_url()))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("listing the bucket: {e}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "listing the bucket: {}",
            response.status()
        );
        let body = response.body().await?;
        let text = String::from_utf8_lossy(&body);
        Ok(text
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(str::to_owned)
            .collect())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
