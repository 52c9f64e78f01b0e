#!/usr/bin/env python3
"""What a job costs the server, counted rather than timed: each workload runs
against a redis-server under callgrind (valgrind), and the server's
instructions, its module-API calls and its `malloc` calls are divided by the
jobs done. Counts do not move with the machine's load, so they show where a
change helps even on a busy machine; the timed figures of `make bench` stay
the yardstick.

Workloads (each on a fresh server, counted after a warm-up on the same
namespace):
  take+complete  TQ.POP+TQ.ACK, TQ.POP ... ACK, the same writes as plain
                 commands (the floor) and as one command of the C yardstick
                 module (with and without tq's own writes), node-resque's
                 per-job commands (scripts/bench_cycle.rs, 8 connections, 16
                 per trip)
  enqueue        TQ.ENQUEUE vs the C yardstick module's ACL check + push +
                 replicate (scripts/floor_module.c), and its FLOOR.ENQUEUE
                 (TQ.ENQUEUE's checks and writes), redis-benchmark -P 16
  promotion      TQ.PROMOTE LIMIT 1000 vs the layout's plain writes, and
                 those made by the C module (scripts/bench_time.rs
                 promote-manual / promote-floor / promote-cfloor)
  lease expiry   the timer giving back jobs whose leases all ran out at
                 once vs the same writes as plain commands
                 (scripts/bench_time.rs expire-auto / expire-floor)
  the 2a cycle   enqueue all, then drain with 8 consumers, one job per round
                 trip (bench-cycle cycle-popack / cycle-cfloor batch), with
                 valgrind's cache simulation: instructions and first-level
                 cache misses per job, and the machine code run per job
                 (KiB, the module's and the whole server's), tq against the
                 C module making tq's writes. Counted over the whole cycle,
                 on a fresh server.

usage: bench_counts.py <libtq.so> <bench-cycle> <bench-time> <floor.so> <out.md>
Env: COUNT_JOBS (take+complete jobs, default 4000).
"""
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MODULE, CYCLE, BTIME, FLOOR, OUT = sys.argv[1:6]
JOBS = int(os.environ.get("COUNT_JOBS", "4000"))
# The module-API calls counted per job, and what the table calls them.
CALLS = [
    ("RM_OpenKey", "key opens"),
    ("RM_CreateString", "strings made"),
    ("RM_Alloc", "allocations from Redis"),
    # Every allocation of the whole server (Redis's own, and the module's
    # that miss its free lists): calls of jemalloc's `malloc`, what the
    # README's before-and-after table counts as allocations.
    ("malloc", "mallocs, whole server"),
    ("RM_Replicate", "replicated commands"),
    ("RM_NotifyKeyspaceEvent", "keyspace events"),
    ("RM_ACLCheckKeyPermissions", "ACL key checks"),
    ("RM_ACLCheckCommandPermissions", "ACL command checks"),
    ("RM_Call", "RM_Call"),
]


def free_port():
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p != 6379:
            return p


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True).stdout


class Server:
    """redis-server under callgrind, counting only between zero() and dump()."""

    def __init__(self, module, *more, args=(), cache=False):
        self.dir = tempfile.mkdtemp(prefix="tq-counts-")
        self.port = free_port()
        self.out = os.path.join(self.dir, "cg.out")
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}",
             f"--dump-instr={'yes' if cache else 'no'}",
             *(["--cache-sim=yes"] if cache else []),
             "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--loadmodule", module, *[a for m in more for a in ("--loadmodule", m)], *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            if cli(self.port, "ping").strip() == "PONG":
                return
            time.sleep(0.1)
        raise SystemExit("redis-server under valgrind did not start")

    def zero(self):
        subprocess.run(["callgrind_control", "-z", str(self.proc.pid)], capture_output=True, check=True)

    def dump(self):
        subprocess.run(["callgrind_control", "-d", str(self.proc.pid)], capture_output=True, check=True)
        time.sleep(0.5)
        dumps = sorted((f for f in os.listdir(self.dir) if f.startswith("cg.out.")), key=lambda f: int(f.split(".")[-1]))
        return os.path.join(self.dir, dumps[-1])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def compressed(line, kind, names):
    """A `<kind>=` or `c<kind>=` line of a callgrind dump (kind: fn, ob...),
    whose names are compressed: `(id) name` the first time, `(id)` after.
    Records the name in `names`; returns (whether the line is a callee's,
    the id), or None for any other line."""
    m = re.match(r"^(c?)" + kind + r"=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if not m:
        return None
    if m.group(3):
        names[m.group(2)] = m.group(3)
    return bool(m.group(1)), m.group(2)


def parse(path):
    """(total instructions, calls per callee name) of a callgrind dump."""
    names, calls, cfn, total = {}, collections.Counter(), None, 0
    with open(path, errors="replace") as f:
        for line in f:
            named = compressed(line, "fn", names)
            if named:
                callee, id_ = named
                if callee:
                    cfn = names.get(id_)
                continue
            m = re.match(r"^calls=(\d+)", line)
            if m and cfn:
                calls[cfn] += int(m.group(1))
                continue
            m = re.match(r"^(?:summary|totals): (\d+)", line)
            if m:
                total = max(total, int(m.group(1)))
    return total, calls


def events(path):
    """Every event's total in a callgrind dump: {"Ir": ..., "I1mr": ...}."""
    names, totals = [], []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("events:"):
                names = line.split()[1:]
            m = re.match(r"^(?:summary|totals):((?: \d+)+)", line)
            if m:
                totals = [int(v) for v in m.group(1).split()]
    return dict(zip(names, totals))


def code_run(path, jobs, module):
    """KiB of machine code the server runs per job: the 64-byte lines (the
    unit of the instruction cache) holding an instruction run at least once
    every other job on average, in the module's object and in the whole
    server. Needs a dump made with --dump-instr=yes."""
    names, obj, addr, skip = {}, None, 0, False
    runs = collections.defaultdict(collections.Counter)  # object -> address -> executions
    with open(path, errors="replace") as f:
        for line in f:
            named = compressed(line, "ob", names)
            if named:
                callee, id_ = named
                if not callee:
                    obj = names.get(id_, id_)
                continue
            if line.startswith("calls="):
                skip = True  # the next cost line is the call's, not an instruction's
                continue
            m = re.match(r"^(0x[0-9a-f]+|[+-]\d+|\*)\s+\S+\s+(\d+)", line)
            if not m:
                continue
            a = m.group(1)
            addr = int(a, 16) if a.startswith("0x") else addr + int(a) if a[0] in "+-" else addr
            if skip:
                skip = False
                continue
            runs[obj][addr] += int(m.group(2))
    hot = collections.Counter()
    for o, by_addr in runs.items():
        lines = collections.Counter()
        for a, n in by_addr.items():
            lines[a // 64] = max(lines[a // 64], n)
        hot[o] = sum(1 for n in lines.values() if n * 2 >= jobs) * 64 / 1024
    mod = sum(kib for o, kib in hot.items() if o and os.path.basename(o) == os.path.basename(module))
    return mod, sum(hot.values())


def inside_commands(path):
    """Instructions spent inside commands (Redis's `call`, inclusive): what
    `INFO commandstats` times, without reading requests and writing
    replies. None when the dump has no such function."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    m = re.search(r"^\s*([\d,]+) \([^)]*\)\s+\S*:call \[", out, re.M)
    return int(m.group(1).replace(",", "")) if m else None


def measure(module, warm, run, jobs, fill=None):
    # A minute's end writes every worker's open tally at once (see
    # full_speed_tallies): a run it falls in is run again, once.
    for attempt in range(2):
        counted, minute = measure_once(module, warm, run, jobs, fill)
        if minute == int(time.time() // 60) or module != MODULE:
            break
        print(f"bench_counts: a minute ended during a run of {jobs} jobs; run again", file=sys.stderr)
    return counted


def measure_once(module, warm, run, jobs, fill=None):
    s = Server(module)
    try:
        # The warm-up works the same namespace with the same worker names,
        # and its keys stay: the counted run is a running server's, whose
        # workers are known and hold their entries and tallies. (On a fresh
        # namespace each of the 128 workers would pay its first entry,
        # heartbeat and tally within its ~31 counted jobs; at full speed it
        # pays them once in thousands.)
        warm(s.port)
        # One key with a TTL, as any working server holds (locks, tq's
        # tombstones, closed metrics minutes): with none, Redis skips its
        # expiry lookup on every key access, which a real server pays.
        cli(s.port, "set", "bench:ttl", "x", "px", "86400000")
        if fill:
            fill(s.port)
        minute = int(time.time() // 60)
        s.zero()
        run(s.port)
        dump = s.dump()
        total, calls = parse(dump)
        inside = inside_commands(dump)
    finally:
        s.stop()
    counted = {"instructions": total / jobs, **{label: calls[name] / jobs for name, label in CALLS}}
    counted["inside commands"] = inside / jobs if inside is not None else None
    return counted, minute


def cycle(mode, jobs, fill=""):
    """bench-cycle's take + complete of `jobs` waiting jobs; `fill` "only" or
    "skip" splits its fill from its run (one namespace for both)."""
    env = dict(os.environ, BENCH_CYCLE_NS="counted", BENCH_CYCLE_FILL=fill)
    return lambda port: subprocess.run(
        [CYCLE, str(port), mode, str(jobs), "16", "8"], capture_output=True, check=True, env=env)


def take(label, mode, metrics=True, module=None):
    """A take + complete row: warmed up, then the queue filled (not
    counted), then the jobs taken and completed (counted)."""
    warm = cycle(mode, 800) if metrics else nometrics(cycle(mode, 800))
    if module is None:
        warm = full_speed_tallies(warm)
    return (label, module or MODULE, warm, cycle(mode, JOBS, "skip"), JOBS, cycle(mode, JOBS, "only"))


def full_speed_tallies(warm):
    """`warm` with the job metrics' tallies written as seldom per job as at
    full speed. A worker's tally goes to its record every
    tq.metrics-flush-ms (2 s) of the clock; at full speed (~100k jobs/s over
    the 128 workers here) that is once per ~1,500 of its jobs, while the
    counted run, ~50x slower under valgrind, gives each worker ~31 jobs in
    all. At the default, tallies would be written every few dozen jobs, a
    cost no server at speed pays; at the 60 s maximum, the tallies the
    warm-up opened stay open through the counted run (a minute's end aside:
    see `measure`), as a worker's tally at speed does over ~31 of its jobs."""
    def run(port):
        cli(port, "config", "set", "tq.metrics-flush-ms", "60000")
        warm(port)
    return run


def bench(n, *cmd):
    return lambda port: subprocess.run(
        ["redis-benchmark", "-p", str(port), "-n", str(n), "-P", "16", "-c", "4", *cmd], capture_output=True, check=True)


def nometrics(warm):
    """`warm` on a server with `tq.metrics no` (the metrics' share, same harness)."""
    def run(port):
        cli(port, "config", "set", "tq.metrics", "no")
        warm(port)
    return run


rows = []
payload = '{"class":"add","queue":"q","args":[1,2]}'
for title, cases in [
    ("take + complete a waiting job (8 connections, 16 per trip; the fill not counted)", [
        take("TQ.POP + TQ.ACK", "popack"),
        take("TQ.POP ... ACK", "ackpop"),
        take("TQ.POP + TQ.ACK, tq.metrics no", "popack", metrics=False),
        take("TQ.POP ... ACK, tq.metrics no", "ackpop", metrics=False),
        take("node-resque's per-job commands", "noderesque"),
        take("C module: tq's writes in one command (FLOOR.TAKEACK, see Speed)", "cfloortq", module=FLOOR),
        take("the same without the job metrics' two keys", "cfloortq_nometrics", module=FLOOR),
        take("C module: the floor's writes in one command (FLOOR.TAKEACK)", "cfloor", module=FLOOR),
        take("the same writes as plain commands (floor)", "floor"),
    ]),
    ("enqueue (redis-benchmark -P 16)", [
        ("TQ.ENQUEUE", MODULE, bench(2000, "TQ.ENQUEUE", "resque", "q", "add", "[1,2]"),
         bench(20000, "TQ.ENQUEUE", "resque", "q", "add", "[1,2]"), 20000),
        ("TQ.ENQUEUE, tq.metrics no", MODULE, nometrics(bench(2000, "TQ.ENQUEUE", "resque", "q", "add", "[1,2]")),
         bench(20000, "TQ.ENQUEUE", "resque", "q", "add", "[1,2]"), 20000),
        ("C module: TQ.ENQUEUE's checks and writes, payload given", FLOOR,
         bench(2000, "floor.enqueue", "resque:queues", "resque:queue:q", "q", payload),
         bench(20000, "floor.enqueue", "resque:queues", "resque:queue:q", "q", payload), 20000),
        ("C module: the same from TQ.ENQUEUE's own arguments (key names and payload built)", FLOOR,
         bench(2000, "floor.enqueuejob", "resque", "q", "add", "[1,2]"),
         bench(20000, "floor.enqueuejob", "resque", "q", "add", "[1,2]"), 20000),
        ("C module: ACL check + push + replicate", FLOOR, bench(2000, "floor.pushacl", "resque:queue:q", payload),
         bench(20000, "floor.pushacl", "resque:queue:q", payload), 20000),
    ]),
]:
    rows.append((title, [(label, measure(mod, warm, run, n, *fill)) for label, mod, warm, run, n, *fill in cases]))


def moves(fill, cases, n, server):
    """Each case's run counted per job on a fresh server (`server()`), after
    the `fill` command of bench-time (not counted)."""
    out = []
    for label, run in cases:
        s = server()
        try:
            subprocess.run([BTIME, fill[0], str(s.port), *fill[1:]], capture_output=True, check=True)
            s.zero()
            subprocess.run([BTIME, run[0], str(s.port), *run[1:]], capture_output=True, check=True)
            total, calls = parse(s.dump())
        finally:
            s.stop()
        out.append((label, {"instructions": total / n, **{lab: calls[name] / n for name, lab in CALLS}}))
    return out


# Promotion: the fill is not counted, only the moves.
PROMO = 20000
rows.append((f"promotion of {PROMO:,} due jobs (20 buckets)", moves(
    ["promote-fill", str(PROMO), "20"],
    [("TQ.PROMOTE LIMIT 1000 (client loop)", ["promote-manual", str(PROMO), "1000"]),
     ("C module: the same writes, FLOOR.PROMOTE a bucket", ["promote-cfloor", str(PROMO)]),
     ("the same, exact (FLOOR.PROMOTE ... EXACT)", ["promote-cfloor", str(PROMO), "exact"]),
     ("the layout's plain writes (floor)", ["promote-floor", str(PROMO)])],
    PROMO, lambda: Server(MODULE, FLOOR))))

# Lease expiry: the fill (jobs queued and taken) is not counted.
LEASES = 3000
rows.append((f"lease expiry of {LEASES:,} jobs at once (each held by a worker of its own)", moves(
    ["expire-fill", str(LEASES)],
    [("the timer giving the jobs back (rounds of 62)", ["expire-auto", str(LEASES), "quiet"]),
     ("the same writes as plain commands (floor)", ["expire-floor", str(LEASES)])],
    LEASES, lambda: Server(MODULE, args=("--enable-debug-command", "yes")))))

# The 2a cycle, one job per round trip, its caches simulated: what the
# server's time per job in the drain follows besides its instructions.
CYCLE_JOBS = 10000
CACHE = [("Ir", "instructions"), ("I1mr", "instruction-cache misses"), ("D1mr", "data-cache read misses"),
         ("D1mw", "data-cache write misses")]


def cached_cycle(mode, module):
    s = Server(module, cache=True)
    try:
        s.zero()
        subprocess.run([CYCLE, str(s.port), mode, str(CYCLE_JOBS), "50", "8", "batch"], capture_output=True, check=True)
        dump = s.dump()
        counted = events(dump)
        module_kib, server_kib = code_run(dump, CYCLE_JOBS, module)
    finally:
        s.stop()
    out = {ev: counted.get(ev, 0) / CYCLE_JOBS for ev, _ in CACHE}
    out.update({"module KiB": module_kib, "server KiB": server_kib})
    return out


cycle_rows = [("tq: TQ.ENQUEUE; TQ.POP ... ACK (as the library)", cached_cycle("cycle-popack", MODULE)),
              ("C module making tq's writes: FLOOR.ENQUEUE; FLOOR.TAKEACK", cached_cycle("cycle-cfloor", FLOOR))]

labels = ["instructions"] + [label for _, label in CALLS]
with open(OUT, "w") as f:
    f.write("Server work per job, counted (callgrind; scripts/bench_counts.py): instructions of the whole server "
            "(network and parsing included), module-API calls and the whole server's `malloc` calls, divided by the "
            "jobs done. Each row's last "
            "column is its instructions ÷ the section's last row (the floor or yardstick).\n\n")
    f.write("| workload | " + " | ".join(labels) + " | ÷ last row |\n")
    f.write("|---|" + "---:|" * (len(labels) + 1) + "\n")
    for title, cases in rows:
        f.write(f"| **{title}** |" + " |" * (len(labels) + 1) + "\n")
        base = cases[-1][1]["instructions"] or 1
        for label, m in cases:
            cells = [f"{m['instructions']:,.0f}"] + [f"{m[l]:.1f}" for l in labels[1:]]
            f.write(f"| {label} | " + " | ".join(cells) + f" | {m['instructions'] / base:.2f}x |\n")
    # The job metrics' share of take + complete (target ≤ 1.05×): the whole
    # server's instructions, and those inside the commands alone.
    take_rows = dict(rows[0][1])
    f.write("\nThe job metrics' share of take + complete, counted (tq.metrics yes ÷ no; target ≤ 1.05×):\n\n")
    f.write("| shape | whole server | inside the commands |\n|---|---:|---:|\n")
    for shape in ["TQ.POP ... ACK", "TQ.POP + TQ.ACK"]:
        yes, no = take_rows.get(shape), take_rows.get(f"{shape}, tq.metrics no")
        if not yes or not no:
            continue
        cells = []
        for key in ["instructions", "inside commands"]:
            y, n = yes.get(key), no.get(key)
            cells.append(f"{y:,.0f} ÷ {n:,.0f} = {y / n:.3f}x" if y and n else "—")
        f.write(f"| {shape} | " + " | ".join(cells) + " |\n")
    f.write(f"\nThe 2a cycle counted with its caches simulated (callgrind --cache-sim=yes, {CYCLE_JOBS:,} jobs "
            "enqueued, then drained by 8 consumers one job per round trip; per job, the whole server over the whole "
            "cycle on a fresh server; "
            "first-level caches as valgrind models this machine's):\n\n")
    kib = [("module KiB", "code run per job, the module (KiB)"), ("server KiB", "code run per job, whole server (KiB)")]
    f.write("| server | " + " | ".join(label for _, label in CACHE + kib) + " |\n")
    f.write("|---|" + "---:|" * len(CACHE + kib) + "\n")
    for label, m in cycle_rows:
        cells = [f"{m[ev]:,.0f}" for ev, _ in CACHE] + [f"{m[k]:.1f}" for k, _ in kib]
        f.write(f"| {label} | " + " | ".join(cells) + " |\n")
    (_, a), (_, b) = cycle_rows
    f.write("| tq ÷ C module | " + " | ".join(f"{a[ev] / b[ev]:.2f}x" if b[ev] else "—" for ev, _ in CACHE + kib) + " |\n")
    f.write("\n(Code run per job: the 64-byte lines of machine code, the unit of the instruction cache, holding an "
            "instruction run at least once every other job on average.)\n")
print(open(OUT).read())
