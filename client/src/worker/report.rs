//! Reporting jobs: one by one (fail, requeue), acknowledged together with
//! the next pops, given back; every report resent while Redis is away.

use super::*;

/// Reports a job one by one: a failure, a requeue, or an ACK while stopping.
pub(super) fn report_result(
    sh: &Shared,
    slot: &Slot,
    client: &mut Client,
    job: &Job,
    result: Result<(), JobError>,
) -> Outcome {
    if sh.stop.is_stopping_now() {
        return Outcome::Unreported;
    }
    let action = match result {
        Ok(()) => Action::Ack,
        Err(JobError::Requeue(d)) if job.is_cancelled() => Action::Nack(d, Requeue::Stopping),
        Err(JobError::Requeue(d)) => Action::Nack(d, Requeue::Handler),
        Err(JobError::Failed(_)) if job.is_cancelled() => Action::Nack(None, Requeue::Stopping),
        Err(JobError::Failed(f)) => Action::Fail(f, sh.opts.rules.retry_for(&job.class, &job.queue)),
        Err(JobError::Fatal(f)) => Action::Fail(f, None),
    };
    report(sh, slot, client, job.delivery, &action)
}

pub(super) fn end_job(sh: &Shared, slot: &Slot, job: Job, elapsed: Duration, outcome: Outcome) {
    sh.counters.count(&outcome);
    sh.emit(Event::JobEnd { job, elapsed, outcome });
    let mut st = lock(&slot.st);
    st.phase = Phase::Idle;
    st.job = None;
    st.delivery = None;
}

/// Acknowledges the finished jobs, each with `TQ.POP ... ACK` under its own
/// name, in one round trip; each reply's job is held next under that name.
/// While stopping, plain `TQ.ACK`s (no new jobs).
pub(super) fn ack_together(sh: &Shared, link: &mut Link, lanes: &mut [Lane], finished: &mut Vec<Finished>) {
    if finished.is_empty() {
        return;
    }
    let batch = std::mem::take(finished);
    if sh.stop.is_stopping() {
        for f in batch {
            let outcome = report_result(sh, &f.slot, &mut link.client, &f.job, Ok(()));
            end_job(sh, &f.slot, f.job, f.elapsed, outcome);
        }
        return;
    }
    let done: Vec<(&str, u64)> = batch.iter().map(|f| (f.slot.name.as_str(), f.job.delivery)).collect();
    let first = done.first().map(|(n, _)| *n).unwrap_or_default();
    let sent = Instant::now();
    let mut answers = match link.client.ack_and_pop_each(&done, &sh.opts.queues, sh.lease) {
        Ok(r) => {
            link.up(sh, first, "ack");
            r.into_iter().map(|r| Some((r, sent))).collect()
        }
        Err(e) => {
            // Each is sent again on its own: a repeat answers as the first.
            link.wait_out(sh, first, "ack", &e);
            vec![None; batch.len()]
        }
    }
    .into_iter();
    for f in batch {
        let (outcome, next) = ack_and_take(sh, &f.slot, &mut link.client, &f.job, answers.next().flatten());
        end_job(sh, &f.slot, f.job, f.elapsed, outcome);
        if let Some(lane) = lanes.get_mut(f.lane) {
            match next {
                Next::Job(job, sent) => hold(lane, job, sent),
                Next::Nothing => {}
            }
        }
    }
}

/// A pop answered after the stop: the job goes back at once.
pub(super) fn give_back_unstarted(sh: &Shared, slot: &Slot, client: &mut Client, job: Job, popped: Instant) {
    {
        let mut st = lock(&slot.st);
        st.seq += 1;
        st.phase = Phase::Reporting;
        st.job = Some(job.clone());
        st.lease_until = popped + sh.lease;
    }
    let outcome = report(sh, slot, client, job.delivery, &Action::Nack(None, Requeue::NotStarted));
    sh.counters.count(&outcome);
    sh.emit(Event::JobEnd { job, elapsed: Duration::ZERO, outcome });
    let mut st = lock(&slot.st);
    st.phase = Phase::Idle;
    st.job = None;
    st.delivery = None;
}

/// What a slot holds after reporting a job.
pub(super) enum Next {
    /// Nothing: the slot pops (and waits) again.
    Nothing,
    /// The job its ACK took, and when that ACK was sent.
    Job(Job, Instant),
}

/// Acknowledges the job and takes the next in the same round trip
/// (`TQ.POP ... ACK <delivery>`). A lost reply is answered by sending the
/// same command again: the module answers a repeat with the job the first
/// took (or none), and completes nothing twice. `answer`: the answer to the
/// first attempt (sent in a pipeline) and when it was sent; None if that
/// reply was lost.
pub(super) fn ack_and_take(
    sh: &Shared,
    slot: &Slot,
    client: &mut Client,
    job: &Job,
    mut answer: Option<(Result<Option<Job>, client::Error>, Instant)>,
) -> (Outcome, Next) {
    let mut backoff = Backoff::new();
    let mut down = false;
    loop {
        let (attempt, sent) = match answer.take() {
            Some(answered) => answered,
            None => {
                let at = Instant::now();
                (client.ack_and_pop(&slot.name, job.delivery, &sh.opts.queues, sh.lease), at)
            }
        };
        if down && attempt.as_ref().is_ok() {
            down = false;
            sh.emit(Event::RedisBack { worker: slot.name.clone(), action: "ack" });
        }
        match attempt {
            Ok(taken) => return (Outcome::Done, taken.map_or(Next::Nothing, |j| Next::Job(j, sent))),
            Err(e) if e.is(client::NOJOB) || e.is(client::LEASELOST) => {
                return (Outcome::NotHeld { error: e.to_string() }, Next::Nothing)
            }
            Err(e) if e.is_transient() => {
                if abandon_report(sh, slot) {
                    // The ACK may have taken a job: it comes back with its lease.
                    return (Outcome::Unreported, Next::Nothing);
                }
                let pause = backoff.step();
                sh.redis_down(&mut down, &slot.name, "ack", &e, pause);
                sh.stop.sleep_unless(pause, STOP_NOW);
            }
            // Refused as a whole (the pop part: a queue of the wrong type,
            // say): nothing was applied, so a plain ACK still completes the job.
            Err(_) => return (report(sh, slot, client, job.delivery, &Action::Ack), Next::Nothing),
        }
    }
}

pub(super) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("the handler panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("the handler panicked: {s}")
    } else {
        "the handler panicked".to_string()
    }
}

/// Sends the report about `delivery`, again and again while Redis is
/// unreachable (a repeat is answered as the first attempt was).
pub(super) fn report(sh: &Shared, slot: &Slot, client: &mut Client, delivery: u64, action: &Action) -> Outcome {
    let mut backoff = Backoff::new();
    let mut down = false;
    let what = match action {
        Action::Ack => "ack",
        Action::Fail(..) => "fail",
        Action::Nack(..) => "nack",
    };
    loop {
        let result = match action {
            Action::Ack => client.ack(&slot.name, delivery).map(|()| Outcome::Done),
            Action::Fail(f, policy) => client.fail(&slot.name, delivery, f, policy.as_ref()).map(|o| Outcome::Failed {
                failure: f.clone(),
                fate: match o {
                    FailOutcome::Failed => Fate::Failed,
                    FailOutcome::Retry { delay } => Fate::Retry { delay },
                },
            }),
            Action::Nack(delay, why) => {
                client.nack(&slot.name, delivery, *delay).map(|()| Outcome::Requeued { delay: *delay, why: *why })
            }
        };
        match result {
            Ok(o) => {
                if down {
                    sh.emit(Event::RedisBack { worker: slot.name.clone(), action: what });
                }
                return o;
            }
            Err(e) if e.is(client::NOJOB) || e.is(client::LEASELOST) => {
                return Outcome::NotHeld { error: e.to_string() }
            }
            Err(e) if e.is_transient() => {
                if abandon_report(sh, slot) {
                    return Outcome::Unreported;
                }
                let pause = backoff.step();
                sh.redis_down(&mut down, &slot.name, what, &e, pause);
                sh.stop.sleep_unless(pause, STOP_NOW);
            }
            Err(e) => return Outcome::ReportFailed { error: e.to_string() },
        }
    }
}

/// A report that cannot reach Redis is given up when stopping at once, or
/// when stopping and the job's lease has run out (the module has then given
/// the job back itself).
pub(super) fn abandon_report(sh: &Shared, slot: &Slot) -> bool {
    sh.stop.is_stopping_now() || (sh.stop.is_stopping() && Instant::now() >= lock(&slot.st).lease_until)
}
