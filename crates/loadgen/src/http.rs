//! Minimal HTTP/1.1 clients: [`request`] (one `Connection: close` JSON call) for the
//! set-up calls (sign-up, groups, joins), and [`KeepAlive`], one reused connection for
//! the `history` scenario's GETs. The load generator needs a few request shapes, not a
//! general client.

use std::net::{IpAddr, SocketAddr};

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// A JSON answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body as JSON (`Null` if empty or not JSON).
    pub json: Value,
}

/// Sends one request (`Connection: close`) and reads the answer.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<Answer> {
    let mut stream = TcpStream::connect(addr).await?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line {status_line:?}"))?;
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut bytes = Vec::new();
    match length {
        Some(n) => {
            bytes.resize(n, 0);
            reader.read_exact(&mut bytes).await?;
        }
        None => {
            reader.read_to_end(&mut bytes).await?;
        }
    }
    Ok(Answer {
        status,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

/// Like [`request`], failing unless the status is 2xx.
pub async fn ok(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let answer = request(addr, method, path, token, body).await?;
    anyhow::ensure!(
        (200..300).contains(&answer.status),
        "{method} {path}: {} {}",
        answer.status,
        answer.json
    );
    Ok(answer.json)
}

/// Connects to `server` from `sources[index % len]` (any local address if none), with
/// `TCP_NODELAY`.
pub async fn connect_from(
    server: SocketAddr,
    sources: &[IpAddr],
    index: usize,
) -> std::io::Result<TcpStream> {
    let socket = match server {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(source) = sources.get(index % sources.len().max(1)) {
        socket.bind(SocketAddr::new(*source, 0))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One answer read by [`KeepAlive::get`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body_bytes: usize,
}

/// One HTTP/1.1 connection reused for many GETs (reconnected when the server closes it
/// or a request fails).
#[derive(Debug)]
pub struct KeepAlive {
    server: SocketAddr,
    sources: Vec<IpAddr>,
    index: usize,
    stream: Option<BufReader<TcpStream>>,
    body: Vec<u8>,
    /// Connections opened (the first one included).
    pub connects: u64,
}

impl KeepAlive {
    /// A client of `server` connecting from `sources[index % len]`; connects lazily.
    pub fn new(server: SocketAddr, sources: &[IpAddr], index: usize) -> Self {
        KeepAlive {
            server,
            sources: sources.to_vec(),
            index,
            stream: None,
            body: Vec::new(),
            connects: 0,
        }
    }

    /// Opens the connection now unless it is open.
    pub async fn ensure_connected(&mut self) -> std::io::Result<()> {
        if self.stream.is_none() {
            let stream = connect_from(self.server, &self.sources, self.index).await?;
            self.connects += 1;
            self.stream = Some(BufReader::with_capacity(16 * 1024, stream));
        }
        Ok(())
    }

    /// `GET path` with an optional Bearer token; reads the whole answer (Content-Length
    /// or chunked). On an I/O error the connection is dropped (the next call reconnects).
    pub async fn get(&mut self, path: &str, token: Option<&str>) -> anyhow::Result<Reply> {
        self.ensure_connected().await?;
        let result = self.exchange(path, token).await;
        match result {
            Ok((reply, keep)) => {
                if !keep {
                    self.stream = None;
                }
                Ok(reply)
            }
            Err(err) => {
                self.stream = None;
                Err(err)
            }
        }
    }

    /// The last body read.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    async fn exchange(&mut self, path: &str, token: Option<&str>) -> anyhow::Result<(Reply, bool)> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("not connected"))?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}\r\n", self.server);
        stream.get_mut().write_all(head.as_bytes()).await?;
        let (status, keep) = read_head_and_body(stream, &mut self.body).await?;
        Ok((
            Reply {
                status,
                body_bytes: self.body.len(),
            },
            keep,
        ))
    }
}

/// Reads a status line, headers and body into `body`; returns the status and whether
/// the connection stays open.
async fn read_head_and_body(
    reader: &mut (impl AsyncBufRead + Unpin),
    body: &mut Vec<u8>,
) -> anyhow::Result<(u16, bool)> {
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    anyhow::ensure!(!line.is_empty(), "connection closed");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line {line:?}"))?;
    let (mut length, mut chunked, mut keep) = (None, false, true);
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep = !value.eq_ignore_ascii_case("close");
        }
    }
    body.clear();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)?;
            let from = body.len();
            body.resize(from + size, 0);
            reader.read_exact(&mut body[from..]).await?;
            line.clear();
            reader.read_line(&mut line).await?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        reader.read_exact(body).await?;
    } else if (100..200).contains(&status) || status == 204 || status == 304 {
        // No body.
    } else {
        reader.read_to_end(body).await?;
        keep = false;
    }
    Ok((status, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_content_length_chunked_and_close() -> anyhow::Result<()> {
        let mut body = Vec::new();
        let mut r: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\nConnection: close\r\n\r\n{}";
        assert_eq!(read_head_and_body(&mut r, &mut body).await?, (200, true));
        assert_eq!(body, b"hello");
        assert_eq!(read_head_and_body(&mut r, &mut body).await?, (401, false));
        assert_eq!(body, b"{}");
        let mut r: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(read_head_and_body(&mut r, &mut body).await?, (200, true));
        assert_eq!(body, b"abcde");
        Ok(())
    }
}
