//! One writer per cluster (DECISIONS 16): a `coordination.k8s.io/v1`
//! Lease taken by the controller and by the CLI's `apply`.
//!
//! Written here rather than with kube-lease-manager because a writer must
//! know *until when* its leadership is certain, measured on its own
//! monotonic clock from the moment it sent the last successful renewal.
//! Only that lets a process that was paused (SIGSTOP, a long GC, a frozen
//! VM) notice on waking that it may no longer write, before its first
//! write: [`WriteGuard::may_write`] turns false at `sent + duration -
//! margin` whether or not the renew loop has run since. The crate exposes
//! only a "leader now" flag that a paused process would still see as true.
//!
//! The takeover rule is client-go's: a follower takes the Lease only after
//! it has seen the same holder record unchanged for the full lease duration
//! on its own clock, so clock skew between machines never shortens a
//! lease. The CLI, which lives for one command, instead compares the
//! record's `renewTime` with the wall clock (it cannot wait a full
//! duration to learn whether a controller is alive).
//!
//! Every write is a create or a replace carrying the `resourceVersion`
//! read just before, so of two contenders exactly one wins (the other gets
//! 409 Conflict and follows).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

/// Where the Lease lives and how long a holder keeps it.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This process's identity (pod name, or `cli:<user>@<host>:<pid>`).
    pub identity: String,
    pub duration: Duration,
    /// How often the holder renews and a follower retries.
    pub retry: Duration,
}

impl LeaseConfig {
    /// The defaults of client-go's leader election: 15 s lease, 2 s retry.
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        }
    }
}

/// Lease failures.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "another writer holds the Lease {namespace}/{name}: `{holder}` (renewed {age_secs} s ago, lease {duration_secs} s); wait for it, suspend the controller, or pass --force"
    )]
    HeldBy {
        namespace: String,
        name: String,
        holder: String,
        age_secs: i64,
        duration_secs: i64,
    },
    #[error("Lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The part of a Lease object the election looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub holder: Option<String>,
    /// Microseconds since the epoch.
    pub renew_micros: Option<i64>,
    pub duration_secs: i64,
    pub transitions: i32,
}

impl Record {
    fn of(lease: &LeaseObject) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_micros: spec
                .renew_time
                .or(spec.acquire_time)
                .map(|t| t.0.as_microsecond()),
            duration_secs: i64::from(spec.lease_duration_seconds.unwrap_or(15)),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// What one round of the election does (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease object yet.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free, released or expired: take it over.
    TakeOver,
    /// Someone else holds it.
    Follow { holder: String },
}

/// The controller's rule: take over only after seeing the holder's record
/// unchanged for a full lease duration on our own clock.
pub fn decide(record: Option<&Record>, me: &str, unchanged_for: Duration) -> Step {
    let Some(r) = record else {
        return Step::Create;
    };
    match &r.holder {
        None => Step::TakeOver,
        Some(h) if h == me => Step::Renew,
        Some(_) if unchanged_for.as_secs_f64() >= r.duration_secs as f64 => Step::TakeOver,
        Some(h) => Step::Follow { holder: h.clone() },
    }
}

/// The CLI's rule: the holder is alive while `renewTime + duration` is in
/// the future by the wall clock (`now_micros`).
pub fn decide_once(record: Option<&Record>, me: &str, now_micros: i64) -> Step {
    let Some(r) = record else {
        return Step::Create;
    };
    match (&r.holder, r.renew_micros) {
        (None, _) => Step::TakeOver,
        (Some(h), _) if h == me => Step::Renew,
        (Some(_), Some(t)) if t + r.duration_secs * 1_000_000 <= now_micros => Step::TakeOver,
        (Some(_), None) => Step::TakeOver,
        (Some(h), _) => Step::Follow { holder: h.clone() },
    }
}

/// A shared "may this process write now?" answer, checked before every
/// write to the cluster or to a disk.
#[derive(Clone)]
pub struct WriteGuard {
    inner: Arc<Mutex<GuardState>>,
}

#[derive(Debug, Clone, Copy)]
enum GuardState {
    /// No election: this process is the only writer (tests, `--no-lease`).
    Always,
    /// Leadership certain until this instant (`None`: not leader).
    Until(Option<Instant>),
}

impl std::fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriteGuard(may_write: {})", self.may_write())
    }
}

impl WriteGuard {
    /// A guard that always allows writing (no election).
    pub fn always() -> WriteGuard {
        WriteGuard {
            inner: Arc::new(Mutex::new(GuardState::Always)),
        }
    }

    fn not_leader() -> WriteGuard {
        WriteGuard {
            inner: Arc::new(Mutex::new(GuardState::Until(None))),
        }
    }

    pub fn may_write(&self) -> bool {
        match *self.inner.lock().unwrap_or_else(|e| e.into_inner()) {
            GuardState::Always => true,
            GuardState::Until(Some(t)) => Instant::now() < t,
            GuardState::Until(None) => false,
        }
    }

    fn set(&self, until: Option<Instant>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*g, GuardState::Always) {
            *g = GuardState::Until(until);
        }
    }
}

/// One contender for a Lease.
pub struct Elector {
    api: Api<LeaseObject>,
    cfg: LeaseConfig,
    /// The record last seen and when it was first seen in that state.
    seen: Option<(Record, Instant)>,
    guard: WriteGuard,
}

impl Elector {
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            seen: None,
            guard: WriteGuard::not_leader(),
        }
    }

    pub fn guard(&self) -> WriteGuard {
        self.guard.clone()
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    fn api_err(&self, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.cfg.namespace.clone(),
            name: self.cfg.name.clone(),
            source,
        }
    }

    /// The safety margin subtracted from the lease: covers the request's
    /// own latency and clock-rate differences between machines.
    fn margin(&self) -> Duration {
        (self.cfg.duration / 5).min(Duration::from_secs(2))
    }

    /// One round with the controller's rule; returns whether we lead.
    /// A failed round keeps the current deadline, which then runs out on
    /// its own: an unreachable API server stops writes within the lease.
    pub async fn tick(&mut self) -> Result<bool, LeaseError> {
        let current = self.get().await?;
        let record = current.as_ref().map(Record::of);
        let now = Instant::now();
        let unchanged_for = match (&self.seen, &record) {
            (Some((old, since)), Some(r)) if old == r => now.duration_since(*since),
            _ => Duration::ZERO,
        };
        if let Some(r) = &record
            && self.seen.as_ref().map(|(o, _)| o) != Some(r)
        {
            self.seen = Some((r.clone(), now));
        }
        let step = decide(record.as_ref(), &self.cfg.identity, unchanged_for);
        if let Step::Follow { .. } = step {
            self.guard.set(None);
            return Ok(false);
        }
        self.write(step, current).await
    }

    /// One round with the CLI's rule: fails with `HeldBy` when another
    /// live writer holds the Lease (unless `force`).
    pub async fn acquire_once(&mut self, force: bool) -> Result<(), LeaseError> {
        let current = self.get().await?;
        let record = current.as_ref().map(Record::of);
        let now = Timestamp::now().as_microsecond();
        let step = match decide_once(record.as_ref(), &self.cfg.identity, now) {
            Step::Follow { holder } if !force => {
                let r = record.unwrap_or(Record {
                    holder: None,
                    renew_micros: None,
                    duration_secs: 0,
                    transitions: 0,
                });
                return Err(LeaseError::HeldBy {
                    namespace: self.cfg.namespace.clone(),
                    name: self.cfg.name.clone(),
                    holder,
                    age_secs: (now - r.renew_micros.unwrap_or(now)) / 1_000_000,
                    duration_secs: r.duration_secs,
                });
            }
            Step::Follow { .. } => Step::TakeOver,
            s => s,
        };
        if !self.write(step, current).await? {
            return Err(LeaseError::HeldBy {
                namespace: self.cfg.namespace.clone(),
                name: self.cfg.name.clone(),
                holder: "another writer (took it just now)".into(),
                age_secs: 0,
                duration_secs: self.cfg.duration.as_secs() as i64,
            });
        }
        Ok(())
    }

    async fn get(&self) -> Result<Option<LeaseObject>, LeaseError> {
        self.api
            .get_opt(&self.cfg.name)
            .await
            .map_err(|e| self.api_err(e))
    }

    /// Creates, renews or takes over; `false` when another writer won.
    async fn write(
        &mut self,
        step: Step,
        current: Option<LeaseObject>,
    ) -> Result<bool, LeaseError> {
        let sent = Instant::now();
        let now = MicroTime(Timestamp::now());
        let duration_secs = self.cfg.duration.as_secs().max(1) as i32;
        let result = match (step, current) {
            (Step::Create, _) | (_, None) => {
                let lease = LeaseObject {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.cfg.identity.clone()),
                        lease_duration_seconds: Some(duration_secs),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (step, Some(mut lease)) => {
                let mut spec = lease.spec.take().unwrap_or_default();
                if step == Step::TakeOver {
                    spec.acquire_time = Some(now.clone());
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.holder_identity = Some(self.cfg.identity.clone());
                spec.lease_duration_seconds = Some(duration_secs);
                spec.renew_time = Some(now);
                lease.spec = Some(spec);
                // `replace` sends the resourceVersion we read: a concurrent
                // writer makes this fail with 409 instead of both winning.
                self.api
                    .replace(&self.cfg.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(lease) => {
                self.seen = Some((Record::of(&lease), Instant::now()));
                let until = sent + self.cfg.duration.saturating_sub(self.margin());
                self.guard.set(Some(until));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.guard.set(None);
                Ok(false)
            }
            Err(e) => Err(self.api_err(e)),
        }
    }

    /// Gives the Lease up so another writer need not wait for it to expire.
    pub async fn release(&mut self) -> Result<(), LeaseError> {
        self.guard.set(None);
        let Some(mut lease) = self.get().await? else {
            return Ok(());
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(self.api_err(e)),
        }
    }

    /// Runs the election until `stop` fires, then releases the Lease.
    /// `on_change` hears every change of leadership.
    pub async fn run(
        mut self,
        mut stop: tokio::sync::watch::Receiver<bool>,
        mut on_change: impl FnMut(bool) + Send,
    ) {
        let mut leading = false;
        loop {
            let now_leading = match self.tick().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "lease round failed");
                    self.guard.may_write()
                }
            };
            if now_leading != leading {
                leading = now_leading;
                tracing::info!(
                    identity = %self.cfg.identity,
                    leading,
                    "leadership changed"
                );
                on_change(leading);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.retry) => {}
                _ = stop.changed() => break,
            }
        }
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "cannot release the lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: Option<&str>, renew: Option<i64>, dur: i64) -> Record {
        Record {
            holder: holder.map(str::to_string),
            renew_micros: renew,
            duration_secs: dur,
            transitions: 0,
        }
    }

    #[test]
    fn controller_rule_waits_a_full_duration_before_taking_over() {
        let r = rec(Some("a"), Some(0), 15);
        assert_eq!(decide(None, "b", Duration::ZERO), Step::Create);
        assert_eq!(decide(Some(&r), "a", Duration::ZERO), Step::Renew);
        assert_eq!(
            decide(Some(&r), "b", Duration::from_secs(14)),
            Step::Follow { holder: "a".into() }
        );
        assert_eq!(
            decide(Some(&r), "b", Duration::from_secs(15)),
            Step::TakeOver
        );
        assert_eq!(
            decide(Some(&rec(None, Some(0), 1)), "b", Duration::ZERO),
            Step::TakeOver
        );
    }

    #[test]
    fn cli_rule_uses_the_renew_time() {
        let s = 1_000_000;
        let r = rec(Some("ctl"), Some(100 * s), 15);
        assert_eq!(
            decide_once(Some(&r), "cli", 110 * s),
            Step::Follow {
                holder: "ctl".into()
            }
        );
        assert_eq!(decide_once(Some(&r), "cli", 115 * s), Step::TakeOver);
        assert_eq!(decide_once(Some(&r), "ctl", 110 * s), Step::Renew);
        assert_eq!(decide_once(None, "cli", 0), Step::Create);
    }

    #[test]
    fn a_guard_expires_on_its_own() {
        let g = WriteGuard::not_leader();
        assert!(!g.may_write());
        g.set(Some(Instant::now() + Duration::from_secs(60)));
        assert!(g.may_write());
        g.set(Some(Instant::now() - Duration::from_millis(1)));
        assert!(!g.may_write(), "a deadline in the past forbids writes");
        let a = WriteGuard::always();
        a.set(None);
        assert!(a.may_write(), "no election: always the writer");
    }
}
