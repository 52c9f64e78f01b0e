"""Workers written as a user would with redis-py and its default retry, run
through the fault-injecting proxy (tests/lost_replies.rs): TQ.BPOP, run the
job (append its args to the ledger), then TQ.POP ... ACK <delivery> to
complete it and take the next. No retry logic of our own: when the proxy
closes the connection, redis-py's default Retry (on ConnectionError and
TimeoutError) reconnects and sends the command again.

python3 lost_replies.py <port> <namespace> <ledger file> <workers>
Jobs are all enqueued before it starts: a take that finds nothing ends a loop.
The pinned redis-py is installed in ./py by scripts/deps.sh --node.
"""

import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
import redis  # noqa: E402

REDIS_PY_VERSION = "8.2.0"
# TQ_OLD_SHAPES=1: the commands as written before delivery ids (no LEASE,
# `ACK` alone), to run this loop against a module built from before them.
OLD = os.environ.get("TQ_OLD_SHAPES") == "1"
LEASE = [] if OLD else ["LEASE", "60000"]


def ack(delivery):
    return ["ACK"] if OLD else ["ACK", str(delivery)]


def work(port, ns, ledger, i, runs, errors):
    try:
        r = redis.Redis(host="127.0.0.1", port=port)
        me = f"py:{i}"
        n = 0
        job = r.execute_command("TQ.BPOP", ns, me, "q", *LEASE, "300")
        while job:
            payload, delivery = job[1], job[2] if len(job) > 2 else None
            with open(ledger, "a") as f:
                f.write(json.dumps(json.loads(payload)["args"], separators=(",", ":")) + "\n")
            n += 1
            job = r.execute_command("TQ.POP", ns, me, "q", *LEASE, *ack(delivery))
            if not job:
                job = r.execute_command("TQ.BPOP", ns, me, "q", *LEASE, "300")
        r.close()
        runs[i - 1] = n
    except Exception as e:  # reported to the test, which fails
        errors.append(f"worker {i}: {e!r}")


def main():
    if redis.__version__ != REDIS_PY_VERSION:
        sys.exit(f"redis-py {redis.__version__} instead of the pinned {REDIS_PY_VERSION}: rerun scripts/deps.sh --node")
    port, ns, ledger, workers = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    runs, errors = [0] * workers, []
    threads = [threading.Thread(target=work, args=(port, ns, ledger, i + 1, runs, errors)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("; ".join(errors))
    print(json.dumps({"runs": runs}))


if __name__ == "__main__":
    main()
