//! Several load-generator processes for one run (a process is capped at 20 000 open
//! files here, and the `idle` target is 19 000 server sockets).
//!
//! The parent sets everything up once, keeps shard 0 for itself, and starts shards
//! 1..N as copies of its own executable with `--shard i/N --shard-file FILE`: the file
//! (mode 0600, removed by the parent) holds the shard's configuration and set-up data
//! (members and tokens). Each child connects its share, then speaks a line protocol:
//!
//! ```text
//! child → parent (stdout)   connected <sockets>
//! parent → child (stdin)    go
//! child → parent (stdout)   outcome <JSON>
//! ```
//!
//! The parent reads the server's memory once every shard has said `connected`, then says
//! `go` to all, so the measured windows coincide. Outcomes carry their latency histogram
//! bucket by bucket (see [`crate::histogram`]); the parent merges counts and histograms
//! exactly. A chat's members all live in one shard, so seq accounting stays exact.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::scenario::Member;

/// `i/N`: which shard of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardId {
    /// 0-based index.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for ShardId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (i, n) = s.split_once('/').ok_or("expected i/N")?;
        let index = i.parse().map_err(|_| "bad shard index")?;
        let count = n.parse().map_err(|_| "bad shard count")?;
        if index >= count {
            return Err("shard index must be below the count".into());
        }
        Ok(ShardId { index, count })
    }
}

/// Splits members into `count` shards, whole chats at a time (chat k of the list goes to
/// shard k mod `count`), keeping each shard's members in order.
pub fn split_by_chat(members: Vec<Member>, count: usize) -> Vec<Vec<Member>> {
    let count = count.max(1);
    let mut shards = vec![Vec::new(); count];
    let mut chat_index = 0;
    let mut previous = None;
    for member in members {
        if previous.is_some_and(|p| p != member.chat) {
            chat_index += 1;
        }
        previous = Some(member.chat);
        shards[chat_index % count].push(member);
    }
    shards
}

/// Splits `total` into `count` near-equal shares (the first ones one bigger).
pub fn share(total: usize, count: usize) -> Vec<usize> {
    let count = count.max(1);
    (0..count)
        .map(|i| total / count + usize::from(i < total % count))
        .collect()
}

/// Writes a shard's set-up data readable by this user only.
pub fn write_shard_file(path: &Path, data: &impl Serialize) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&serde_json::to_vec(data)?)?;
    Ok(())
}

/// Reads a shard file written by [`write_shard_file`].
pub fn read_shard_file<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

/// A shard file path unique to this run, target and shard.
pub fn shard_file_path(run_id: &str, target: &str, index: usize) -> PathBuf {
    std::env::temp_dir().join(format!(
        "chat-loadgen-{}-{run_id}-{target}-{index}.json",
        std::process::id()
    ))
}

/// A running child shard, seen from the parent.
#[derive(Debug)]
pub struct ChildShard {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    file: PathBuf,
}

impl ChildShard {
    /// Starts `exe SCENARIO --shard i/N --shard-file FILE` (stderr is inherited; the
    /// child is killed if this handle is dropped first).
    pub fn spawn(exe: &Path, scenario: &str, id: ShardId, file: PathBuf) -> anyhow::Result<Self> {
        let mut child = Command::new(exe)
            .arg(scenario)
            .arg("--shard")
            .arg(format!("{}/{}", id.index, id.count))
            .arg("--shard-file")
            .arg(&file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow::anyhow!("child has no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("child has no stdout"))?;
        Ok(ChildShard {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            file,
        })
    }

    async fn line(&mut self, what: &str) -> anyhow::Result<String> {
        match self.lines.next_line().await? {
            Some(line) => Ok(line),
            None => {
                let status = self.child.wait().await?;
                anyhow::bail!("a load-generator shard ended ({status}) before saying {what:?}")
            }
        }
    }

    /// Waits for `connected N`; returns N.
    pub async fn connected(&mut self) -> anyhow::Result<usize> {
        let line = self.line("connected").await?;
        line.strip_prefix("connected ")
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("unexpected line from a shard: {line:?}"))
    }

    /// Lets the shard start its load.
    pub async fn go(&mut self) -> anyhow::Result<()> {
        self.stdin.write_all(b"go\n").await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Waits for the shard's outcome and its exit.
    pub async fn outcome<T: DeserializeOwned>(mut self) -> anyhow::Result<T> {
        let line = self.line("outcome").await?;
        let json = line
            .strip_prefix("outcome ")
            .ok_or_else(|| anyhow::anyhow!("unexpected line from a shard: {line:?}"))?;
        let outcome = serde_json::from_str(json)?;
        let status = self.child.wait().await?;
        anyhow::ensure!(status.success(), "a load-generator shard failed: {status}");
        Ok(outcome)
    }
}

impl Drop for ChildShard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Child side: says `connected N` and waits for `go`.
pub async fn child_connected(sockets: usize) -> anyhow::Result<()> {
    let mut out = tokio::io::stdout();
    out.write_all(format!("connected {sockets}\n").as_bytes())
        .await?;
    out.flush().await?;
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    anyhow::ensure!(
        line.trim() == "go",
        "expected go from the parent, got {line:?}"
    );
    Ok(())
}

/// Child side: prints the outcome line.
pub async fn child_outcome(outcome: &impl Serialize) -> anyhow::Result<()> {
    let mut out = tokio::io::stdout();
    out.write_all(format!("outcome {}\n", serde_json::to_string(outcome)?).as_bytes())
        .await?;
    out.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(chat: i64) -> Member {
        Member {
            peer: None,
            chat,
            token: None,
            sends: true,
        }
    }

    #[test]
    fn chats_stay_whole() {
        let members: Vec<Member> = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
            .into_iter()
            .map(member)
            .collect();
        let shards = split_by_chat(members, 2);
        let chats = |s: &Vec<Member>| s.iter().map(|m| m.chat).collect::<Vec<_>>();
        assert_eq!(chats(&shards[0]), [1, 1, 1, 3, 3, 3]);
        assert_eq!(chats(&shards[1]), [2, 2, 2, 4]);
    }

    #[test]
    fn shares_add_up() {
        assert_eq!(share(10, 3), [4, 3, 3]);
        assert_eq!(share(2, 4), [1, 1, 0, 0]);
        assert_eq!(share(5, 1), [5]);
    }

    #[test]
    fn shard_ids_parse() {
        assert_eq!("1/3".parse::<ShardId>(), Ok(ShardId { index: 1, count: 3 }));
        assert!("3/3".parse::<ShardId>().is_err());
        assert!("x".parse::<ShardId>().is_err());
    }
}
