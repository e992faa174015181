//! Requests run to completion even when their client goes away.
//!
//! actix drops a request's handler future when the connection fails under it (a client
//! that resets). Cut at an arbitrary `.await`, a handler could leave its work half
//! done — a row written but the cache entry it must invalidate still there — and on
//! SQLite diesel-async waits for a cancelled call with `block_in_place`, which panics
//! on actix's single-threaded worker runtimes. So a request's future that is dropped
//! unfinished is not dropped: it moves to a task of its own on the same worker and
//! finishes there; its answer is discarded. Requests that finish normally pay no extra
//! task hop (a first version spawned every request and measured ~8 % slower).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::Instrument;

/// Middleware (`from_fn`): the rest of the chain, finished even if the connection
/// drops it.
pub fn run_to_completion<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Finish<impl Future<Output = Result<ServiceResponse<B>, Error>>> {
    Finish {
        future: Some(Box::pin(async move { next.call(req).await })),
        span: tracing::Span::current(),
    }
}

/// A future that, dropped before it is ready, is handed to the worker to finish.
pub struct Finish<F: Future + 'static> {
    future: Option<Pin<Box<F>>>,
    span: tracing::Span,
}

impl<F: Future + 'static> Future for Finish<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(future) = self.future.as_mut() else {
            // Polled again after it was ready: a caller bug; never ready twice.
            return Poll::Pending;
        };
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(output)
    }
}

impl<F: Future + 'static> Drop for Finish<F> {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            let span = std::mem::replace(&mut self.span, tracing::Span::none());
            actix_web::rt::spawn(
                async move {
                    let _ = future.await;
                }
                .instrument(span),
            );
        }
    }
}
