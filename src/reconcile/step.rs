//! The reconciler's decisions as values (pure): which Apps a pass works
//! on, what each App's result means for the next attempt, and when the
//! loop wakes next. Time is a `Duration` on the loop's own clock and
//! randomness is passed in, so every rule is tested without timers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::ResourceId;

/// The loop's timing knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// How often the source is polled for a new revision.
    pub interval: Duration,
    /// How often an App already at the current revision is compared with
    /// the cluster again (drift), even without Git changes.
    pub drift_interval: Duration,
    /// First retry delay after a failure; doubles per failure.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Share of `interval` the poll is jittered by (0.1 = ±5 %), so many
    /// controllers polling one forge do not synchronise.
    pub jitter: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            interval: Duration::from_secs(60),
            drift_interval: Duration::from_secs(600),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            jitter: 0.1,
        }
    }
}

/// The result of one App in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Changes were applied.
    Applied { changes: usize },
    /// Nothing to change.
    UpToDate,
    /// The App (or the workspace) is suspended: nothing was written.
    Suspended,
    /// Changes need a permission the App's KOM does not give (destructive
    /// changes without `policy.allowDestroy`): reported, not applied.
    Blocked { reason: String },
    /// The App did not load or convert.
    LoadFailed { error: String },
    /// Planning or applying failed.
    Failed { error: String },
    /// This process is not the writer; the leader applies.
    NotLeader,
}

impl Outcome {
    /// The short label used in metrics and status.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::UpToDate => "up-to-date",
            Outcome::Suspended => "suspended",
            Outcome::Blocked { .. } => "blocked",
            Outcome::LoadFailed { .. } => "load-failed",
            Outcome::Failed { .. } => "failed",
            Outcome::NotLeader => "not-leader",
        }
    }

    /// Failures are retried with backoff; everything else waits for a new
    /// revision or the drift check.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed { .. } | Outcome::LoadFailed { .. })
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Failed { error } | Outcome::LoadFailed { error } => Some(error),
            Outcome::Blocked { reason } => Some(reason),
            _ => None,
        }
    }
}

/// What the loop remembers about one App between passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppState {
    /// The last revision fully applied (or found up to date).
    pub applied_revision: Option<String>,
    /// The revision of the last attempt, whatever its result.
    pub attempted_revision: Option<String>,
    /// When the App was last compared with the cluster.
    pub checked_at: Option<Duration>,
    /// Consecutive failures.
    pub failures: u32,
    /// No attempt before this time (backoff after a failure).
    pub retry_at: Option<Duration>,
    pub last: Option<Outcome>,
}

/// Why an App is in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Never attempted by this process.
    First,
    /// Git has a revision not attempted yet.
    NewRevision,
    /// A failed attempt's backoff is over.
    Retry,
    /// The periodic drift check.
    Drift,
    /// Asked for explicitly (webhook, `--once`).
    Forced,
}

/// Whether an App is worked on in a pass starting `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Now(Reason),
    /// Not before this time.
    Later(Duration),
}

/// Decides whether an App is worked on now. A new revision is tried at
/// once even during a backoff: the push may be the fix.
pub fn due(state: &AppState, revision: &str, now: Duration, policy: &Policy) -> Due {
    let Some(attempted) = &state.attempted_revision else {
        return Due::Now(Reason::First);
    };
    if attempted != revision {
        return Due::Now(Reason::NewRevision);
    }
    if let Some(t) = state.retry_at {
        return if now >= t {
            Due::Now(Reason::Retry)
        } else {
            Due::Later(t)
        };
    }
    let next_check = state.checked_at.unwrap_or_default() + policy.drift_interval;
    if now >= next_check {
        Due::Now(Reason::Drift)
    } else {
        Due::Later(next_check)
    }
}

/// The delay before retry number `failures` (1-based): base·2^(n−1),
/// capped.
pub fn backoff(failures: u32, policy: &Policy) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    policy
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(policy.backoff_max)
}

/// The App's state after an attempt at `revision` ended with `outcome`.
pub fn record(
    state: &AppState,
    revision: &str,
    outcome: Outcome,
    now: Duration,
    policy: &Policy,
) -> AppState {
    let mut next = state.clone();
    next.attempted_revision = Some(revision.to_string());
    next.checked_at = Some(now);
    if outcome == Outcome::NotLeader {
        // Not ours to judge: the leader works on it. Forget the attempt so
        // this process starts fresh if it becomes the leader.
        return AppState::default();
    }
    if outcome.is_failure() {
        next.failures = state.failures.saturating_add(1);
        next.retry_at = Some(now + backoff(next.failures, policy));
    } else {
        next.failures = 0;
        next.retry_at = None;
        if matches!(outcome, Outcome::Applied { .. } | Outcome::UpToDate) {
            next.applied_revision = Some(revision.to_string());
        }
    }
    next.last = Some(outcome);
    next
}

/// When the loop wakes next, as a delay from `now`: the next poll of the
/// source (`last_poll + interval`, jittered by `random` in `[0, 1)`) or
/// the earliest App retry or drift check, whichever comes first.
pub fn next_wake(
    states: &BTreeMap<ResourceId, AppState>,
    revision: Option<&str>,
    now: Duration,
    last_poll: Duration,
    policy: &Policy,
    random: f64,
) -> Duration {
    let spread = policy.interval.as_secs_f64() * policy.jitter * (random.clamp(0.0, 1.0) - 0.5);
    let poll = Duration::from_secs_f64((policy.interval.as_secs_f64() + spread).max(0.0));
    let mut at = last_poll + poll;
    if let Some(rev) = revision {
        for s in states.values() {
            match due(s, rev, now, policy) {
                Due::Now(_) => at = now,
                Due::Later(t) => at = at.min(t),
            }
        }
    }
    at.saturating_sub(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn policy() -> Policy {
        Policy {
            interval: s(60),
            drift_interval: s(600),
            backoff_base: s(5),
            backoff_max: s(300),
            jitter: 0.1,
        }
    }

    #[test]
    fn a_new_app_and_a_new_revision_are_due_at_once() {
        let p = policy();
        let fresh = AppState::default();
        assert_eq!(due(&fresh, "r1", s(0), &p), Due::Now(Reason::First));
        let done = record(&fresh, "r1", Outcome::UpToDate, s(0), &p);
        assert_eq!(due(&done, "r1", s(1), &p), Due::Later(s(600)));
        assert_eq!(due(&done, "r2", s(1), &p), Due::Now(Reason::NewRevision));
    }

    #[test]
    fn failures_back_off_exponentially_and_a_new_revision_skips_the_wait() {
        let p = policy();
        let mut st = AppState::default();
        let mut delays = Vec::new();
        let mut now = s(0);
        for _ in 0..8 {
            st = record(
                &st,
                "r1",
                Outcome::Failed {
                    error: "boom".into(),
                },
                now,
                &p,
            );
            let Due::Later(t) = due(&st, "r1", now, &p) else {
                panic!("a failed app must wait")
            };
            delays.push((t - now).as_secs());
            now = t;
            assert_eq!(due(&st, "r1", now, &p), Due::Now(Reason::Retry));
        }
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(due(&st, "r2", now, &p), Due::Now(Reason::NewRevision));
        let ok = record(&st, "r2", Outcome::Applied { changes: 3 }, now, &p);
        assert_eq!(ok.failures, 0);
        assert_eq!(ok.retry_at, None);
        assert_eq!(ok.applied_revision.as_deref(), Some("r2"));
    }

    #[test]
    fn blocked_and_suspended_apps_wait_for_the_drift_check_not_a_retry() {
        let p = policy();
        let blocked = record(
            &AppState::default(),
            "r1",
            Outcome::Blocked {
                reason: "destructive".into(),
            },
            s(10),
            &p,
        );
        assert_eq!(blocked.failures, 0);
        assert_eq!(blocked.applied_revision, None, "nothing was applied");
        assert_eq!(due(&blocked, "r1", s(11), &p), Due::Later(s(610)));
        assert_eq!(due(&blocked, "r1", s(610), &p), Due::Now(Reason::Drift));
    }

    #[test]
    fn a_follower_forgets_its_attempts() {
        let p = policy();
        let st = record(&AppState::default(), "r1", Outcome::NotLeader, s(5), &p);
        assert_eq!(due(&st, "r1", s(6), &p), Due::Now(Reason::First));
    }

    #[test]
    fn the_loop_wakes_for_the_earliest_of_poll_retry_and_drift() {
        let p = policy();
        let id = |n: &str| {
            format!("/ws/w/prv/p/cls/c/app/{n}")
                .parse::<ResourceId>()
                .unwrap()
        };
        let mut states = BTreeMap::new();
        states.insert(
            id("a"),
            record(&AppState::default(), "r1", Outcome::UpToDate, s(0), &p),
        );
        // Only the poll: 60 s, jittered within ±3 s.
        let lo = next_wake(&states, Some("r1"), s(0), s(0), &p, 0.0);
        let hi = next_wake(&states, Some("r1"), s(0), s(0), &p, 0.999);
        assert_eq!(lo, s(57));
        assert!(hi > s(62) && hi <= s(63), "{hi:?}");
        // A failed app retries in 5 s: that comes first.
        states.insert(
            id("b"),
            record(
                &AppState::default(),
                "r1",
                Outcome::Failed { error: "x".into() },
                s(0),
                &p,
            ),
        );
        assert_eq!(next_wake(&states, Some("r1"), s(1), s(0), &p, 0.5), s(4));
        // An app that is due now: wake at once.
        states.insert(id("c"), AppState::default());
        assert_eq!(
            next_wake(&states, Some("r1"), s(1), s(0), &p, 0.5),
            Duration::ZERO
        );
    }
}
