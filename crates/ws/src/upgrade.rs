//! The socket after the upgrade: actix-http's HTTP/1 upgrade hook
//! (`HttpServiceBuilder::upgrade`) hands every `Connection: Upgrade` request here with
//! the connection itself. The request still goes through the whole actix-web app (its
//! routing, middleware, handshake checks and problem responses); when the app accepts a
//! WebSocket (answers 101 and leaves a [`Connection`] in the request's [`SessionSlot`]),
//! the socket is served here on the bare TCP stream — the HTTP dispatcher and its
//! buffers are gone by then, so an idle socket holds no buffer at all (see
//! `docs/decisions.md`). Any other answer is written and the connection closed.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use actix_codec::{Encoder, Framed};
use actix_http::body::{BodySize, MessageBody};
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, Request, Response};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::rt::net::TcpStream;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpMessage, HttpRequest};

use crate::outbox::Drain;
use crate::session::Connection;

/// Where a handshake handler leaves the accepted socket for the upgrade to serve. Only
/// requests that came through the upgrade hook carry one: a handler that finds none
/// refuses (there is no connection to hand over).
#[derive(Clone, Default)]
pub struct SessionSlot(Rc<Cell<Option<Box<Connection>>>>);

impl SessionSlot {
    /// The slot of a request that may be upgraded (`None`: not an upgrade request).
    pub fn of(req: &HttpRequest) -> Option<SessionSlot> {
        req.extensions().get::<SessionSlot>().cloned()
    }

    /// Leaves the accepted socket to be served once the 101 is written.
    pub fn put(&self, connection: Connection) {
        if let Some(replaced) = self.0.replace(Some(Box::new(connection))) {
            replaced.abandon();
        }
    }

    fn take(&self) -> Option<Box<Connection>> {
        self.0.take()
    }
}

/// Most bytes of queued frames one write takes.
const MAX_WRITE: usize = 256 * 1024;
/// Most frames one write takes.
const MAX_WRITE_FRAMES: usize = 64;
/// After the session ended, how long its last frames (the close frame) may take to leave.
pub(crate) const CLOSE_FLUSH: Duration = Duration::from_secs(5);
/// After the server's FIN, how long the client's last bytes are read (and dropped) so
/// that closing does not reset the connection under the close frame.
const LINGER: Duration = Duration::from_secs(2);

/// Serves one upgrade request: runs it through `app`, writes the answer and, when the
/// app accepted a WebSocket, serves the socket until it closes. A connection that fails
/// meanwhile is the client's business: it is logged at debug level only.
///
/// This future lives inside the connection's task for the socket's whole life, and that
/// task is sized for it whatever the connection carries (plain HTTP too): the handshake
/// and the session are boxed, so it holds two pointers, and the handshake's memory is
/// freed once answered.
pub async fn serve_upgrade<S, B>(app: &S, req: Request, framed: Framed<TcpStream, Codec>)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let accepted = match Box::pin(answer(app, req, framed)).await {
        Ok(Some(accepted)) => accepted,
        Ok(None) => return,
        Err(err) => {
            tracing::debug!(error = %err, "upgrade request failed");
            return;
        }
    };
    let Accepted {
        connection,
        stream,
        read,
    } = accepted;
    Box::pin(async move {
        let stream = Rc::new(stream);
        Connection::run(*connection, stream.clone(), read).await;
        // The writer is done with it, unless it was cut off (a client that does not
        // read): then the last reference closes it without ceremony.
        if let Ok(stream) = Rc::try_unwrap(stream) {
            close(stream).await;
        }
    })
    .await;
}

/// A socket whose 101 is written, ready to be served.
struct Accepted {
    connection: Box<Connection>,
    stream: TcpStream,
    /// What the client sent behind its handshake.
    read: BytesMut,
}

/// Runs the request through the app and writes its answer: a 101 hands the socket on,
/// anything else closes the connection after it.
async fn answer<S, B>(
    app: &S,
    req: Request,
    framed: Framed<TcpStream, Codec>,
) -> io::Result<Option<Accepted>>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let slot = SessionSlot::default();
    req.extensions_mut().insert(slot.clone());
    let response = match app.call(req).await {
        Ok(response) => response.into_parts().1.map_into_boxed_body(),
        Err(err) => err.error_response(),
    };
    let accepted = slot.take();
    drop(slot);
    let parts = framed.into_parts();
    let (stream, mut codec) = (parts.io, parts.codec);
    // The dispatcher's buffers (8 KiB each) must not live as long as the socket: what the
    // client sent behind its handshake is copied out.
    let read = BytesMut::from(&parts.read_buf[..]);
    drop((parts.read_buf, parts.write_buf));
    let mut head = BytesMut::new();
    let response: Response<_> = response.into();
    match accepted {
        Some(connection) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let written = codec
                .encode(
                    Message::Item((response.drop_body(), BodySize::None)),
                    &mut head,
                )
                .map_err(io::Error::other);
            let written = match written {
                Ok(()) => write_all(&stream, head.freeze()).await,
                Err(err) => Err(err),
            };
            if let Err(err) = written {
                connection.abandon();
                return Err(err);
            }
            Ok(Some(Accepted {
                connection,
                stream,
                read,
            }))
        }
        accepted => {
            if let Some(connection) = accepted {
                // A middleware turned the 101 into something else: nothing to serve.
                connection.abandon();
            }
            let (mut response, body) = response.into_parts();
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
            let body = actix_web::body::to_bytes(body).await.unwrap_or_default();
            let size = BodySize::Sized(body.len() as u64);
            codec
                .encode(Message::Item((response, size)), &mut head)
                .and_then(|()| codec.encode(Message::Chunk(Some(body)), &mut head))
                .and_then(|()| codec.encode(Message::Chunk(None), &mut head))
                .map_err(io::Error::other)?;
            write_all(&stream, head.freeze()).await?;
            close(stream).await;
            Ok(None)
        }
    }
}

/// Writes a socket's queued frames as they come, until its queue is closed and empty
/// or the connection fails.
pub async fn write_frames(stream: Rc<TcpStream>, mut drain: Drain) -> io::Result<()> {
    loop {
        // A fresh list per write: an idle socket keeps none.
        let mut batch = Vec::new();
        if !drain.next_batch(&mut batch, MAX_WRITE).await {
            return Ok(());
        }
        write_vectored_all(&stream, &mut batch).await?;
    }
}

async fn write_all(stream: &TcpStream, bytes: Bytes) -> io::Result<()> {
    write_vectored_all(stream, &mut [bytes]).await
}

/// Writes every frame of `frames` (shared frames are written from where they are, not
/// copied into a buffer first).
async fn write_vectored_all(stream: &TcpStream, frames: &mut [Bytes]) -> io::Result<()> {
    let mut next = 0;
    while next < frames.len() {
        stream.writable().await?;
        let slices: Vec<IoSlice<'_>> = frames[next..]
            .iter()
            .take(MAX_WRITE_FRAMES)
            .map(|frame| IoSlice::new(frame))
            .collect();
        let mut written = match stream.try_write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(err),
        };
        drop(slices);
        while written > 0 {
            let frame = &mut frames[next];
            if written >= frame.len() {
                written -= frame.len();
                next += 1;
            } else {
                *frame = frame.slice(written..);
                written = 0;
            }
        }
        while next < frames.len() && frames[next].is_empty() {
            next += 1;
        }
    }
    Ok(())
}

/// Ends the connection politely: FIN after everything written, then the client's last
/// bytes (its close frame) are read and dropped for a moment, so that closing a socket
/// with unread data does not reset the connection before the client read ours.
async fn close(mut stream: TcpStream) {
    use tokio::io::AsyncWrite;
    if std::future::poll_fn(|cx| Pin::new(&mut stream).poll_shutdown(cx))
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::time::timeout(LINGER, async {
        // On the heap: an array here would size every socket's future, idle or not.
        let mut sink = vec![0u8; 1024];
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}
