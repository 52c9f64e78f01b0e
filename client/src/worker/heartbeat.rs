//! The heartbeat thread: every slot's lease and liveness.

use super::*;

/// Keeps every slot's lease (and liveness) with `TQ.HEARTBEAT`, on its own
/// connection, until told to quit or stopping at once.
pub(super) fn heartbeat_loop(sh: &Shared, quit: &AtomicBool) {
    let io = sh.opts.io_timeout.min(sh.interval()).max(Duration::from_millis(50));
    let Ok(mut client) = Client::new(&sh.opts.redis_url, &sh.opts.ns, io) else { return };
    let interval = sh.interval();
    let retry = interval.min(Duration::from_millis(250));
    let mut down = false;
    let mut last_error: Option<String> = None;
    while !quit.load(Ordering::SeqCst) && !sh.stop.is_stopping_now() {
        for slot in &sh.slots {
            let now = Instant::now();
            let (seq, delivery) = {
                let st = lock(&slot.st);
                if st.next_heartbeat > now || st.finished {
                    continue;
                }
                (st.seq, st.delivery)
            };
            let sent = Instant::now();
            match client.heartbeat(&slot.name, sh.lease, delivery) {
                Ok(_) => {
                    last_error = None;
                    if down {
                        down = false;
                        sh.emit(Event::RedisBack { worker: slot.name.clone(), action: "heartbeat" });
                    }
                    let mut st = lock(&slot.st);
                    st.next_heartbeat = sent + interval;
                    if st.seq == seq && delivery.is_some() && st.delivery == delivery {
                        st.lease_until = sent + sh.lease;
                    }
                }
                Err(e) if delivery.is_some() && (e.is(client::NOJOB) || e.is(client::LEASELOST)) => {
                    // The module no longer counts the job as ours: stop
                    // renewing it; a running handler learns it lost the job.
                    let lost = {
                        let mut st = lock(&slot.st);
                        st.next_heartbeat = Instant::now();
                        if st.delivery != delivery {
                            None // reported meanwhile
                        } else {
                            st.delivery = None;
                            st.job.clone().filter(|j| st.phase == Phase::Running && !j.lease_lost())
                        }
                    };
                    if let Some(job) = lost {
                        job.mark_lease_lost();
                        sh.emit(Event::LeaseLost { job });
                    }
                }
                Err(e) => {
                    lock(&slot.st).next_heartbeat = Instant::now() + retry;
                    if e.is_transient() {
                        sh.redis_down(&mut down, &slot.name, "heartbeat", &e, retry);
                        break;
                    }
                    if last_error.as_deref() != Some(e.to_string().as_str()) {
                        last_error = Some(e.to_string());
                        sh.emit(Event::Error {
                            worker: slot.name.clone(),
                            action: "heartbeat",
                            error: e.to_string(),
                            retry_in: retry,
                        });
                    }
                }
            }
        }
        let pause = (interval / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
        sh.stop.sleep_unless(pause, STOP_NOW);
    }
}
