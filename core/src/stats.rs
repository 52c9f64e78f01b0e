//! What `INFO tq` reports: events that plans note (`Store::note`) and that
//! count once their plan is applied, and summaries of durations measured on
//! the server clock.

/// Something a plan did, counted once the plan is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A job reached a queue directly (TQ.ENQUEUE, a periodic task).
    Enqueued,
    /// A job was filed as a delayed job (TQ.ENQUEUEAT, TQ.ENQUEUEIN).
    Delayed,
    /// A due bucket's jobs reached their queues, `lateness_ms` after the
    /// bucket's time.
    Promoted {
        jobs: u64,
        lateness_ms: u64,
    },
    Popped,
    /// A busy worker's `TQ.POP ... ACK` was planned in one pass
    /// (`work::busy_pop_ack`).
    PopAckOnePass,
    /// A job completed, `run_ms` after it was popped.
    Acked {
        run_ms: u64,
    },
    /// A job failed, `run_ms` after it was popped (retried or not).
    Failed {
        run_ms: u64,
    },
    /// A failed job was given another attempt (TQ.FAIL ... RETRY).
    Retried,
    /// A worker gave its job back unfinished (TQ.NACK).
    Nacked,
    /// A lease ran out: the job went back to its queue, or to `failed` once
    /// it had been delivered too often.
    LeaseExpired {
        requeued: bool,
    },
    LockAcquired,
    /// A pair lock holder reported: done (OK) or failed (FAIL, freeing the
    /// lock for a takeover).
    LockReleased {
        done: bool,
    },
    LeaderAcquired,
    /// A tick of the module's timer held the server for `us` microseconds
    /// (wall clock), of which the server's thread ran `cpu_us` (the rest it
    /// waited for a core).
    TimerTick {
        us: u64,
        cpu_us: u64,
    },
}

/// A duration summary: count, sum, max and a log-linear histogram (8 steps
/// per power of two, so percentiles are within 12.5%).
#[derive(Debug, Clone)]
pub struct Summary {
    count: u64,
    sum: u64,
    max: u64,
    buckets: Vec<u64>,
}

const SUB: u32 = 8;
const LINEAR: u64 = 16;

fn bucket_of(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= 4
    let sub = (v >> (e - 3)) & u64::from(SUB - 1);
    (LINEAR + u64::from(e - 4) * u64::from(SUB) + sub) as usize
}

/// The largest value of bucket `i`.
fn upper_of(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let e = (i - LINEAR) / u64::from(SUB) + 4;
    let sub = (i - LINEAR) % u64::from(SUB);
    let end = u128::from(u64::from(SUB) + sub + 1) << (e - 3);
    u64::try_from(end - 1).unwrap_or(u64::MAX)
}

impl Default for Summary {
    fn default() -> Self {
        Summary { count: 0, sum: 0, max: 0, buckets: vec![0; bucket_of(u64::MAX) + 1] }
    }
}

impl Summary {
    pub fn add(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        self.max = self.max.max(v);
        if let Some(b) = self.buckets.get_mut(bucket_of(v)) {
            *b += 1;
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }

    /// The value `p` percent of the samples are at or below (an upper
    /// bound within 12.5%, never above the max).
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_of(i).min(self.max);
            }
        }
        self.max
    }
}

/// Counters since the module was loaded.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub enqueued: u64,
    pub delayed: u64,
    pub promoted: u64,
    pub popped: u64,
    pub pop_ack_one_pass: u64,
    pub acked: u64,
    pub failed: u64,
    pub retried: u64,
    pub nacked: u64,
    pub lease_requeued: u64,
    pub lease_failed: u64,
    pub lock_acquired: u64,
    pub lock_done: u64,
    pub lock_failed: u64,
    pub leader_acquired: u64,
    /// How late due buckets were promoted (per bucket).
    pub promotion_lateness_ms: Summary,
    /// How long jobs ran, pop to ACK or FAIL.
    pub job_run_ms: Summary,
    /// How long each timer tick held the server (its max: the longest stall
    /// the timer caused).
    pub timer_tick_us: Summary,
    /// The CPU time of the same ticks: their own work, without the time the
    /// server's thread waited for a core.
    pub timer_tick_cpu_us: Summary,
}

impl Stats {
    pub fn record(&mut self, e: Event) {
        match e {
            Event::Enqueued => self.enqueued += 1,
            Event::Delayed => self.delayed += 1,
            Event::Promoted { jobs, lateness_ms } => {
                self.promoted += jobs;
                self.promotion_lateness_ms.add(lateness_ms);
            }
            Event::Popped => self.popped += 1,
            Event::PopAckOnePass => self.pop_ack_one_pass += 1,
            Event::Acked { run_ms } => {
                self.acked += 1;
                self.job_run_ms.add(run_ms);
            }
            Event::Failed { run_ms } => {
                self.failed += 1;
                self.job_run_ms.add(run_ms);
            }
            Event::Retried => self.retried += 1,
            Event::Nacked => self.nacked += 1,
            Event::LeaseExpired { requeued: true } => self.lease_requeued += 1,
            Event::LeaseExpired { requeued: false } => self.lease_failed += 1,
            Event::LockAcquired => self.lock_acquired += 1,
            Event::LockReleased { done: true } => self.lock_done += 1,
            Event::LockReleased { done: false } => self.lock_failed += 1,
            Event::LeaderAcquired => self.leader_acquired += 1,
            Event::TimerTick { us, cpu_us } => {
                self.timer_tick_us.add(us);
                self.timer_tick_cpu_us.add(cpu_us);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..5000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= last, "bucket of {v} went down");
            assert!(upper_of(b) >= v, "bucket {b} of {v} ends at {}", upper_of(b));
            if b > 0 {
                assert!(upper_of(b - 1) < v, "{v} belongs to an earlier bucket");
            }
            last = b;
        }
    }

    #[test]
    fn percentiles_are_close_upper_bounds() {
        let mut s = Summary::default();
        assert_eq!((s.percentile(50.0), s.mean(), s.max()), (0, 0, 0));
        for v in 1..=1000 {
            s.add(v);
        }
        assert_eq!(s.count(), 1000);
        assert_eq!(s.mean(), 500);
        assert_eq!(s.max(), 1000);
        for (p, exact) in [(50.0, 500u64), (90.0, 900), (99.0, 990)] {
            let got = s.percentile(p);
            assert!(got >= exact && got as f64 <= exact as f64 * 1.125, "p{p}: {got} for {exact}");
        }
        assert_eq!(s.percentile(100.0), 1000);
        let mut one = Summary::default();
        one.add(7);
        assert_eq!(one.percentile(99.0), 7);
    }

    #[test]
    fn events_count_where_they_belong() {
        let mut st = Stats::default();
        for e in [
            Event::Enqueued,
            Event::Promoted { jobs: 3, lateness_ms: 12 },
            Event::Acked { run_ms: 5 },
            Event::Failed { run_ms: 9 },
            Event::LeaseExpired { requeued: false },
            Event::LockReleased { done: false },
            Event::TimerTick { us: 1500, cpu_us: 400 },
        ] {
            st.record(e);
        }
        assert_eq!((st.enqueued, st.promoted, st.acked, st.failed), (1, 3, 1, 1));
        assert_eq!((st.lease_failed, st.lease_requeued, st.lock_failed, st.lock_done), (1, 0, 1, 0));
        assert_eq!(st.job_run_ms.count(), 2);
        assert_eq!(st.promotion_lateness_ms.max(), 12);
        assert_eq!((st.timer_tick_us.count(), st.timer_tick_us.max()), (1, 1500));
        assert_eq!((st.timer_tick_cpu_us.count(), st.timer_tick_cpu_us.max()), (1, 400));
    }
}
