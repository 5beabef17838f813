//! The controller's HTTP server: forge webhooks, `/metrics`, `/healthz`,
//! `/readyz`.
//!
//! Stage: triggers and observability (`DESIGN.md`), an I/O edge. It runs on
//! every replica, not only on the Lease holder: a webhook received by a
//! follower is queued like any other trigger and the reconciler decides
//! whether it may write; Prometheus scrapes every pod.
//!
//! Guarantees:
//! - `POST /webhook` queues at most one [`Trigger`] per authenticated,
//!   not-yet-seen delivery, and nothing for anything else: a bad or missing
//!   signature (401), a replay (409), a body over 1 MiB (413), a malformed
//!   payload (400).
//! - A delivery that could not be queued (queue full past the timeout,
//!   reconciler gone) is answered 503 and forgotten by the replay cache, so
//!   the forge's redelivery is accepted.
//! - Responses and logs carry the error's message, the forge and the
//!   delivery id, never the body, the signature or the secret.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

use crate::metrics::{Metrics, WebhookOutcome};
use crate::webhook::{
    self, DeliveryCache, Forge, MAX_BODY_BYTES, PullRequestEvent, PushEvent, WebhookError,
    WebhookEvent, WebhookSecret,
};

/// How long `POST /webhook` waits for room in the trigger queue. Below
/// GitHub's 10 s delivery timeout, so the forge sees our 503 rather than
/// its own timeout.
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to send a webhook body, so that slow clients
/// cannot hold connections open indefinitely.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the reconciler should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A push webhook. The reconciler fetches the branch itself; the
    /// payload's commit is a hint, not the source of truth.
    Push(PushEvent),
    /// A pull-request webhook: plan the pull request and comment.
    PullRequest(PullRequestEvent),
    /// `kompoxops reconcile --once`, the poll interval, or an operator.
    Manual,
}

/// What the handlers share. Clone is cheap (shared handles).
#[derive(Clone)]
pub struct ServerState {
    /// `None` refuses every webhook (never accept unsigned deliveries).
    pub webhook_secret: Option<WebhookSecret>,
    pub triggers: mpsc::Sender<Trigger>,
    pub metrics: Arc<Metrics>,
    /// `/readyz` answers 200 once this is set (by the controller, when its
    /// first source fetch and cluster connection succeeded).
    pub ready: Arc<AtomicBool>,
    /// How long a webhook waits for room in `triggers`.
    pub enqueue_timeout: Duration,
    deliveries: Arc<Mutex<DeliveryCache>>,
}

impl ServerState {
    pub fn new(
        webhook_secret: Option<WebhookSecret>,
        triggers: mpsc::Sender<Trigger>,
        metrics: Arc<Metrics>,
        ready: Arc<AtomicBool>,
    ) -> Self {
        ServerState {
            webhook_secret,
            triggers,
            metrics,
            ready,
            enqueue_timeout: DEFAULT_ENQUEUE_TIMEOUT,
            deliveries: Arc::new(Mutex::new(DeliveryCache::default())),
        }
    }

    /// Replaces the replay cache, e.g. to remember more deliveries.
    pub fn with_delivery_cache(mut self, cache: DeliveryCache) -> Self {
        self.deliveries = Arc::new(Mutex::new(cache));
        self
    }
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("webhook_secret", &self.webhook_secret)
            .field("enqueue_timeout", &self.enqueue_timeout)
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The routes, for [`serve`] and for tests that drive the router directly.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route(
            "/webhook",
            // The limit axum enforces while buffering; the handler also refuses
            // a declared Content-Length over it before reading anything.
            post(receive_webhook).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ServerState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(state): State<ServerState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

fn text(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, format!("{message}\n")).into_response()
}

async fn receive_webhook(State(state): State<ServerState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let forge = webhook::forge_of(&headers);
    let refuse = |e: WebhookError| {
        state
            .metrics
            .observe_webhook(forge, WebhookOutcome::from(&e));
        tracing::warn!(forge = forge.map(Forge::as_str), error = %e, "webhook refused");
        text(e.status(), e)
    };

    // A declared length over the limit is refused before reading a byte.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return refuse(WebhookError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let body =
        match tokio::time::timeout(BODY_READ_TIMEOUT, Bytes::from_request(request, &state)).await {
            Ok(Ok(body)) => body,
            Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return refuse(WebhookError::TooLarge {
                    limit: MAX_BODY_BYTES,
                });
            }
            Ok(Err(rejection)) => {
                state
                    .metrics
                    .observe_webhook(forge, WebhookOutcome::BadRequest);
                return text(StatusCode::BAD_REQUEST, rejection.body_text());
            }
            Err(_) => {
                state
                    .metrics
                    .observe_webhook(forge, WebhookOutcome::BadRequest);
                return text(StatusCode::REQUEST_TIMEOUT, "request body too slow");
            }
        };

    let delivery = match webhook::verify(&headers, &body, state.webhook_secret.as_ref()) {
        Ok(d) => d,
        Err(e) => return refuse(e),
    };
    let admitted = state
        .deliveries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .admit(&delivery);
    if let Err(e) = admitted {
        tracing::warn!(forge = %delivery.forge, delivery = delivery.id.as_deref(), "replayed webhook refused");
        state
            .metrics
            .observe_webhook(Some(delivery.forge), WebhookOutcome::from(&e));
        return text(e.status(), e);
    }

    let forge = Some(delivery.forge);
    let trigger = match &delivery.event {
        WebhookEvent::Push(p) => Trigger::Push(p.clone()),
        WebhookEvent::PullRequest(p) => Trigger::PullRequest(p.clone()),
        WebhookEvent::Ping => {
            state.metrics.observe_webhook(forge, WebhookOutcome::Ping);
            return text(StatusCode::OK, "pong");
        }
        WebhookEvent::Ignored(reason) => {
            tracing::debug!(forge = %delivery.forge, delivery = delivery.id.as_deref(), reason, "webhook ignored");
            state
                .metrics
                .observe_webhook(forge, WebhookOutcome::Ignored);
            return text(StatusCode::OK, format_args!("ignored: {reason}"));
        }
    };

    let sent = tokio::time::timeout(state.enqueue_timeout, state.triggers.send(trigger)).await;
    match sent {
        Ok(Ok(())) => {
            let depth = state.triggers.max_capacity() - state.triggers.capacity();
            state.metrics.set_queue_depth(depth);
            state
                .metrics
                .observe_webhook(forge, WebhookOutcome::Accepted);
            tracing::info!(forge = %delivery.forge, delivery = delivery.id.as_deref(), "webhook queued a reconcile");
            text(StatusCode::ACCEPTED, "queued")
        }
        Ok(Err(_)) | Err(_) => {
            state
                .deliveries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .forget(&delivery);
            state
                .metrics
                .observe_webhook(forge, WebhookOutcome::Unavailable);
            tracing::warn!(forge = %delivery.forge, delivery = delivery.id.as_deref(), "trigger queue unavailable; webhook refused for redelivery");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "10")],
                "reconciler busy, redeliver later\n",
            )
                .into_response()
        }
    }
}
