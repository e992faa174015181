#!/usr/bin/env python3
"""Per-stage account of where messages waited, from a /metrics dump (and its
.diskstats beside it) written by `BENCH_METRICS_OUT=FILE scripts/bench.sh ...`.

    scripts/stages.py FILE

Prints, for each stage histogram, the count, mean, and p50/p90/p99 (upper bucket
bounds: "≤"), the counters that show a stage waiting on a shared resource (database
pool waits and time-outs, Redis commands without an answer), then the disks' writes and
flushes during the run.
"""
import re
import sys
from collections import defaultdict

STAGES = [
    ("chat_ws_action_seconds", "a socket's action holding up its reading (a send: until handed to the writer)"),
    ("chat_message_prepare_seconds", "send reached the service -> handed to the writer"),
    ("chat_message_queue_seconds", "handed to the writer -> its batch starts"),
    ("chat_message_commit_duration_seconds", "a batch's transaction (per batch)"),
    ("chat_message_answer_seconds", "a batch's commit -> its senders answered (per batch)"),
    ("chat_message_publish_duration_seconds", "publishing a committed batch (per batch)"),
    ("chat_bus_receive_latency_seconds", "accepted -> taken from the bus by the hub's router"),
    ("chat_hub_backlog_events", "bus events waiting for the router when it takes one"),
    ("chat_delivery_latency_seconds", "accepted -> queued on this instance's sockets"),
    ("chat_ws_outbox_wait_seconds", "queued on a socket -> taken by its connection for writing (oldest of a run)"),
    ("chat_message_batch_size", "messages per batch"),
]

COUNTERS = (
    "chat_db_pool_timeouts_total",
    "chat_db_pool_wait_seconds_total",
    "chat_redis_failures_total",
    "chat_bus_lagged_total",
)


def histograms(text):
    buckets = defaultdict(list)
    sums, counts = {}, {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'^(\w+)_bucket\{le="([^"]+)"\} (\S+)$', line)
        if m:
            bound = float("inf") if m.group(2) == "+Inf" else float(m.group(2))
            buckets[m.group(1)].append((bound, float(m.group(3))))
            continue
        m = re.match(r"^(\w+)_(sum|count) (\S+)$", line)
        if m:
            (sums if m.group(2) == "sum" else counts)[m.group(1)] = float(m.group(3))
    return buckets, sums, counts


def quantile(cumulative, q):
    total = cumulative[-1][1] if cumulative else 0
    for bound, seen in cumulative:
        if total and seen >= q * total:
            return bound
    return float("nan")


def fmt(name, value):
    if name.endswith("batch_size") or name.endswith("_events"):
        return f"{value:g}"
    return "inf" if value == float("inf") else f"{value * 1000:g} ms"


def diskstats(path):
    try:
        text = open(path).read()
    except OSError:
        return
    before, _, after = text.partition("--- after")

    def parse(block):
        rows = {}
        for line in block.strip().splitlines():
            f = line.split()
            if len(f) >= 14 and not f[2].startswith(("loop", "ram")):
                # writes completed, sectors written, ms writing; flushes (f[18]) if present
                rows[f[2]] = (int(f[7]), int(f[9]), int(f[10]), int(f[18]) if len(f) > 18 else 0)
        return rows

    b, a = parse(before), parse(after)
    for dev in sorted(a):
        if dev in b:
            d = [x - y for x, y in zip(a[dev], b[dev])]
            if d[0] or d[3]:
                print(f"  {dev}: {d[0]} writes, {d[1] * 512 / 1e6:.1f} MB, {d[2]} ms writing, {d[3]} flushes")


def main():
    path = sys.argv[1]
    buckets, sums, counts = histograms(open(path).read())
    print(f"{'stage':40} {'count':>9} {'mean':>11} {'p50':>11} {'p90':>11} {'p99':>11}")
    for name, what in STAGES:
        count = counts.get(name, 0)
        cumulative = sorted(buckets.get(name, []))
        mean = sums.get(name, 0) / count if count else float("nan")
        row = [fmt(name, mean)] + [fmt(name, quantile(cumulative, q)) for q in (0.5, 0.9, 0.99)]
        print(f"{name:40} {int(count):>9} " + " ".join(f"{v:>11}" for v in row))
        print(f"  ({what})")
    print("waits on shared resources:")
    for line in open(path).read().splitlines():
        if line.startswith(COUNTERS):
            print(f"  {line}")
    print("disks during the run:")
    diskstats(path + ".diskstats")


if __name__ == "__main__":
    main()
