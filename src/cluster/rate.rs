//! A token bucket for write requests (DECISIONS 19: request rates toward
//! the API server are bounded). Shared by every clone of a `Connection`,
//! so concurrent App applies draw from one budget.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Writes per second with a burst allowance.
#[derive(Clone)]
pub struct WriteRate {
    inner: Option<Arc<Mutex<Bucket>>>,
}

struct Bucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl std::fmt::Debug for WriteRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.inner.is_some() {
            "WriteRate(limited)"
        } else {
            "WriteRate(unlimited)"
        })
    }
}

impl WriteRate {
    pub fn unlimited() -> WriteRate {
        WriteRate { inner: None }
    }

    /// `per_sec` writes per second on average, up to `burst` at once.
    pub fn new(per_sec: f64, burst: u32) -> WriteRate {
        if per_sec <= 0.0 {
            return WriteRate::unlimited();
        }
        let burst = f64::from(burst.max(1));
        WriteRate {
            inner: Some(Arc::new(Mutex::new(Bucket {
                per_sec,
                burst,
                tokens: burst,
                at: Instant::now(),
            }))),
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let wait = {
            let mut b = inner.lock().await;
            let now = Instant::now();
            let elapsed = now.duration_since(b.at).as_secs_f64();
            b.tokens = (b.tokens + elapsed * b.per_sec).min(b.burst);
            b.at = now;
            b.tokens -= 1.0;
            if b.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-b.tokens / b.per_sec)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_beyond_the_burst_wait_for_the_rate() {
        let r = WriteRate::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            r.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..10 {
            r.acquire().await;
        }
        let t = start.elapsed().as_secs_f64();
        assert!((0.95..=1.05).contains(&t), "10 more writes at 10/s: {t}");
        let u = WriteRate::unlimited();
        let s = Instant::now();
        for _ in 0..1000 {
            u.acquire().await;
        }
        assert_eq!(s.elapsed(), Duration::ZERO);
    }
}
