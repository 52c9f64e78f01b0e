//! Stopping (the handle and the sleeps it wakes), and the pauses between
//! retries.

use super::*;

pub(super) const RUNNING: u8 = 0;
pub(super) const STOPPING: u8 = 1;
pub(super) const STOP_NOW: u8 = 2;

/// Stops a running [`Worker`]; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct StopHandle(Arc<StopState>);

pub(super) struct StopState {
    pub(super) level: AtomicU8,
    pub(super) lock: Mutex<()>,
    pub(super) cv: Condvar,
}

impl StopHandle {
    pub(super) fn new() -> StopHandle {
        StopHandle(Arc::new(StopState { level: AtomicU8::new(RUNNING), lock: Mutex::new(()), cv: Condvar::new() }))
    }

    /// Graceful stop: no new jobs; running ones get the grace period.
    pub fn stop(&self) {
        self.raise(STOPPING);
    }

    /// Stop at once: nothing more is reported; jobs in flight come back by
    /// their lease.
    pub fn stop_now(&self) {
        self.raise(STOP_NOW);
    }

    pub fn is_stopping(&self) -> bool {
        self.level() >= STOPPING
    }

    pub fn is_stopping_now(&self) -> bool {
        self.level() >= STOP_NOW
    }

    pub(super) fn level(&self) -> u8 {
        self.0.level.load(Ordering::SeqCst)
    }

    pub(super) fn raise(&self, to: u8) {
        self.0.level.fetch_max(to, Ordering::SeqCst);
        let _g = lock(&self.0.lock);
        self.0.cv.notify_all();
    }

    /// Sleeps `d`, or less if the stop level reaches `wake`. True if woken.
    pub(super) fn sleep_unless(&self, d: Duration, wake: u8) -> bool {
        let end = Instant::now() + d;
        let mut g = lock(&self.0.lock);
        loop {
            if self.level() >= wake {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            g = match self.0.cv.wait_timeout(g, end - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pauses growing from 100 ms to 2 s, with a little jitter.
pub(super) struct Backoff {
    pub(super) next: Duration,
}

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff { next: BACKOFF_MIN }
    }

    pub(super) fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.subsec_nanos());
        let jitter = u64::from(nanos.unwrap_or(0) % 1000) * crate::duration::millis(d) / 5000; // up to +20%
        d + Duration::from_millis(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut b = Backoff::new();
        let steps: Vec<Duration> = (0..8).map(|_| b.step()).collect();
        assert!(steps[0] >= BACKOFF_MIN && steps[0] <= BACKOFF_MIN * 6 / 5, "{steps:?}");
        assert!(steps[1] >= BACKOFF_MIN * 2);
        for s in &steps {
            assert!(*s <= BACKOFF_MAX * 6 / 5, "{steps:?}");
        }
        assert!(steps[7] >= BACKOFF_MAX);
    }

    #[test]
    fn stop_handle_wakes_sleepers() {
        let h = StopHandle::new();
        assert!(!h.is_stopping());
        let h2 = h.clone();
        let t = std::thread::spawn(move || h2.sleep_unless(Duration::from_secs(30), STOPPING));
        std::thread::sleep(Duration::from_millis(20));
        h.stop();
        assert!(t.join().expect("join"), "woken by the stop");
        assert!(h.is_stopping() && !h.is_stopping_now());
        assert!(!h.sleep_unless(Duration::from_millis(1), STOP_NOW));
        h.stop_now();
        h.stop(); // never lowers the level
        assert!(h.is_stopping_now());
    }
}
