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
//!
//! Limits: the task is spawned with `spawn_local`, so `Finish` must be dropped inside
//! a worker's `LocalSet` (always true under actix-web); graceful shutdown does not wait
//! for such tasks (a worker that stops drops them); and a client that resets its
//! connections does not hold a connection slot while its abandoned requests finish —
//! only the database pool bounds them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use chat_services::AppContext;

/// Middleware (`from_fn`): the rest of the chain, finished even if the connection
/// drops it.
pub fn run_to_completion<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Finish<impl Future<Output = Result<ServiceResponse<B>, Error>>> {
    let metrics = req
        .app_data::<web::Data<AppContext>>()
        .map(|ctx| ctx.metrics.clone());
    Finish {
        future: Some(Box::pin(async move { next.call(req).await })),
        span: tracing::Span::current(),
        metrics,
    }
}

/// A future that, dropped before it is ready, is handed to the worker to finish.
pub struct Finish<F: Future + 'static> {
    future: Option<Pin<Box<F>>>,
    span: tracing::Span,
    /// Counts abandoned requests (`http_requests_abandoned_total`), if registered.
    metrics: Option<std::sync::Arc<chat_services::metrics::Metrics>>,
}

impl<F: Future + 'static> Future for Finish<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(future) = self.future.as_mut() else {
            panic!("`Finish` polled after it completed");
        };
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(output)
    }
}

impl<F: Future + 'static> Drop for Finish<F> {
    fn drop(&mut self) {
        // Dropped while unwinding from a panic in the handler itself: the future is
        // broken (polling it again would panic anew), so it is only dropped.
        if std::thread::panicking() {
            return;
        }
        if let Some(future) = self.future.take() {
            if let Some(metrics) = &self.metrics {
                metrics.http_abandoned.inc();
            }
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
