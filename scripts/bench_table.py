#!/usr/bin/env python3
"""Assembles scripts/bench_all.sh's figures into one markdown table.

usage: bench_table.py <results.kv> <bench_time.kv>

results.kv holds bench_all.sh's own figures and bench.sh's (key=value);
bench_time.kv holds bench_time.sh's (<name>.<key>,<run>=value, one run).
Every figure in the table comes from these two files, i.e. from one run.
"""

import statistics
import sys


def load(path, strip_run=False):
    """key -> every value it was given, in order (a benchmark repeated
    within the run gives several)."""
    out = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.rstrip("\n").partition("=")
            if not sep:
                continue
            if strip_run:
                key, _, run = key.rpartition(",")
                if run != "1":
                    continue
            out.setdefault(key, []).append(value)
    return out


R = load(sys.argv[1])
T = load(sys.argv[2], strip_run=True)


def num(d, key):
    """The figure, or the median of a repeated benchmark's figures."""
    try:
        return statistics.median(float(v) for v in d[key])
    except (KeyError, ValueError, statistics.StatisticsError):
        return None


def fmt(v, digits=0):
    if v is None:
        return "—"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}x"


rows = []


def row(bench, measure, tq_label, tq, other_label="", other=None, digits=0, show_ratio=True):
    rows.append(
        (
            bench,
            measure,
            tq_label,
            fmt(tq, digits),
            other_label,
            fmt(other, digits) if other_label else "",
            ratio(tq, other) if (show_ratio and other_label) else "",
        )
    )


def group(title):
    rows.append((f"**{title}**", "", "", "", "", "", ""))


def m(key, default=None):
    return R.get(key, [default])[-1]


quick = m("meta.quick") == "1"

# ------------------------------------------------------------- 1. enqueue
cenqueue_label = (
    "C module: TQ.ENQUEUE's checks and writes, payload given (ACL of both keys and both plain commands, "
    "SADD, RPUSH, replicate)"
)
cenqueuejob_label = (
    "C module: the same from TQ.ENQUEUE's own arguments (key names and payload built, args copied unchecked)"
)
group("1. Enqueue (redis-benchmark, 50 clients) and take+complete (8 conns), vs raw commands, one server")
for p, how in (("1", "unpipelined"), ("16", "-P 16")):
    row(f"enqueue, {how}", "req/s", "TQ.ENQUEUE", num(R, f"enq.tq.p{p}"), "RPUSH", num(R, f"enq.rpush.p{p}"))
    for key, label in (
        ("floor", "TQ.PROMOTE on an empty namespace (writes nothing: the floor of a module command)"),
        ("cpush", "C module: push + replicate as RPUSH (scripts/floor_module.c)"),
        ("cpushacl", "C module: ACL check of the key + push + replicate"),
        ("cenqueue", cenqueue_label),
        ("cenqueuejob", cenqueuejob_label),
    ):
        row("", "req/s", label, num(R, f"enq.{key}.p{p}"), "RPUSH", num(R, f"enq.rpush.p{p}"))
    row("", "req/s", "TQ.ENQUEUE", num(R, f"enq.tq.p{p}"), cenqueue_label, num(R, f"enq.cenqueue.p{p}"))
    row("", "req/s", "TQ.ENQUEUE", num(R, f"enq.tq.p{p}"), cenqueuejob_label, num(R, f"enq.cenqueuejob.p{p}"))
for p, how in (("1", "unpipelined"), ("16", "-P 16")):
    row(
        f"enqueue, {how}",
        "req/s",
        "TQ.ENQUEUE",
        num(R, f"enq.tq_vs_lua.p{p}"),
        "Lua SADD+RPUSH (node-resque's enqueue as one script)",
        num(R, f"enq.lua.p{p}"),
    )
row(
    "enqueue, -P 16, a replica attached",
    "req/s",
    "TQ.ENQUEUE",
    num(R, "enq.replica.tq.p16"),
    "RPUSH",
    num(R, "enq.replica.rpush.p16"),
)
for p, how in (("1", "1 job per round trip"), ("16", "16 commands per round trip")):
    row(
        f"take + complete a waiting job, {how}",
        "jobs/s",
        "TQ.POP+TQ.ACK",
        num(R, f"take.tq.p{p}"),
        "LPOP (no record, no stats)",
        num(R, f"take.lpop.p{p}"),
    )
    row(
        "",
        "jobs/s",
        "TQ.POP+TQ.ACK",
        num(R, f"take.tq.p{p}"),
        "node-resque's per-job commands (Lua pop, MULTI stats, DEL)",
        num(R, f"take.noderesque.p{p}"),
    )
    row(
        "",
        "jobs/s",
        "TQ.POP ... ACK (one command a job)",
        num(R, f"take.ackpop.p{p}"),
        "node-resque's per-job commands (Lua pop, MULTI stats, DEL)",
        num(R, f"take.noderesque.p{p}"),
    )

floor_label = "the same writes as plain commands (LPOP, SET record, SADD workers, ZADD lease, DEL, INCR ×2, ZREM)"
row(
    "take + complete, server time per job (INFO commandstats), 16 commands per round trip",
    "µs/job",
    "TQ.POP+TQ.ACK",
    num(R, "take.us.popack"),
    floor_label,
    num(R, "take.us.floor"),
    digits=2,
)
row("", "µs/job", "TQ.POP ... ACK", num(R, "take.us.ackpop"), floor_label, num(R, "take.us.floor"), digits=2)
row(
    "",
    "µs/job",
    "TQ.POP+TQ.ACK",
    num(R, "take.us.popack"),
    "node-resque's per-job commands",
    num(R, "take.us.noderesque"),
    digits=2,
)
cfloor_label = (
    "C module: the same writes in one command (FLOOR.TAKEACK of scripts/floor_module.c: "
    "each key's ACL and each plain command's checked, each write replicated)"
)
cfloortq_label = (
    "C module: tq's writes in one command (the same, plus the delivery counter, the in-flight entry, "
    "a read of the queue's clock, a read and write of the metrics record)"
)
row("", "µs/job", cfloor_label, num(R, "take.us.cfloor"), floor_label, num(R, "take.us.floor"), digits=2)
row(
    "",
    "µs/job",
    cfloor_label,
    num(R, "take.us.cfloor"),
    "node-resque's per-job commands",
    num(R, "take.us.noderesque"),
    digits=2,
)
row("", "µs/job", "TQ.POP ... ACK", num(R, "take.us.ackpop"), cfloortq_label, num(R, "take.us.cfloortq"), digits=2)
row("", "µs/job", cfloortq_label, num(R, "take.us.cfloortq"), floor_label, num(R, "take.us.floor"), digits=2)
row(
    "job metrics' share, in C",
    "µs/job",
    "C module: tq's writes",
    num(R, "take.us.cfloortq"),
    "the same without the job metrics' two keys",
    num(R, "take.us.cfloortq_nometrics"),
    digits=2,
)
share_rounds = m("take.share.rounds", "?")
for label, mode in (("TQ.POP ... ACK", "ackpop"), ("TQ.POP+TQ.ACK", "popack")):
    row(
        "job metrics' share of take + complete (target ≤ 1.05×)",
        "µs/job",
        f"{label}, tq.metrics yes: median of {share_rounds} runs, alternating with the `no` runs "
        f"(yes / no runs: {m(f'take.share.{mode}.rounds', '?')})",
        num(R, f"take.share.{mode}.yes"),
        "the same, tq.metrics no: median",
        num(R, f"take.share.{mode}.no"),
        digits=2,
    )

# ---------------------------------------------------------- 2. full cycle
jobs = int(float(m("meta.cycle_jobs", "0")))
cons = m("meta.consumers", "?")
nr = f"node-resque {m('meta.node-resque', '?')}"
bull = f"BullMQ {m('meta.bullmq', '?')}"
tq_variants = [
    ("tq-client (Rust library Worker, in-process handler; TQ.POP ... ACK)", "tq_worker"),
    (
        f"tq-client, prefetch {m('meta.prefetch', '?')} (each slot holds that many jobs under as many names; "
        "quick jobs' ACKs pipelined)",
        "tq_worker_pf",
    ),
    ("tq from Rust: plain TQ.BPOP+TQ.ACK loop (two round trips a job)", "tq_rust"),
    ("tq from Node: ioredis TQ.ENQUEUE; TQ.BPOP, then TQ.POP ... ACK", "tq_node"),
    ("tq-resque (clients/node): node-resque's Queue and Workers API on TQ commands", "tq_resque"),
]
peers = ((nr, "noderesque"), (bull, "bullmq"))
floor_variants = [
    ("floor: plain Redis, RPUSH; BLPOP -> parse (one round trip a job, no bookkeeping at all)", "plain"),
    ("floor: C module making tq's writes, FLOOR.ENQUEUE; FLOOR.TAKEACK -> parse (one round trip a job)", "cfloor"),
]


# The library's shape as a bare loop (batch only: on an empty queue it
# spins): what the library's own client work costs beside it.
popack_loop = ("tq from Rust: plain TQ.POP ... ACK loop (one round trip a job, as the library)", "tq_popack")


def cycle_rows(shape, measures, floors, variants=tq_variants):
    for i, (measure, field) in enumerate(measures):
        first = True
        for label, key in variants + floors:
            for other, okey in peers:
                row(
                    measure if first else "",
                    "jobs/s",
                    label,
                    num(R, f"{shape}.{key}.{field}"),
                    other,
                    num(R, f"{shape}.{okey}.{field}"),
                )
                first = False
        for label, key in floors + [v for v in variants if v == popack_loop]:
            row(
                "",
                "jobs/s",
                tq_variants[0][0],
                num(R, f"{shape}.tq_worker.{field}"),
                label,
                num(R, f"{shape}.{key}.{field}"),
            )


group(
    f"2a. Full job cycle, enqueue all then drain: {jobs:,} jobs enqueue → pop → no-op → ack, {cons} consumers "
    f"started once every job is queued, {m('meta.window', '?')} enqueues outstanding; "
    f"medians of {m('meta.cycle_reps', '1')} interleaved round(s)"
)
cycle_rows(
    "batch",
    [
        ("end to end, first enqueue to last ack", "rate"),
        ("drain alone, consumers' start to last ack", "drain_rate"),
    ],
    floor_variants,
    tq_variants + [popack_loop],
)


def per_round(shape, key, okey, field="rate"):
    """`key` ÷ `okey` within each round (the two ran minutes apart on the
    same machine), in round order; None unless every round has both."""
    a, b = R.get(f"{shape}.{key}.{field}", []), R.get(f"{shape}.{okey}.{field}", [])
    try:
        pairs = [(float(x), float(y)) for x, y in zip(a, b, strict=True)]
    except ValueError:
        return None
    return [x / y for x, y in pairs if y] or None


# The machine's speed drifts between rounds, and a node process's more than
# a Rust one's: each round's own ratio shows how far a median of medians can
# be trusted.
label_of = {key: label.split(" (")[0] for label, key in tq_variants + floor_variants + list(peers)}
for i, (key, okey) in enumerate(
    (
        ("tq_worker", "bullmq"),
        ("tq_worker", "noderesque"),
        ("cfloor", "bullmq"),
        ("cfloor", "noderesque"),
        ("tq_worker", "cfloor"),
        ("tq_worker_pf", "bullmq"),
    )
):
    ratios = per_round("batch", key, okey)
    if ratios is None:
        continue
    rows.append(
        (
            "" if i else "end to end, each round's own ratio: median of the rounds (lowest – highest)",
            "ratio",
            f"{label_of[key]} ÷ {label_of[okey]}",
            f"{statistics.median(ratios):.2f}x",
            f"lowest – highest of {len(ratios)} round(s)",
            f"{min(ratios):.2f}x – {max(ratios):.2f}x",
            "",
        )
    )
for what, field, tq_label, floor_label in (
    ("take + complete", "take_us", "TQ.POP ... ACK (the loop's)", "FLOOR.TAKEACK with tq's writes"),
    ("enqueue, 50 outstanding", "enqueue_us", "TQ.ENQUEUE", "FLOOR.ENQUEUE"),
):
    row(
        f"server time per command in the 2a loops, one job per round trip ({what}; INFO commandstats)",
        "µs/job",
        tq_label,
        num(R, f"batch.tq_popack.{field}"),
        floor_label,
        num(R, f"batch.cfloor.{field}"),
        digits=2,
    )
group(
    f"2b. Full job cycle, live: the same, but the {cons} consumers wait on the empty queue "
    f"while the producer sends; medians of {m('meta.cycle_reps', '1')} interleaved round(s)"
)
cycle_rows("cycle", [("end to end, first enqueue to last ack", "rate")], floor_variants[:1])
wj = int(float(m("meta.work_jobs", "0")))
group(f"2c. Pieces of the cycle (enqueue all then drain, medians as above)")
for other, okey in peers:
    row(
        f"tq work: {wj:,} jobs waiting, each run as a process (/bin/true), start to last ack"
        if okey == "noderesque"
        else "",
        "jobs/s",
        "tq work --concurrency " + cons,
        num(R, "cycle.tq_work.rate"),
        other + " draining in-process no-ops (2a)",
        num(R, f"batch.{okey}.drain_rate"),
    )
for other, okey in peers:
    row(
        "producer alone, nothing consuming (first to last enqueue)" if okey == "noderesque" else "",
        "jobs/s",
        "tq from Node",
        num(R, "batch.tq_node.enqueue_rate"),
        other,
        num(R, f"batch.{okey}.enqueue_rate"),
    )

# -------------------------------------------------------------- 3. memory
mj = int(float(m("meta.mem_jobs", "0")))
mw = int(float(m("meta.mem_workers", "0")))
group(
    "3. Memory per job: keyspace bytes (used_memory less client buffers and scripts), args [i,2], "
    "fresh server each, after a warm-up round"
)
for other, key in ((nr, "noderesque"), (bull, "bullmq")):
    row(
        f"waiting: {mj:,} jobs enqueued by each one's producer",
        "bytes/job",
        "TQ.ENQUEUE",
        num(R, "mem_waiting.tq.bytes_per_job"),
        other + (" Queue.add (job hash, wait list, events)" if key == "bullmq" else " queue.enqueue"),
        num(R, f"mem_waiting.{key}.bytes_per_job"),
    )
for other, key in ((nr, "noderesque"), (bull, "bullmq")):
    row(
        f"in flight: {mw:,} workers each holding one job, vs the same workers idle",
        "bytes/job",
        "TQ.POP by distinct workers",
        num(R, "mem_inflight.tq.bytes_per_job"),
        other + (" Worker, concurrency " + f"{mw:,}" if key == "bullmq" else f" Workers ({mw:,})"),
        num(R, f"mem_inflight.{key}.bytes_per_job"),
    )

# --------------------------------------------------- 4. bench_time figures
sent = num(T, "pick_tq.sent")
secs = f"{sent / 1000:.0f} s" if sent else "?"
group("4. Server-side time (scripts/bench_time.sh, one run, each on a fresh server)")
for k, digits in (("p50", 3), ("p99", 3)):
    row(
        f"pickup latency, 1000 jobs/s open loop × {secs}, 4 workers" if k == "p50" else "",
        f"{k} ms",
        "TQ.ENQUEUE → TQ.BPOP",
        num(T, f"pick_tq.{k}"),
        "RPUSH → BLPOP (no module)",
        num(T, f"pick_floor.{k}"),
        digits,
    )
pick_jobs = num(R, "pickup_node.tq_resque.jobs")
for k, digits in (("p50", 3), ("p99", 3)):
    row(
        f"pickup latency from Node, {fmt(pick_jobs)} jobs at 100/s open loop, 4 Workers, enqueue call → perform starts"
        if k == "p50"
        else "",
        f"{k} ms",
        "tq-resque: Workers waiting in TQ.BPOP",
        num(R, f"pickup_node.tq_resque.{k}"),
        f"{nr}: Workers polling (timeout 100 ms)",
        num(R, f"pickup_node.noderesque.{k}"),
        digits,
    )
late_jobs = num(T, "late.jobs")
late_label = f"delayed-job lateness, {fmt(late_jobs)} TQ.ENQUEUEAT over {3 if quick else 10} s, 4 workers"
row(late_label, "p50 ms", "every job at a worker − the time asked for (T)", num(T, "late.asked_p50"), digits=3)
row("", "p99 ms", "", num(T, "late.asked_p99"), digits=3)
row("", "max ms", "", num(T, "late.asked_max"), digits=3)
row("", "jobs received before T", "", num(T, "late.asked_early"))
row("", "p50 ms", "job in its queue − its due time (INFO tq: per bucket round promoted, whole ms, server clock)", num(T, "late.queue_p50"), digits=0)
row("", "p99 ms", "", num(T, "late.queue_p99"), digits=0)
row("", "max ms", "", num(T, "late.queue_max"), digits=0)
row("", "p50 ms", "every job at a worker − bucket×1000 (node-resque's filing second; negative: before it)", num(T, "late.p50"), digits=3)
row("", "p99 ms", "", num(T, "late.p99"), digits=3)
row("", "jobs received before their bucket's second", "", num(T, "late.early"))
promo = num(T, "auto250.jobs")
plabel = f"promotion of {fmt(promo)} due jobs ({fmt(promo / 1000 if promo else None)} buckets)"
for v, label in (("auto250", "module timer, tq.timer-batch 250 (default)"), ("auto1000", "module timer, tq.timer-batch 1000")):
    row(
        plabel if v == "auto250" else "",
        "jobs/s",
        label,
        num(T, f"{v}.rate"),
        "client loop TQ.PROMOTE LIMIT 1000",
        num(T, "manual.rate"),
    )
row(
    "",
    "jobs/s",
    "module timer, tq.timer-batch 250 (default)",
    num(T, "auto250.rate"),
    "floor of any promoter keeping the layout: the same writes as bulk plain commands (SADD, RPUSH, DEL of the markers, DEL, ZREM) from a client that knows every key, server time",
    num(T, "floor.server_rate"),
)
row(
    "",
    "jobs/s",
    "module timer, batch 250, jobs filed by tq for exact times (each job's exact time in tq:at and its bucket's in "
    "tq:due, cleared as it moves)",
    num(T, "exact250.rate"),
    "the same floor (the layout's writes only)",
    num(T, "floor.server_rate"),
)
row(
    "",
    "jobs/s",
    "C module: the same writes, one FLOOR.PROMOTE a bucket (each marker's ACL checked; queue found by a scan, "
    "not a JSON parse), server time",
    num(T, "cfloor.server_rate"),
    "the same writes as bulk plain commands, server time",
    num(T, "floor.server_rate"),
)
row(
    "",
    "jobs/s",
    "C module, exact (FLOOR.PROMOTE ... EXACT: each job's queue as JSON.parse finds it, by a structural scan; "
    "a marker deleted only when the bucket is its one member), server time",
    num(T, "cfloorx.server_rate"),
    "the same writes as bulk plain commands, server time",
    num(T, "floor.server_rate"),
)
TIMERS = (
    ("auto250", "module timer, tq.timer-batch 250 (default)"),
    ("auto1000", "module timer, tq.timer-batch 1000"),
    ("exact250", "module timer, batch 250, jobs filed by tq for exact times"),
)
for v, label in TIMERS:
    row(
        "",
        "max stall ms (slowest PING, one sent every 1 ms)",
        label,
        num(T, f"{v}.ping_max"),
        "client loop",
        num(T, "manual.ping_max"),
        2,
    )
# A tick's wall time includes any time the server's thread waited for a
# core (two cores shared with the drivers, the pinger and the allocator's
# purging thread); its CPU time is the tick's own work.
TICK_CPU = "timer ticks ms, longest on the server thread's CPU clock (INFO tq timer_tick_cpu_us: the rest of the wall time it waited for a core)"
for v, label in TIMERS:
    row("", "timer ticks ms, p99 (INFO tq timer_tick_us, server clock)", label, num(T, f"{v}.tick_p99_ms"), digits=2)
    row("", "timer ticks ms, longest", label, num(T, f"{v}.tick_max_ms"), digits=2)
    row("", TICK_CPU, label, num(T, f"{v}.tick_cpu_max_ms"), digits=2)
    row("", "server main thread busy, share of the wall time from the first job promoted", label, num(T, f"{v}.busy"), digits=2)
leases = num(T, "expire.due")
if leases is not None:
    xlabel = f"lease expiry: {fmt(num(T, 'expire.back'))} jobs each held by a worker of its own, every lease run out at once"
    row(
        xlabel,
        "jobs/s",
        "module timer, tq.timer-batch 250 (default)",
        num(T, "expire.rate"),
        "the same writes as plain commands (ZREM, LPUSH, HSET, DEL, SET PXAT a job) from a client that knows every key, "
        "server time",
        num(T, "expire_floor.server_rate"),
    )
    row("", "max stall ms (slowest PING, one sent every 1 ms)", "module timer", num(T, "expire.ping_max"), digits=2)
    row("", "timer ticks ms, p99 (INFO tq timer_tick_us)", "module timer", num(T, "expire.tick_p99_ms"), digits=2)
    row("", "timer ticks ms, longest", "module timer", num(T, "expire.tick_max_ms"), digits=2)
    row("", TICK_CPU, "module timer", num(T, "expire.tick_cpu_max_ms"), digits=2)
    row("", "server main thread busy, share of the wall time", "module timer", num(T, "expire.busy"), digits=2)
depths = sorted(int(k[len("depth") : -len(".drain.rate")]) for k in T if k.startswith("depth") and k.endswith(".drain.rate"))
if len(depths) == 2:
    shallow, deep = depths

    def steady(d):
        v = [num(T, f"depth{d}.steady{r}.rate") for r in range(1, 10)]
        v = [x for x in v if x is not None]
        return statistics.median(v) if v else None

    row(
        f"TQ.POP+TQ.ACK, 8 conns × 8 jobs per trip, depth {deep:,} vs {shallow:,}",
        "drain jobs/s",
        f"depth {deep:,}",
        num(T, f"depth{deep}.drain.rate"),
        f"depth {shallow:,}",
        num(T, f"depth{shallow}.drain.rate"),
    )
    row("", "steady jobs/s (median of rounds)", f"depth {deep:,}", steady(deep), f"depth {shallow:,}", steady(shallow))

idle = num(T, "ns_idle.namespaces")
if idle is not None:
    label = f"timer, {idle:,.0f} namespaces with one job due in a day (nothing due), idle"
    row(label, "server CPU, % of a core (INFO cpu; target < 2)", "module timer", num(T, "ns_idle.cpu_pct"), digits=2, show_ratio=False)
    row("", "PING p99 ms, 1 per ms (target < 1)", "module timer", num(T, "ns_idle.ping_p99"), digits=3, show_ratio=False)
    row("", "namespaces visited per second (INFO tq timer_ns_visits)", "module timer", num(T, "ns_idle.visits_s"), show_ratio=False)
due = num(T, "ns_due.namespaces")
if due is not None:
    label = f"timer, {due:,.0f} namespaces with a job due in the same second"
    row(label, "jobs promoted", "module timer", num(T, "ns_due.promoted"), show_ratio=False)
    row("", "s from the due second to all promoted", "module timer", num(T, "ns_due.total_s"), digits=3, show_ratio=False)
    row("", "longest timer tick ms (INFO tq timer_tick_us; target ≤ 5)", "module timer", num(T, "ns_due.tick_max_ms"), digits=2, show_ratio=False)
    row("", TICK_CPU, "module timer", num(T, "ns_due.tick_cpu_max_ms"), digits=2, show_ratio=False)

# ------------------------------------------------------------------- print
mins, s = divmod(int(float(m("meta.seconds", "0"))), 60)
print(
    f"One run of `make bench` (scripts/bench_all.sh{', QUICK=1' if quick else ''}), {m('meta.date', '?')}, "
    f"tq {m('meta.rev', '?')}, module build {m('meta.build', '?')}: {m('meta.cpu', '?')}, {m('meta.cores', '?')} cores, "
    f"redis-server {m('meta.redis', '?')}, Node {m('meta.node', '?')}, {nr}, {bull}, ioredis {m('meta.ioredis', '?')}. "
    f"Load average before {m('meta.load_before', '?')}, after {m('meta.load_after', '?')} "
    f"(1-minute figure at the start of parts 1-4: {', '.join(m(f'meta.load_part{i}', '?') for i in range(1, 5))}); "
    f"the run took {mins} min {s} s."
)
print()
print("| benchmark | measure | tq | tq's figure | compared with | its figure | tq ÷ it |")
print("|---|---|---|---:|---|---:|---:|")
for r in rows:
    print("| " + " | ".join(r) + " |")
