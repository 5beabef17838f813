//! The controller's Prometheus metrics, exposed on `/metrics` by `server`.
//!
//! Stage: observability around the reconcile loop (`DESIGN.md`). No I/O:
//! a [`Metrics`] value is shared (`Arc`) by the loop, the webhook handler
//! and the scrape handler, updated through methods named for what happened
//! (`observe_reconcile`, `set_applied_revision`, ...) and rendered as
//! OpenMetrics text by [`Metrics::encode`].
//!
//! Guarantees:
//! - Labels carry only names Kompox chose or the forge published (app
//!   names, commit ids, verbs, object kinds, forge names, outcome words),
//!   never values from Secrets, tokens or request bodies (DESIGN.md
//!   invariant 6).
//! - Label sets stay small: results and outcomes are enums, API status codes
//!   are reduced to their class, and `kompox_last_applied_revision` keeps one
//!   series per app (the previous revision's series is removed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::webhook::{Forge, WebhookError};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How one reconcile of one app ended. The variants and their labels mirror
/// `reconcile::Outcome::label`, so that the loop maps one onto the other
/// without a table of strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// Changes were applied.
    Applied,
    /// The cluster already matched the revision.
    UpToDate,
    /// The app or its workspace is suspended: nothing was written.
    Suspended,
    /// Destructive changes were held back because the app does not allow
    /// them; they are reported, not applied.
    Blocked,
    /// The app's files did not load or convert.
    LoadFailed,
    /// Planning or applying failed (retried with backoff).
    Failed,
    /// This replica does not hold the Lease; the leader applies.
    NotLeader,
}

impl ReconcileResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Applied => "applied",
            ReconcileResult::UpToDate => "up-to-date",
            ReconcileResult::Suspended => "suspended",
            ReconcileResult::Blocked => "blocked",
            ReconcileResult::LoadFailed => "load-failed",
            ReconcileResult::Failed => "failed",
            ReconcileResult::NotLeader => "not-leader",
        }
    }
}

/// The Kubernetes API verbs Kompox uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVerb {
    Get,
    List,
    Watch,
    Create,
    /// Server-side apply.
    Apply,
    Patch,
    Delete,
}

impl ApiVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVerb::Get => "get",
            ApiVerb::List => "list",
            ApiVerb::Watch => "watch",
            ApiVerb::Create => "create",
            ApiVerb::Apply => "apply",
            ApiVerb::Patch => "patch",
            ApiVerb::Delete => "delete",
        }
    }
}

/// What became of one request to `/webhook`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookOutcome {
    /// A push or pull request was queued for the reconciler.
    Accepted,
    /// GitHub's ping.
    Ping,
    /// Authenticated, nothing to do.
    Ignored,
    /// No secret configured, missing or bad signature or token.
    Unauthorized,
    Replayed,
    TooLarge,
    /// Unknown forge, malformed payload, unreadable body.
    BadRequest,
    /// The trigger queue stayed full or the reconciler is gone.
    Unavailable,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::Ping => "ping",
            WebhookOutcome::Ignored => "ignored",
            WebhookOutcome::Unauthorized => "unauthorized",
            WebhookOutcome::Replayed => "replayed",
            WebhookOutcome::TooLarge => "too_large",
            WebhookOutcome::BadRequest => "bad_request",
            WebhookOutcome::Unavailable => "unavailable",
        }
    }
}

impl From<&WebhookError> for WebhookOutcome {
    fn from(e: &WebhookError) -> Self {
        match e {
            WebhookError::NotConfigured
            | WebhookError::MissingSignature { .. }
            | WebhookError::BadSignature { .. } => WebhookOutcome::Unauthorized,
            WebhookError::Replayed => WebhookOutcome::Replayed,
            WebhookError::TooLarge { .. } => WebhookOutcome::TooLarge,
            WebhookError::BadPayload(_) | WebhookError::UnknownForge => WebhookOutcome::BadRequest,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReconcileLabels {
    app: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ApiLabels {
    verb: &'static str,
    kind: String,
    code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RevisionLabels {
    app: String,
    revision: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WebhookLabels {
    forge: &'static str,
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Reconciles take from tens of milliseconds (nothing changed) to minutes
/// (a disk created and a pod rescheduled): 50 ms doubling to ~7 min.
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

/// The controller's metrics. Share one per process (`Arc<Metrics>`); every
/// method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile_duration: HistogramFamily<ReconcileLabels>,
    reconcile_total: Family<ReconcileLabels, Counter>,
    api_requests: Family<ApiLabels, Counter>,
    queue_depth: Gauge,
    applied_revision: Family<RevisionLabels, Gauge>,
    /// app → the revision whose series is set, so that the previous
    /// revision's series can be removed; the lock also keeps remove + set
    /// of one app atomic for concurrent callers.
    applied: Mutex<HashMap<String, String>>,
    webhook_requests: Family<WebhookLabels, Counter>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kompox");
        let reconcile_duration: HistogramFamily<ReconcileLabels> =
            Family::new_with_constructor(reconcile_histogram);
        registry.register_with_unit(
            "reconcile_duration",
            "Time to reconcile one app (fetch to apply), by result",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let reconcile_total = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconcile",
            "Reconciles of one app, by result",
            reconcile_total.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Kubernetes API requests, by verb, kind and status class (error: no response)",
            api_requests.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Triggers waiting for the reconciler",
            queue_depth.clone(),
        );
        let applied_revision = Family::<RevisionLabels, Gauge>::default();
        registry.register(
            "last_applied_revision",
            "1 for the revision last applied to each app",
            applied_revision.clone(),
        );
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Requests to /webhook, by forge and outcome",
            webhook_requests.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the Lease (only the leader writes)",
            leader.clone(),
        );
        Metrics {
            registry,
            reconcile_duration,
            reconcile_total,
            api_requests,
            queue_depth,
            applied_revision,
            applied: Mutex::new(HashMap::new()),
            webhook_requests,
            leader,
        }
    }

    /// One reconcile of `app` ended with `result` after `duration`.
    pub fn observe_reconcile(&self, app: &str, result: ReconcileResult, duration: Duration) {
        let labels = ReconcileLabels {
            app: app.to_owned(),
            result: result.as_str(),
        };
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        self.reconcile_total.get_or_create(&labels).inc();
    }

    /// One Kubernetes API request; `status` is the HTTP status, `None` when
    /// no response came (connection error, timeout).
    pub fn observe_api_request(&self, verb: ApiVerb, kind: Option<&str>, status: Option<u16>) {
        self.api_requests
            .get_or_create(&ApiLabels {
                verb: verb.as_str(),
                kind: kind.unwrap_or_default().to_owned(),
                code: status_class(status),
            })
            .inc();
    }

    /// The number of triggers waiting for the reconciler.
    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// `revision` (a commit id) is now applied to `app`: its series is set to
    /// 1 and the previous revision's series removed, so that
    /// `kompox_last_applied_revision{app="x"}` has exactly one series.
    pub fn set_applied_revision(&self, app: &str, revision: &str) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = applied.get(app)
            && previous != revision
        {
            self.applied_revision.remove(&RevisionLabels {
                app: app.to_owned(),
                revision: previous.clone(),
            });
        }
        self.applied_revision
            .get_or_create(&RevisionLabels {
                app: app.to_owned(),
                revision: revision.to_owned(),
            })
            .set(1);
        applied.insert(app.to_owned(), revision.to_owned());
    }

    /// `app` left the repository: its revision series goes (its counters
    /// stay, as counters do).
    pub fn remove_app(&self, app: &str) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = applied.remove(app) {
            self.applied_revision.remove(&RevisionLabels {
                app: app.to_owned(),
                revision: previous,
            });
        }
    }

    /// One request to `/webhook`; `forge` is `None` when it could not be
    /// told (label `unknown`).
    pub fn observe_webhook(&self, forge: Option<Forge>, outcome: WebhookOutcome) {
        self.webhook_requests
            .get_or_create(&WebhookLabels {
                forge: forge.map_or("unknown", Forge::as_str),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Whether this replica holds the Lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text exposition, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, and none of our label values
        // makes the encoder fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding metrics into a String");
        out
    }
}

fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample lines of `text` (no comments), for exact assertions.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn fresh_metrics_encode_as_openmetrics() {
        let text = Metrics::new().encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Labelled families appear with their first series; the gauges are
        // there from the start.
        assert!(samples(&text).contains(&"kompox_leader 0"), "{text}");
        assert!(samples(&text).contains(&"kompox_queue_depth 0"));
    }

    #[test]
    fn every_family_is_declared_with_its_type_and_unit() {
        let m = Metrics::new();
        m.observe_reconcile("wiki", ReconcileResult::UpToDate, Duration::from_millis(80));
        m.observe_api_request(ApiVerb::Get, Some("Lease"), Some(200));
        m.set_applied_revision("wiki", "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
        m.observe_webhook(Some(Forge::Gitea), WebhookOutcome::Accepted);
        let text = m.encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for family in [
            "# TYPE kompox_reconcile_duration_seconds histogram",
            "# UNIT kompox_reconcile_duration_seconds seconds",
            "# TYPE kompox_reconcile counter",
            "# TYPE kompox_api_requests counter",
            "# TYPE kompox_queue_depth gauge",
            "# TYPE kompox_last_applied_revision gauge",
            "# TYPE kompox_webhook_requests counter",
            "# TYPE kompox_leader gauge",
        ] {
            assert!(text.contains(family), "{family} missing:\n{text}");
        }
    }

    #[test]
    fn reconcile_is_counted_and_timed_per_app_and_result() {
        let m = Metrics::new();
        m.observe_reconcile(
            "wiki",
            ReconcileResult::Applied,
            Duration::from_millis(1500),
        );
        m.observe_reconcile("wiki", ReconcileResult::Applied, Duration::from_millis(500));
        m.observe_reconcile("gitea", ReconcileResult::Failed, Duration::from_millis(30));
        let text = m.encode();
        let s = samples(&text);
        assert!(
            s.contains(&r#"kompox_reconcile_total{app="wiki",result="applied"} 2"#),
            "{text}"
        );
        assert!(s.contains(&r#"kompox_reconcile_total{app="gitea",result="failed"} 1"#));
        assert!(s.contains(
            &r#"kompox_reconcile_duration_seconds_count{app="wiki",result="applied"} 2"#
        ));
        assert!(s.contains(
            &r#"kompox_reconcile_duration_seconds_sum{app="wiki",result="applied"} 2.0"#
        ));
        // 1.5 s falls in the 1.6 s bucket, 0.5 s below it.
        assert!(
            s.contains(&r#"kompox_reconcile_duration_seconds_bucket{le="1.6",app="wiki",result="applied"} 2"#),
            "{text}"
        );
        assert!(s.contains(
            &r#"kompox_reconcile_duration_seconds_bucket{le="0.4",app="wiki",result="applied"} 0"#
        ));
    }

    #[test]
    fn applied_revision_keeps_one_series_per_app() {
        let m = Metrics::new();
        let (a, b) = (
            "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
        );
        m.set_applied_revision("wiki", a);
        m.set_applied_revision("gitea", a);
        m.set_applied_revision("wiki", b);
        m.set_applied_revision("wiki", b);
        let text = m.encode();
        let revisions: Vec<&str> = samples(&text)
            .into_iter()
            .filter(|l| l.starts_with("kompox_last_applied_revision"))
            .collect();
        assert_eq!(revisions.len(), 2, "{text}");
        assert!(revisions.contains(&&*format!(
            r#"kompox_last_applied_revision{{app="wiki",revision="{b}"}} 1"#
        )));
        assert!(revisions.contains(&&*format!(
            r#"kompox_last_applied_revision{{app="gitea",revision="{a}"}} 1"#
        )));

        m.remove_app("gitea");
        let text = m.encode();
        assert!(!text.contains(r#"app="gitea""#), "{text}");
    }

    #[test]
    fn api_requests_are_counted_by_status_class() {
        let m = Metrics::new();
        m.observe_api_request(ApiVerb::Apply, Some("Deployment"), Some(200));
        m.observe_api_request(ApiVerb::Apply, Some("Deployment"), Some(201));
        m.observe_api_request(ApiVerb::Get, Some("Lease"), Some(404));
        m.observe_api_request(ApiVerb::List, None, None);
        let text = m.encode();
        let s = samples(&text);
        assert!(
            s.contains(
                &r#"kompox_api_requests_total{verb="apply",kind="Deployment",code="2xx"} 2"#
            ),
            "{text}"
        );
        assert!(s.contains(&r#"kompox_api_requests_total{verb="get",kind="Lease",code="4xx"} 1"#));
        assert!(s.contains(&r#"kompox_api_requests_total{verb="list",kind="",code="error"} 1"#));
    }

    #[test]
    fn webhooks_queue_and_leader() {
        let m = Metrics::new();
        m.observe_webhook(Some(Forge::GitHub), WebhookOutcome::Accepted);
        m.observe_webhook(
            Some(Forge::GitLab),
            WebhookOutcome::from(&WebhookError::BadSignature {
                forge: Forge::GitLab,
            }),
        );
        m.observe_webhook(None, WebhookOutcome::from(&WebhookError::UnknownForge));
        m.set_queue_depth(3);
        m.set_leader(true);
        let text = m.encode();
        let s = samples(&text);
        assert!(
            s.contains(&r#"kompox_webhook_requests_total{forge="github",outcome="accepted"} 1"#),
            "{text}"
        );
        assert!(s.contains(
            &r#"kompox_webhook_requests_total{forge="gitlab",outcome="unauthorized"} 1"#
        ));
        assert!(s.contains(
            &r#"kompox_webhook_requests_total{forge="unknown",outcome="bad_request"} 1"#
        ));
        assert!(s.contains(&"kompox_queue_depth 3"));
        assert!(s.contains(&"kompox_leader 1"));
        m.set_leader(false);
        assert!(samples(&m.encode()).contains(&"kompox_leader 0"));
    }

    #[test]
    fn every_webhook_error_has_an_outcome_matching_its_status() {
        use axum::http::StatusCode;
        let errors = [
            WebhookError::NotConfigured,
            WebhookError::MissingSignature {
                forge: Forge::Gitea,
                header: "X-Gitea-Signature",
            },
            WebhookError::BadSignature {
                forge: Forge::GitHub,
            },
            WebhookError::Replayed,
            WebhookError::TooLarge { limit: 1 },
            WebhookError::BadPayload("x".into()),
            WebhookError::UnknownForge,
        ];
        for e in &errors {
            let outcome = WebhookOutcome::from(e);
            let want = match e.status() {
                StatusCode::UNAUTHORIZED => WebhookOutcome::Unauthorized,
                StatusCode::CONFLICT => WebhookOutcome::Replayed,
                StatusCode::PAYLOAD_TOO_LARGE => WebhookOutcome::TooLarge,
                StatusCode::BAD_REQUEST => WebhookOutcome::BadRequest,
                other => panic!("unexpected status {other}"),
            };
            assert_eq!(outcome, want, "{e}");
        }
    }
}
