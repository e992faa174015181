//! WebSocket frames on the wire, without a per-socket writer task.
//!
//! Outbound: a server frame is never masked, so the bytes of an event's frame are the
//! same for every recipient — the hub encodes each event **once** ([`text`]) and every
//! socket's queue holds a reference-counted clone of it. Inbound: [`Inbound`] decodes the
//! client's frames, read straight from the socket, with actix-http's codec and joins
//! continuations.

use std::future::Future;
use std::io;

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::rt::net::TcpStream;
use actix_web::web::{Bytes, BytesMut};

const FIN_TEXT: u8 = 0x81;
const FIN_CLOSE: u8 = 0x88;
const FIN_PING: u8 = 0x89;
const FIN_PONG: u8 = 0x8A;
/// Control frames carry at most 125 bytes (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

fn frame(first: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    out.extend_from_slice(&[first]);
    match payload.len() {
        // Each arm's cast is exact: the length fits the field it is written to.
        len @ 0..=125 => out.extend_from_slice(&[len as u8]),
        len @ 126..=0xFFFF => {
            out.extend_from_slice(&[126]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.extend_from_slice(&[127]);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out.freeze()
}

/// A complete text frame.
pub fn text(payload: &str) -> Bytes {
    frame(FIN_TEXT, payload.as_bytes())
}

/// A ping with an empty payload.
pub fn ping() -> Bytes {
    frame(FIN_PING, &[])
}

/// The pong answering a ping (its payload echoed, cut to the control-frame limit).
pub fn pong(payload: &[u8]) -> Bytes {
    frame(FIN_PONG, &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)])
}

/// A close frame with a code and a reason (cut at a character boundary to fit).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(FIN_CLOSE, &payload)
}

/// The text payload of a frame made by [`text`] (tests and diagnostics).
pub fn text_payload(frame: &[u8]) -> Option<&str> {
    let (&first, rest) = frame.split_first()?;
    if first != FIN_TEXT {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let skip = match len {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    std::str::from_utf8(rest.get(skip..)?).ok()
}

/// A client frame, continuations joined.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message (refused by the protocol; its bytes are not kept).
    Binary,
    /// A ping, with the payload to echo.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The client closes.
    Close,
}

/// Where a socket's bytes come from.
pub trait Source {
    /// Appends what can be read to `buf`; `Ok(0)` once the peer has closed. Cancel-safe:
    /// nothing is read until it can be appended.
    fn read(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>>;
}

/// How much room a read takes. Taken only once the socket is readable, so a socket
/// waiting for its client holds no read buffer.
const READ_CHUNK: usize = 4096;

impl Source for &TcpStream {
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            self.readable().await?;
            buf.reserve(READ_CHUNK);
            match self.try_read_buf(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // Readiness was stale (nothing to read after all): wait without the
                    // room just taken.
                    if buf.is_empty() {
                        *buf = BytesMut::new();
                    }
                }
                result => return result,
            }
        }
    }
}

/// Decodes the client's frames from its socket.
pub struct Inbound<S> {
    source: S,
    buf: BytesMut,
    codec: Codec,
    /// A message arriving in continuation frames: is it text, and its bytes so far.
    partial: Option<(bool, BytesMut)>,
    max_size: usize,
    ended: bool,
}

impl<S: Source> Inbound<S> {
    /// Frames (and joined messages) over `max_size` bytes are refused with
    /// [`ProtocolError::Overflow`]. `read` holds bytes already read from the socket
    /// (frames a client sent right behind its handshake).
    pub fn new(source: S, read: BytesMut, max_size: usize) -> Self {
        Inbound {
            source,
            buf: read,
            codec: Codec::new().max_size(max_size),
            partial: None,
            max_size,
            ended: false,
        }
    }

    /// The next message; `None` once the client is gone. Cancel-safe: bytes read are
    /// kept in the buffer before any other await.
    pub async fn recv(&mut self) -> Option<Result<Incoming, ProtocolError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => match self.assemble(frame) {
                    Ok(Some(message)) => return Some(Ok(message)),
                    Ok(None) => continue,
                    Err(err) => return Some(Err(err)),
                },
                Ok(None) => {}
                Err(err) => return Some(Err(err)),
            }
            if self.ended {
                return None;
            }
            if self.buf.is_empty() {
                // An idle socket keeps no read buffer.
                self.buf = BytesMut::new();
            }
            match self.source.read(&mut self.buf).await {
                Ok(0) => self.ended = true,
                Ok(_) => {}
                Err(err) => {
                    self.ended = true;
                    return Some(Err(ProtocolError::Io(err)));
                }
            }
        }
    }

    fn assemble(&mut self, frame: Frame) -> Result<Option<Incoming>, ProtocolError> {
        Ok(Some(match frame {
            Frame::Text(bytes) => Incoming::Text(utf8(bytes.to_vec())?),
            Frame::Binary(_) => Incoming::Binary,
            Frame::Ping(bytes) => Incoming::Ping(bytes),
            Frame::Pong(_) => Incoming::Pong,
            Frame::Close(_) => Incoming::Close,
            Frame::Continuation(item) => return self.continuation(item),
        }))
    }

    fn continuation(&mut self, item: Item) -> Result<Option<Incoming>, ProtocolError> {
        let (bytes, first, last) = match item {
            Item::FirstText(bytes) => (bytes, Some(true), false),
            Item::FirstBinary(bytes) => (bytes, Some(false), false),
            Item::Continue(bytes) => (bytes, None, false),
            Item::Last(bytes) => (bytes, None, true),
        };
        match (first, self.partial.as_mut()) {
            (Some(_), Some(_)) => return Err(ProtocolError::ContinuationStarted),
            (Some(is_text), None) => {
                self.partial = Some((is_text, BytesMut::from(&bytes[..])));
                return Ok(None);
            }
            (None, None) => return Err(ProtocolError::ContinuationNotStarted),
            (None, Some((_, joined))) => {
                if joined.len() + bytes.len() > self.max_size {
                    self.partial = None;
                    return Err(ProtocolError::Overflow);
                }
                joined.extend_from_slice(&bytes);
            }
        }
        if !last {
            return Ok(None);
        }
        let Some((is_text, joined)) = self.partial.take() else {
            return Err(ProtocolError::ContinuationNotStarted);
        };
        Ok(Some(if is_text {
            Incoming::Text(utf8(joined.to_vec())?)
        } else {
            Incoming::Binary
        }))
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String, ProtocolError> {
    String::from_utf8(bytes)
        .map_err(|err| ProtocolError::Io(io::Error::new(io::ErrorKind::InvalidData, err)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::ws::CloseCode;

    fn decode_as_client(bytes: &[u8]) -> Option<Frame> {
        let mut buf = BytesMut::from(bytes);
        Codec::new()
            .client_mode()
            .max_size(1 << 20)
            .decode(&mut buf)
            .ok()
            .flatten()
    }

    #[test]
    fn frames_decode_as_a_client_sees_them() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let payload = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let Some(Frame::Text(bytes)) = decode_as_client(&text(&payload)) else {
                panic!("text frame of {len} bytes did not decode");
            };
            assert_eq!(bytes, payload.as_bytes());
            assert_eq!(text_payload(&text(&payload)), Some(payload.as_str()));
        }
        assert!(matches!(decode_as_client(&ping()), Some(Frame::Ping(p)) if p.is_empty()));
        let long = [7u8; 300];
        assert!(matches!(decode_as_client(&pong(&long)), Some(Frame::Pong(p)) if p.len() == 125));
        let Some(Frame::Close(Some(reason))) = decode_as_client(&close(4000, &"é".repeat(100)))
        else {
            panic!("close frame did not decode");
        };
        assert_eq!(reason.code, CloseCode::Other(4000));
        assert!(reason.description.is_some_and(|d| d.len() <= 123));
    }
}
