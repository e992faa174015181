//! A WebSocket client over a real socket, for protocol tests.

use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

use crate::TestApp;

/// How long a test waits for a frame before failing.
pub const WS_WAIT: Duration = Duration::from_secs(10);

/// A connected WebSocket.
pub struct WsClient {
    framed: Framed<awc::BoxedSocket, Codec>,
    /// Frames read while looking for another type, kept in arrival order.
    pending: std::collections::VecDeque<Value>,
    /// The sub-protocol the server answered, if any.
    pub protocol: Option<String>,
}

/// What [`WsClient::next_frame`] read.
#[derive(Debug)]
pub enum Received {
    /// A text frame, parsed.
    Json(Value),
    /// The close frame (1005 when it had no code, or the socket just ended).
    Closed(u16, String),
}

/// A refused handshake: the HTTP status.
#[derive(Debug)]
pub struct Refused(pub u16);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "handshake refused with {}", self.0)
    }
}

impl std::error::Error for Refused {}

impl TestApp {
    /// Opens `path` (with its query) as a WebSocket, sending `headers`.
    pub async fn ws_with(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<WsClient> {
        WsClient::connect(self.port, path, headers).await
    }

    /// Opens `path` authenticated with the bearer header.
    pub async fn ws(&self, path: &str, token: &str) -> anyhow::Result<WsClient> {
        self.ws_with(path, &[("Authorization", &format!("Bearer {token}"))])
            .await
    }

    /// The status a refused handshake answered with (fails if it was accepted).
    pub async fn ws_refused(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<u16> {
        match self.ws_with(path, headers).await {
            Ok(_) => anyhow::bail!("the handshake to {path} was accepted"),
            Err(err) => match err.downcast_ref::<Refused>() {
                Some(Refused(status)) => Ok(*status),
                None => Err(err),
            },
        }
    }
}

impl WsClient {
    /// Opens `path` (with its query) on the server at `port` as a WebSocket, sending
    /// `headers` (for tasks that hold no `TestApp`).
    pub async fn connect(port: u16, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Self> {
        let url = format!("ws://127.0.0.1:{port}{path}");
        let mut request = awc::Client::builder()
            .max_http_version(awc::http::Version::HTTP_11)
            .finish()
            .ws(url)
            .max_frame_size(1024 * 1024);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.connect().await {
            Ok((response, framed)) => {
                let protocol = response
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(WsClient {
                    framed,
                    pending: Default::default(),
                    protocol,
                })
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
                Err(Refused(status.as_u16()).into())
            }
            Err(err) => Err(anyhow::anyhow!("websocket connect failed: {err}")),
        }
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, value: Value) -> anyhow::Result<()> {
        self.send_text(&value.to_string()).await
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.framed
            .send(Message::Text(text.to_owned().into()))
            .await
            .map_err(|e| anyhow::anyhow!("send: {e}"))
    }

    /// The next text frame as JSON (answering pings on the way).
    pub async fn recv(&mut self) -> anyhow::Result<Value> {
        if let Some(value) = self.pending.pop_front() {
            return Ok(value);
        }
        self.read().await
    }

    async fn read(&mut self) -> anyhow::Result<Value> {
        loop {
            let frame = tokio::time::timeout(WS_WAIT, self.framed.next())
                .await
                .map_err(|_| anyhow::anyhow!("no frame within {WS_WAIT:?}"))?
                .ok_or_else(|| anyhow::anyhow!("the socket ended"))?
                .map_err(|e| anyhow::anyhow!("protocol error: {e}"))?;
            match frame {
                Frame::Text(bytes) => return Ok(serde_json::from_slice(&bytes)?),
                Frame::Ping(bytes) => {
                    let _ = self.framed.send(Message::Pong(bytes)).await;
                }
                Frame::Close(reason) => anyhow::bail!("closed: {reason:?}"),
                _ => {}
            }
        }
    }

    /// The next frame of this `type`. Frames of other types stay queued for later
    /// calls, so the relative order of an ack and an event does not matter.
    pub async fn recv_type(&mut self, kind: &str) -> anyhow::Result<Value> {
        self.recv_type_any(&[kind]).await
    }

    /// The next frame of any of these types (others stay queued, as for
    /// [`WsClient::recv_type`]).
    pub async fn recv_type_any(&mut self, kinds: &[&str]) -> anyhow::Result<Value> {
        let wanted = |v: &Value| kinds.iter().any(|k| v["type"] == *k);
        if let Some(at) = self.pending.iter().position(wanted) {
            return self
                .pending
                .remove(at)
                .ok_or_else(|| anyhow::anyhow!("queue changed"));
        }
        loop {
            let value = self.read().await?;
            if wanted(&value) {
                return Ok(value);
            }
            self.pending.push_back(value);
        }
    }

    /// Reads up to the first frame of type `barrier` and returns it, failing on any frame
    /// of `kinds` before it (frames already queued count too). The test arranges for the
    /// barrier to travel the same ordered path after anything that must not arrive (a
    /// reply after earlier replies, an event published after the one that must not be
    /// delivered), so "nothing arrived" is proven, not waited for.
    pub async fn expect_none_before(
        &mut self,
        kinds: &[&str],
        barrier: &str,
    ) -> anyhow::Result<Value> {
        loop {
            let value = self.recv().await?;
            let kind = value["type"].as_str().unwrap_or_default();
            anyhow::ensure!(!kinds.contains(&kind), "unexpected {value}");
            if kind == barrier {
                return Ok(value);
            }
        }
    }

    /// Sends a protocol-level ping and waits for its pong; text frames read meanwhile
    /// stay queued for later calls. The pong proves the server read the socket past
    /// everything sent before the ping.
    pub async fn ping(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        self.framed
            .send(Message::Ping(payload.to_vec().into()))
            .await
            .map_err(|e| anyhow::anyhow!("ping: {e}"))?;
        loop {
            let frame = tokio::time::timeout(WS_WAIT, self.framed.next())
                .await
                .map_err(|_| anyhow::anyhow!("no pong within {WS_WAIT:?}"))?
                .ok_or_else(|| anyhow::anyhow!("the socket ended"))?
                .map_err(|e| anyhow::anyhow!("protocol error: {e}"))?;
            match frame {
                Frame::Pong(bytes) if bytes.as_ref() == payload => return Ok(()),
                Frame::Text(bytes) => self.pending.push_back(serde_json::from_slice(&bytes)?),
                Frame::Ping(bytes) => {
                    let _ = self.framed.send(Message::Pong(bytes)).await;
                }
                Frame::Close(reason) => anyhow::bail!("closed: {reason:?}"),
                _ => {}
            }
        }
    }

    /// The next text frame or the close, in arrival order (pings answered on the way).
    pub async fn next_frame(&mut self) -> anyhow::Result<Received> {
        if let Some(value) = self.pending.pop_front() {
            return Ok(Received::Json(value));
        }
        loop {
            let frame = tokio::time::timeout(WS_WAIT, self.framed.next())
                .await
                .map_err(|_| anyhow::anyhow!("no frame within {WS_WAIT:?}"))?;
            match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    return Ok(Received::Json(serde_json::from_slice(&bytes)?));
                }
                Some(Ok(Frame::Ping(bytes))) => {
                    let _ = self.framed.send(Message::Pong(bytes)).await;
                }
                Some(Ok(Frame::Close(Some(reason)))) => {
                    return Ok(Received::Closed(
                        reason.code.into(),
                        reason.description.unwrap_or_default(),
                    ));
                }
                Some(Ok(Frame::Close(None))) | None => {
                    return Ok(Received::Closed(1005, String::new()));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => anyhow::bail!("protocol error: {err}"),
            }
        }
    }

    /// Closes the socket from the client's side (1000) and waits for the server's answer.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.framed
            .send(Message::Close(Some(awc::ws::CloseCode::Normal.into())))
            .await
            .map_err(|e| anyhow::anyhow!("close: {e}"))?;
        self.closed().await.map(|_| ())
    }

    /// Waits for the server's close frame: its code and reason.
    pub async fn closed(&mut self) -> anyhow::Result<(u16, String)> {
        loop {
            let frame = tokio::time::timeout(WS_WAIT, self.framed.next())
                .await
                .map_err(|_| anyhow::anyhow!("not closed within {WS_WAIT:?}"))?;
            match frame {
                Some(Ok(Frame::Close(Some(reason)))) => {
                    return Ok((reason.code.into(), reason.description.unwrap_or_default()));
                }
                Some(Ok(Frame::Close(None))) | None => return Ok((1005, String::new())),
                Some(Ok(_)) => {}
                Some(Err(err)) => anyhow::bail!("protocol error: {err}"),
            }
        }
    }

    /// Fails if a text frame of one of `kinds` arrives within `window`. A window can
    /// pass by luck: use [`WsClient::expect_none_before`] with a barrier wherever one
    /// exists. What is left here is presence after a socket closes, decided by the closing
    /// socket's own task, which publishes nothing when nothing changed.
    pub async fn expect_none(&mut self, kinds: &[&str], window: Duration) -> anyhow::Result<()> {
        if let Some(value) = self
            .pending
            .iter()
            .find(|v| kinds.contains(&v["type"].as_str().unwrap_or_default()))
        {
            anyhow::bail!("unexpected {value}");
        }
        let deadline = tokio::time::Instant::now() + window;
        loop {
            match tokio::time::timeout_at(deadline, self.framed.next()).await {
                Err(_) => return Ok(()),
                Ok(Some(Ok(Frame::Text(bytes)))) => {
                    let value: Value = serde_json::from_slice(&bytes)?;
                    let kind = value["type"].as_str().unwrap_or_default();
                    anyhow::ensure!(!kinds.contains(&kind), "unexpected {value}");
                }
                Ok(Some(Ok(Frame::Close(reason)))) => anyhow::bail!("closed: {reason:?}"),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(err))) => anyhow::bail!("protocol error: {err}"),
                Ok(None) => anyhow::bail!("the socket ended"),
            }
        }
    }
}
