//! The real `chat-server` binary as a child process (signals, exit codes, logs).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A `chat-server serve` child whose stdout and stderr lines are collected.
pub struct ServerProcess {
    /// The child.
    pub child: Child,
    /// The port it listens on.
    pub port: u16,
    lines: Receiver<String>,
}

impl ServerProcess {
    /// Starts `binary serve` in `dir` on a free loopback port (no `CHAT_` variable of
    /// the test's environment leaks in; `env` is added) and waits for its `listening`
    /// line (human-readable logs: leave `CHAT_ENV` unset or `test`).
    pub fn start(binary: &Path, dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHAT_")) {
            command.env_remove(key);
        }
        let mut child = command
            .arg("serve")
            .current_dir(dir)
            .env("CHAT_BIND", "127.0.0.1:0")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, lines) = channel();
        let outputs: [Box<dyn Read + Send>; 2] = [
            Box::new(
                child
                    .stdout
                    .take()
                    .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
            ),
            Box::new(
                child
                    .stderr
                    .take()
                    .ok_or_else(|| anyhow::anyhow!("no stderr"))?,
            ),
        ];
        for output in outputs {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut served = ServerProcess {
            child,
            lines,
            port: 0,
        };
        let mut seen = Vec::new();
        while served.port == 0 {
            let line = served
                .lines
                .recv_timeout(Duration::from_secs(60))
                .map_err(|e| anyhow::anyhow!("no listening line ({e}): {seen:?}"))?;
            if line.contains("listening") {
                served.port = line
                    .split_once(" port=")
                    .and_then(|(_, rest)| rest.split(' ').next())
                    .and_then(|port| port.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("no port in {line}"))?;
            }
            seen.push(line);
        }
        Ok(served)
    }

    /// Sends SIGTERM (what a process manager sends to stop it).
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        Ok(())
    }

    /// Waits up to `within` for the process to exit.
    pub async fn exited_within(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(started.elapsed() < within, "still running after {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (if still running) and returns everything it printed after
    /// `listening`.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.lines.iter().collect::<Vec<_>>().join("\n")
    }
}

/// A port free on the loopback now (a later bind may still race another process).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
