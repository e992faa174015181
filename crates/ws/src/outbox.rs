//! A socket's outbound queue, drained by the socket's own writer.
//!
//! The hub (events) and the socket task (replies, pings, the close frame) push
//! already-encoded frames; the socket's writer ([`Drain`], see `upgrade`) takes every
//! frame queued and writes them in one vectored write straight from the shared frames.
//! So a delivered event costs no task hop, no allocation, no encoding and no copy per
//! socket, and frames that queue up while the socket is busy leave in one write.
//!
//! The queue is bounded in **bytes**, checked on every push: a client that does not read
//! (while it keeps asking for large replies, or while its chats are busy) holds at most
//! its budget plus one frame, and is then closed as lagging. A frame larger than the
//! budget is still taken while the queue is under it, so a client that reads gets every
//! reply.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use chat_services::metrics::Metrics;
use futures_util::Stream;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds its byte budget: the client is not reading fast enough.
    Full,
    /// The connection is gone or closing.
    Closed,
}

/// What a queued frame costs besides its bytes (its `Bytes` handle and queue slot), so
/// that a flood of tiny frames is bounded too.
pub const FRAME_OVERHEAD: usize = 64;

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// Bytes queued (frames plus [`FRAME_OVERHEAD`] each).
    bytes: usize,
    waker: Option<Waker>,
    /// Set once the close frame is queued (or the connection is gone): nothing more.
    closed: bool,
    /// When the connection last took a frame while others waited (or when the first of
    /// the waiting frames was queued).
    progress: Option<Instant>,
    /// `progress` is still when the first of the waiting frames was queued (nothing of
    /// this run of frames has been taken yet).
    run_start: bool,
    /// Frames queue but are not handed to the connection yet (until the socket task has
    /// re-checked its access and sent its `?history` page).
    held: bool,
    /// Refuses new frames (the socket was told to close: a revoked session or a removed
    /// member gets nothing more); only the close frame still goes in.
    sealed: bool,
}

/// The frames waiting for one socket.
pub struct Outbox {
    state: Mutex<State>,
    max_bytes: usize,
}

impl State {
    /// Whether another frame may be queued: while what is queued is under the budget,
    /// any one frame is taken (a reply may be larger than the budget, and a client that
    /// reads must still get it), so a queue holds at most its budget plus one frame.
    fn fits(&self, max_bytes: usize) -> bool {
        self.bytes < max_bytes
    }

    fn pop(&mut self) -> Option<Bytes> {
        let frame = self.frames.pop_front()?;
        self.bytes = self.bytes.saturating_sub(frame.len() + FRAME_OVERHEAD);
        Some(frame)
    }

    /// Takes the next frame for the connection, noting the progress.
    fn take(&mut self) -> Option<Bytes> {
        let frame = self.pop()?;
        if self.frames.is_empty() {
            self.progress = None;
            if self.frames.capacity() > 64 {
                // A burst is over: an idle socket keeps no large queue.
                self.frames = VecDeque::new();
            }
        } else {
            self.progress = Some(Instant::now());
        }
        Some(frame)
    }

    fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }
}

impl Outbox {
    /// A queue of at most `max_bytes` (beyond its first frame).
    pub fn new(max_bytes: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::new(State::default()),
            max_bytes,
        })
    }

    /// A queue that keeps its frames until [`Outbox::release`].
    pub fn held(max_bytes: usize) -> Arc<Outbox> {
        let outbox = Outbox::new(max_bytes);
        outbox.lock().held = true;
        outbox
    }

    /// Lets the connection take the queued frames.
    pub fn release(&self) {
        let waker = {
            let mut state = self.lock();
            state.held = false;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Refuses every later frame but the close frame; with `discard_queued`, also drops
    /// what is queued and not yet taken.
    pub fn seal(&self, discard_queued: bool) {
        let mut state = self.lock();
        state.sealed = true;
        if discard_queued {
            state.clear();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation completes before the guard drops: a poisoned state is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame at the front (the `?history` page, pushed while held, goes before
    /// the live events that queued meanwhile).
    pub fn push_front(&self, frame: Bytes) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closed || state.sealed {
            return Err(Refused::Closed);
        }
        if !state.fits(self.max_bytes) {
            return Err(Refused::Full);
        }
        if state.frames.is_empty() {
            state.progress = Some(Instant::now());
            state.run_start = true;
        }
        state.bytes += frame.len() + FRAME_OVERHEAD;
        state.frames.push_front(frame);
        Ok(())
    }

    /// Queues a frame.
    pub fn push(&self, frame: Bytes) -> Result<(), Refused> {
        let waker = {
            let mut state = self.lock();
            if state.closed || state.sealed {
                return Err(Refused::Closed);
            }
            if !state.fits(self.max_bytes) {
                return Err(Refused::Full);
            }
            if state.frames.is_empty() {
                state.progress = Some(Instant::now());
                state.run_start = true;
            }
            state.bytes += frame.len() + FRAME_OVERHEAD;
            state.frames.push_back(frame);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Queues the close frame after what is already queued (or, if the client is not
    /// reading — `discard_queued` — instead of it), and ends the stream after it.
    pub fn close(&self, frame: Bytes, discard_queued: bool) {
        let waker = {
            let mut state = self.lock();
            if state.closed {
                return;
            }
            if discard_queued {
                state.clear();
            }
            state.bytes += frame.len() + FRAME_OVERHEAD;
            state.frames.push_back(frame);
            state.closed = true;
            state.held = false;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// How long frames have waited without the connection taking any (`None`: nothing
    /// waits).
    pub fn stalled_for(&self) -> Option<Duration> {
        let state = self.lock();
        if state.frames.is_empty() {
            return None;
        }
        state.progress.map(|at| at.elapsed())
    }

    /// Frames queued now.
    pub fn len(&self) -> usize {
        self.lock().frames.len()
    }

    /// Bytes queued now (frames plus their overhead).
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every queued frame (tests: what the socket would have been sent).
    pub fn take_all(&self) -> Vec<Bytes> {
        let mut state = self.lock();
        state.bytes = 0;
        state.frames.drain(..).collect()
    }

    /// The next frame for the connection; `waited` gets how long the oldest of a run of
    /// queued frames waited to be taken.
    fn poll_frame(
        &self,
        cx: &mut Context<'_>,
        waited: &mut Option<Duration>,
    ) -> Poll<Option<Bytes>> {
        let mut state = self.lock();
        if state.held {
            if !state
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        if !state.frames.is_empty() && std::mem::take(&mut state.run_start) {
            *waited = state.progress.map(|at| at.elapsed());
        }
        if let Some(frame) = state.take() {
            return Poll::Ready(Some(frame));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// A frame already queued and released, if any (never waits, never registers).
    fn take_queued(&self) -> Option<Bytes> {
        let mut state = self.lock();
        if state.held {
            return None;
        }
        state.take()
    }

    fn disconnected(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.frames = VecDeque::new();
        state.bytes = 0;
        state.waker = None;
    }
}

/// The connection's end of a socket's queue: what the socket's writer takes frames from.
pub struct Drain {
    outbox: Arc<Outbox>,
    metrics: Option<Arc<Metrics>>,
}

impl Drain {
    /// The end draining `outbox`.
    pub fn new(outbox: Arc<Outbox>) -> Self {
        Drain {
            outbox,
            metrics: None,
        }
    }

    /// The end draining `outbox`, observing how long its frames wait
    /// (`chat_ws_outbox_wait_seconds`).
    pub fn observed(outbox: Arc<Outbox>, metrics: Arc<Metrics>) -> Self {
        Drain {
            outbox,
            metrics: Some(metrics),
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut waited = None;
        let frame = self.outbox.poll_frame(cx, &mut waited);
        if let (Some(waited), Some(metrics)) = (waited, &self.metrics) {
            metrics.ws_outbox_wait.observe(waited.as_secs_f64());
        }
        frame
    }

    /// Waits for the next frame and takes it with every frame queued behind it, up to
    /// `max_bytes` (they leave in one write); `false` once the queue is closed and empty.
    pub async fn next_batch(&mut self, batch: &mut Vec<Bytes>, max_bytes: usize) -> bool {
        let Some(first) = std::future::poll_fn(|cx| self.poll_frame(cx)).await else {
            return false;
        };
        let mut bytes = first.len();
        batch.push(first);
        while bytes < max_bytes {
            match self.outbox.take_queued() {
                Some(frame) => {
                    bytes += frame.len();
                    batch.push(frame);
                }
                None => break,
            }
        }
        true
    }
}

impl Stream for Drain {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.get_mut().poll_frame(cx)
    }
}

impl Drop for Drain {
    /// The connection is gone: later pushes are refused instead of piling up.
    fn drop(&mut self) {
        self.outbox.disconnected();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn frames_leave_in_order_and_the_close_frame_ends_the_stream() {
        let outbox = Outbox::new(1024);
        let mut body = Drain::new(outbox.clone());
        outbox.push(Bytes::from_static(b"a")).ok();
        outbox.push(Bytes::from_static(b"b")).ok();
        outbox.close(Bytes::from_static(b"bye"), false);
        assert_eq!(
            outbox.push(Bytes::from_static(b"late")),
            Err(Refused::Closed)
        );
        let mut seen = Vec::new();
        while let Some(frame) = body.next().await {
            seen.push(frame);
        }
        assert_eq!(seen, ["a", "b", "bye"]);
    }

    #[test]
    fn a_full_queue_refuses_and_reports_the_stall() {
        let outbox = Outbox::new(1 + FRAME_OVERHEAD + 1);
        assert_eq!(outbox.stalled_for(), None);
        assert!(outbox.push(Bytes::from_static(b"1")).is_ok());
        assert!(outbox.push(Bytes::from_static(b"2")).is_ok());
        assert_eq!(outbox.push(Bytes::from_static(b"3")), Err(Refused::Full));
        assert!(outbox.stalled_for().is_some());
        outbox.close(Bytes::from_static(b"bye"), true);
        assert_eq!(outbox.take_all(), ["bye"]);
    }

    #[tokio::test]
    async fn the_budget_is_in_bytes_and_frees_as_frames_leave() {
        let outbox = Outbox::new(1000);
        let mut body = Drain::new(outbox.clone());
        let big = Bytes::from(vec![b'x'; 5000]);
        assert!(
            outbox.push(big.clone()).is_ok(),
            "a queue under its budget takes one frame larger than the budget"
        );
        assert_eq!(outbox.queued_bytes(), 5000 + FRAME_OVERHEAD);
        assert_eq!(
            outbox.push(Bytes::from_static(b"small")),
            Err(Refused::Full),
            "nothing more while over the budget"
        );
        assert_eq!(body.next().await, Some(big.clone()));
        assert_eq!(outbox.queued_bytes(), 0);
        let frame = Bytes::from(vec![b'y'; 400]);
        assert!(outbox.push(frame.clone()).is_ok());
        assert!(outbox.push(frame.clone()).is_ok());
        assert!(
            outbox.push(big.clone()).is_ok(),
            "928 bytes queued: under the budget, so even a big reply is taken"
        );
        assert_eq!(
            outbox.push(frame.clone()),
            Err(Refused::Full),
            "over the budget now"
        );
        assert_eq!(outbox.len(), 3);
    }

    #[tokio::test]
    async fn a_held_outbox_keeps_frames_and_a_sealed_one_takes_only_the_close_frame() {
        let outbox = Outbox::held(1024);
        let mut body = Drain::new(outbox.clone());
        outbox.push(Bytes::from_static(b"event")).ok();
        let early = futures_util::FutureExt::now_or_never(body.next());
        assert!(early.is_none(), "nothing leaves before release");
        outbox.push_front(Bytes::from_static(b"history")).ok();
        outbox.release();
        assert_eq!(body.next().await, Some(Bytes::from_static(b"history")));
        assert_eq!(body.next().await, Some(Bytes::from_static(b"event")));
        outbox.push(Bytes::from_static(b"queued")).ok();
        outbox.seal(true);
        assert_eq!(
            outbox.push(Bytes::from_static(b"late")),
            Err(Refused::Closed)
        );
        outbox.close(Bytes::from_static(b"bye"), false);
        assert_eq!(body.next().await, Some(Bytes::from_static(b"bye")));
        assert!(body.next().await.is_none());
    }

    #[test]
    fn a_dropped_body_refuses_pushes() {
        let outbox = Outbox::new(1024);
        drop(Drain::new(outbox.clone()));
        assert_eq!(outbox.push(Bytes::from_static(b"x")), Err(Refused::Closed));
    }
}
