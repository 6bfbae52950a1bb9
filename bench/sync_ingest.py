"""Sync ingest: box events through a real Mosquitto into the hub, against a raw subscriber.

(a) N simulated boxes (``mosquitto_pub``) publish their hash-chained events (QoS 1); the hub
    commits and acks them. Throughput is events committed *and acked* per second, beside a raw
    paho subscriber draining the same messages from the same broker, published the same way.
    Target: ratio >= 0.5.
(b) A box whose outbox holds Q events (it was offline) starts and reconnects: seconds until the
    hub has acked them all. Target: <= 10 s for 10,000.
(c) Peak RSS (VmHWM) of the hub and the box processes.

    python bench/sync_ingest.py            # 10 boxes x 2,000 events; 10,000 queued
    python bench/sync_ingest.py --quick    # 5 x 1,000; 3,000 queued; under 60 s

Prints a table, then one JSON line of the figures. Runs 5 rounds of (a) (3 with --quick) and
quotes medians. This VM's speed drifts by up to twice within minutes, so each round runs the
raw subscriber right before and right after the hub's run (raw-hub-raw) and compares the hub
with the mean of the two: a drift in speed that is steady over the round cancels out. The
ratio is the median of the rounds' ratios (the ratio of the medians is printed beside it).
Each round also prints the CPU each side spent per event (the hub's main process and its
ingest workers apart) and how busy the machine was: the CPU figures drift much less than
the rates.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).parents[1]))

from contracts import topics
from contracts.commands import Ack
from contracts.wire import decode
from tests.support.broker import BOX_USERS, HUB_USER, Mosquitto, free_port, password_of
from tests.support.events import chain_of
from tests.support.procs import Hub, XfvProcess, edge_config


def client(user: str, name: str, broker: Mosquitto) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name)
    c.username_pw_set(user, password_of(user))
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect(broker.host, broker.port, keepalive=30)
    c.loop_start()
    return c


def publish_all(streams: list[tuple[str, str, list[bytes]]], broker: Mosquitto) -> None:
    """One ``mosquitto_pub -l -q 1`` per stream (one message per line), all at once: the
    broker's own client, so the publishers are never what limits either measurement."""
    procs = []
    for user, topic, payloads in streams:
        proc = subprocess.Popen(
            [
                "mosquitto_pub",
                "-h",
                broker.host,
                "-p",
                str(broker.port),
                "-u",
                user,
                "-P",
                password_of(user),
                "-i",
                f"{user}-pub-{time.monotonic_ns()}",
                "-t",
                topic,
                "-q",
                "1",
                "-l",
            ],
            stdin=subprocess.PIPE,
        )
        procs.append((proc, b"\n".join(payloads) + b"\n"))
    for proc, data in procs:
        assert proc.stdin is not None
        proc.stdin.write(data)
        proc.stdin.close()
    for proc, _ in procs:
        assert proc.wait(300) == 0


class AckWatcher:
    """Subscribes (as the hub user) to the boxes' retained acks; ``wait`` until all reach n."""

    def __init__(self, broker: Mosquitto, nodes: list[str]) -> None:
        self.acked = dict.fromkeys(nodes, 0)
        self.done = threading.Event()
        self.target = 0
        self.c = client(HUB_USER, f"ackwatch-{time.monotonic_ns()}", broker)
        self.c.on_message = self._on_message
        for node in nodes:
            self.c.subscribe(topics.edge_ack(node), qos=1)

    def _on_message(self, c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        ack = decode(Ack, m.payload)
        self.acked[ack.node] = max(self.acked[ack.node], ack.acked_through)
        if self.target and all(v >= self.target for v in self.acked.values()):
            self.done.set()

    def expect(self, n: int) -> None:
        self.target = n
        if all(v >= n for v in self.acked.values()):
            self.done.set()

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


class MachineCpu:
    """Share of the machine's CPU (all cores) busy between ``__init__`` and ``busy()``."""

    def __init__(self) -> None:
        self.start = psutil.cpu_times()

    def busy(self) -> float:
        end = psutil.cpu_times()
        total = sum(end) - sum(self.start)
        idle = (end.idle + end.iowait) - (self.start.idle + self.start.iowait)
        return 1 - idle / total if total > 0 else float("nan")


def raw_drain(broker: Mosquitto, payloads: list[list[bytes]]) -> tuple[float, float, float]:
    """Seconds for a raw subscriber to receive every payload published the same way, the
    CPU seconds it used (this process only runs the subscriber meanwhile), and the share of
    the machine's CPU that was busy."""
    total = sum(len(p) for p in payloads)
    got, done = [0], threading.Event()
    sub = client(HUB_USER, f"raw-sub-{time.monotonic_ns()}", broker)

    def on_message(c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        got[0] += 1
        if got[0] >= total:
            done.set()

    sub.on_message = on_message
    sub.subscribe("xfv/v1/bench/#", qos=1)
    time.sleep(0.3)
    cpu0, start, machine = time.process_time(), time.monotonic(), MachineCpu()
    publish_all([(HUB_USER, f"xfv/v1/bench/{i}", p) for i, p in enumerate(payloads)], broker)
    assert done.wait(120), f"raw subscriber got {got[0]} of {total}"
    elapsed, cpu, busy = time.monotonic() - start, time.process_time() - cpu0, machine.busy()
    sub.loop_stop()
    sub.disconnect()
    return elapsed, cpu, busy


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def queued_box(workdir: Path, node: str, broker: Mosquitto, queued: int) -> XfvProcess:
    """A box whose outbox already holds ``queued`` case events (as after a day offline)."""
    from edge.store.migrations import migrations
    from edge.store.outbox import append_event
    from runtime.sqlite import open_database

    config = edge_config(workdir, node, "510104021", broker, telemetry={"interval": 30})
    db = open_database(workdir / "state" / "edge.db", migrations, synchronous="NORMAL")
    events = chain_of(node, queued)
    with db.atomic():
        for e in events:
            append_event(db, node, e.type, e.body)
    db.close()
    return XfvProcess(["edge", "run", "--config", str(config)], workdir / "edge.log")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU of a process, and of its children (the hub's ingest workers)."""
    proc = psutil.Process(pid)
    main = sum(proc.cpu_times()[:2])
    children = sum(sum(c.cpu_times()[:2]) for c in proc.children(recursive=True))
    return main, children


def ingest_round(
    work: Path, broker: Mosquitto, chains: dict[str, list[bytes]]
) -> tuple[Hub, float, tuple[float, float], float, float]:
    """One round of (a): a fresh hub; returns it (running) with the hub's rate, the raw
    subscriber's rates right before and right after it, and CPU microseconds per event of
    each side."""
    hub = Hub(work, broker, port=free_port()).start()
    assert hub.process is not None and hub.process.proc is not None
    hub_pid = hub.process.proc.pid
    nodes, per_box = list(chains), len(next(iter(chains.values())))
    watcher = AckWatcher(broker, nodes)
    before_s, before_cpu, before_busy = raw_drain(broker, list(chains.values()))
    watcher.acked = dict.fromkeys(nodes, 0)  # the retained acks of earlier rounds are in
    watcher.done.clear()
    watcher.expect(per_box)
    cpu0, machine = cpu_seconds(hub_pid), MachineCpu()
    start = time.monotonic()
    publish_all([(n, topics.edge_events(n), chains[n]) for n in nodes], broker)
    assert watcher.done.wait(300), f"hub acked {watcher.acked}"
    hub_s = time.monotonic() - start
    cpu1, hub_busy = cpu_seconds(hub_pid), machine.busy()
    main_cpu, writer_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    watcher.close()
    after_s, after_cpu, after_busy = raw_drain(broker, list(chains.values()))
    total = len(nodes) * per_box
    print(
        f"    hub CPU per event: main process {main_cpu / total * 1e6:.0f} us, "
        f"workers {writer_cpu / total * 1e6:.0f} us; machine busy {hub_busy:.0%} during the "
        f"hub's run, {before_busy:.0%} and {after_busy:.0%} during the raw ones",
        file=sys.stderr,
    )
    raw_cpu = (before_cpu + after_cpu) / 2
    return (
        hub,
        total / hub_s,
        (total / before_s, total / after_s),
        (main_cpu + writer_cpu) / total * 1e6,
        raw_cpu / total * 1e6,
    )


def reconnect_drain(work: Path, broker: Mosquitto, hub: Hub, queued: int) -> tuple[float, float]:
    """(b): seconds until a box with ``queued`` waiting events is fully acked; its peak RSS."""
    node = BOX_USERS[-1]
    box = queued_box(work, node, broker, queued)
    watcher = AckWatcher(broker, [node])
    watcher.expect(queued)
    watcher.done.clear()
    start = time.monotonic()
    box.start()
    assert watcher.done.wait(120), f"acked {watcher.acked}"
    drain_s = time.monotonic() - start
    watcher.close()
    assert box.proc is not None
    rss = peak_rss_mb(box.proc.pid)
    box.stop()
    return drain_s, rss


def report(figures: dict[str, Any]) -> None:
    rows = [
        ("(a) hub: events committed+acked /s (median)", f"{figures['hub_events_per_s']:,.0f}", ""),
        ("    raw subscriber: msgs drained /s (median)", f"{figures['raw_msgs_per_s']:,.0f}", ""),
        ("    ratio hub / raw (median of the rounds')", f"{figures['ratio']:.2f}", ">= 0.5"),
        ("    (ratio of the medians above)", f"{figures['ratio_of_medians']:.2f}", ""),
        ("    hub CPU per event, us (hub + workers)", f"{figures['hub_cpu_us_per_event']}", ""),
        ("    raw subscriber CPU per message, us", f"{figures['raw_cpu_us_per_msg']}", ""),
        (
            f"(b) {figures['queued']:,.0f} queued events acked after start, s",
            f"{figures['reconnect_drain_s']:.2f}",
            "<= 10",
        ),
        ("(c) hub peak RSS, with its workers, MB", f"{figures['hub_peak_rss_mb']:.1f}", ""),
        ("    box peak RSS, MB", f"{figures['box_peak_rss_mb']:.1f}", ""),
    ]
    print()
    print(f"{'measure':<46}{'value':>12}{'target':>10}")
    for name, value, target in rows:
        print(f"{name:<46}{value:>12}{target:>10}")
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller run, under 60 s")
    args = parser.parse_args()
    boxes, per_box, queued, rounds = (5, 1000, 3000, 3) if args.quick else (10, 2000, 10_000, 5)
    work = Path(tempfile.mkdtemp(prefix="xfv-bench-"))
    broker = Mosquitto(work / "broker").start()
    nodes = list(BOX_USERS[:boxes])
    hub_rates, raw_rates, hub_cpus, raw_cpus = [], [], [], []
    raw_pairs: list[tuple[float, float]] = []
    # the same events every round: each round's hub starts empty
    chains = {n: [e.to_payload() for e in chain_of(n, per_box)] for n in nodes}
    try:
        for r in range(rounds):
            hub, hub_rate, (before, after), hub_cpu, raw_cpu = ingest_round(
                work / f"hub{r}", broker, chains
            )
            raw_rate = (before + after) / 2
            raw_pairs.append((before, after))
            hub_rates.append(hub_rate)
            raw_rates.append(raw_rate)
            hub_cpus.append(hub_cpu)
            raw_cpus.append(raw_cpu)
            print(
                f"round {r + 1}: raw {before:,.0f}/s, hub {hub_rate:,.0f}/s "
                f"({hub_cpu:.0f} us CPU/event), raw {after:,.0f}/s ({raw_cpu:.0f} us CPU/msg): "
                f"ratio {hub_rate / raw_rate:.2f}",
                file=sys.stderr,
            )
            if r < rounds - 1:
                hub.stop()
        drain_s, box_rss = reconnect_drain(work / "queued", broker, hub, queued)
        assert hub.process is not None and hub.process.proc is not None
        hub_proc = psutil.Process(hub.process.proc.pid)
        hub_rss = sum(peak_rss_mb(p.pid) for p in [hub_proc, *hub_proc.children(recursive=True)])
        hub.stop()
    finally:
        broker.stop()
    hub_med, raw_med = statistics.median(hub_rates), statistics.median(raw_rates)
    ratios = [h / r for h, r in zip(hub_rates, raw_rates, strict=True)]
    report(
        {
            "boxes": boxes,
            "events": boxes * per_box,
            "rounds": rounds,
            "hub_events_per_s": round(hub_med),
            "raw_msgs_per_s": round(raw_med),
            "ratio": round(statistics.median(ratios), 3),
            "round_ratios": [round(x, 3) for x in ratios],
            "round_hub_rates": [round(x) for x in hub_rates],
            "round_raw_rates_before_after": [[round(b), round(a)] for b, a in raw_pairs],
            "ratio_of_medians": round(hub_med / raw_med, 3),
            "ratio_target": 0.5,
            "hub_cpu_us_per_event": round(statistics.median(hub_cpus)),
            "raw_cpu_us_per_msg": round(statistics.median(raw_cpus)),
            "queued": queued,
            "reconnect_drain_s": round(drain_s, 2),
            "drain_target_s": 10,
            "hub_peak_rss_mb": round(hub_rss, 1),
            "box_peak_rss_mb": round(box_rss, 1),
        }
    )


if __name__ == "__main__":
    main()
