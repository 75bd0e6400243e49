"""Throughput and loss of the collector bus over ipc:// (a script: prints figures, asserts nothing).

(a) unpaced: ``--messages`` camera messages (640x480 RGB, 921,600 B, plus its depth image,
    614,400 B: 1,536,000 B per message), sent as fast as the sender can, through

      * ``NodePublisher.data`` -> ``Subscriber``  (the recorder's path; deep send queue),
      * a plain PUB -> SUB at ZeroMQ's default HWM (1000 / 1000),
      * PUSH -> PULL at the default HWM (blocks instead of dropping),

    side by side in the same run: delivered, dropped, GB/s.
(b) paced at the rated load: 2 cameras x (color + depth) at 30 fps and a glove at 1 kHz (a
    ~150 B float payload), each node its own process with its own ``NodePublisher``, into one
    recorder process (``Subscriber`` on all the data endpoints) and, unless ``--no-display``, a
    display process (``LatestSubscriber`` on the live endpoints), for ``--seconds``: per stream
    sent, received, gaps (from seq), latency ``t_host_ns`` -> receive p50 / p99.

Every endpoint is in a fresh folder under /tmp; every process makes its own ZeroMQ context
(``spawn``), so nothing is shared but the sockets. Run: ``python benchmarks/bus_throughput.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

H, W = 480, 640
COLOR_BYTES = H * W * 3          # 921,600
DEPTH_BYTES = H * W * 2          # 614,400
END = b"end"


def _frames_rgbd(seq: int, color: np.ndarray, depth: np.ndarray) -> list:
    from collector.wire import protocol
    return protocol.encode(protocol.Sample(
        node="cam0", stream="cam0/rgbd", seq=seq, t_device_ns=seq, t_host_ns=time.time_ns(),
        fields={"color": color, "depth": depth}))


# ----------------------------------------------------------------------------- (a) unpaced


def _unpaced_receiver(kind: str, endpoint: str, ready, results) -> None:
    import zmq

    from collector.wire import protocol
    from collector.wire.bus import Subscriber
    from collector.wire.protocol import Event, ProtocolError, Sample

    ctx = zmq.Context()
    subscriber = None
    if kind == "node":
        subscriber = Subscriber([endpoint], context=ctx)
        sock = subscriber.socket
    elif kind == "pubsub":
        sock = ctx.socket(zmq.SUB)              # default RCVHWM (1000)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(endpoint)
    else:
        sock = ctx.socket(zmq.PULL)             # default RCVHWM (1000)
        sock.connect(endpoint)

    def next_message(timeout_ms: int):
        if subscriber is not None:
            return subscriber.receive(timeout_ms)
        if not sock.poll(timeout_ms):
            return None
        frames = sock.recv_multipart(copy=False)
        if frames[0].bytes == END:
            return END
        try:
            return protocol.decode(frames)
        except ProtocolError:
            return None

    received = nbytes = 0
    seqs = []
    first_ns = last_ns = 0
    idle_deadline = time.monotonic() + 30
    while time.monotonic() < idle_deadline:
        message = next_message(100)
        if message is None:
            continue
        if message == END or (isinstance(message, Event) and message.kind == "end"):
            break
        if isinstance(message, Event):          # a probe
            ready.set()
            continue
        if isinstance(message, Sample):
            last_ns = time.perf_counter_ns()
            first_ns = first_ns or last_ns
            received += 1
            nbytes += message.nbytes()
            seqs.append(message.seq)
            idle_deadline = time.monotonic() + 10
    gaps = int(np.count_nonzero(np.diff(seqs) != 1)) if len(seqs) > 1 else 0
    results.put({"received": received, "bytes": nbytes, "first_ns": first_ns, "last_ns": last_ns,
                 "gaps": gaps, "last_seq": seqs[-1] if seqs else -1})
    sock.close(linger=0)
    ctx.destroy(linger=0)


def run_unpaced(kind: str, rundir: str, messages: int, node_rate: float) -> dict:
    import zmq

    from collector.wire import protocol
    from collector.wire.bus import NodePublisher, reliable_hwm
    from collector.wire.protocol import Describe, Event

    spawn = mp.get_context("spawn")
    endpoint = f"ipc://{rundir}/{kind}"
    ctx = zmq.Context()
    publisher = None
    if kind == "node":
        publisher = NodePublisher(endpoint, Describe(node="cam0", streams=[]), context=ctx,
                                  messages_per_second=node_rate)
        data_endpoint = publisher.endpoints.data
        hwm = f"SNDHWM {reliable_hwm(node_rate)} / RCVHWM 0 (unlimited)"

        def send(frames, flags=0):
            publisher.data.send_multipart(frames, copy=False, flags=flags)
            try:
                publisher.live.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
    else:
        sock = ctx.socket(zmq.PUB if kind == "pubsub" else zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)
        data_endpoint = endpoint
        hwm = "SNDHWM 1000 / RCVHWM 1000 (defaults)"

        def send(frames, flags=0):
            sock.send_multipart(frames, copy=False, flags=flags)

    ready, results = spawn.Event(), spawn.Queue()
    receiver = spawn.Process(target=_unpaced_receiver, args=(kind, data_endpoint, ready, results))
    receiver.start()
    probe = protocol.encode(Event(node="cam0", kind="probe", t_host_ns=0))
    # slow joiner: repeat a probe until the receiver has one (PUSH/PULL just delivers it)
    deadline = time.monotonic() + 20
    while not ready.wait(0.01):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{kind}: the receiver never connected")
        try:
            send(probe, zmq.NOBLOCK)
        except zmq.Again:
            pass

    rng = np.random.default_rng(0)
    # a few distinct frames, reused: sends are zero-copy, so a frame in flight is never mutated
    pool = [(rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
             rng.integers(0, 65536, (H, W), dtype=np.uint16)) for _ in range(4)]
    start_ns = time.perf_counter_ns()
    for seq in range(messages):
        send(_frames_rgbd(seq, *pool[seq % len(pool)]))
    sent_ns = time.perf_counter_ns()
    end = protocol.encode(Event(node="cam0", kind="end", t_host_ns=0)) if kind == "node" \
        else [END, b""]
    result = None
    while result is None:
        try:
            send(end, zmq.NOBLOCK)
        except zmq.Again:
            pass
        try:
            result = results.get(timeout=0.05)
        except Exception:  # queue.Empty
            if not receiver.is_alive():
                raise RuntimeError(f"{kind}: the receiver died")
    receiver.join()
    if publisher is not None:
        publisher.close()
    else:
        sock.close(linger=0)
    ctx.destroy(linger=0)
    elapsed_s = (result["last_ns"] - start_ns) / 1e9 if result["received"] else float("nan")
    return {**result, "kind": kind, "hwm": hwm, "sent": messages,
            "send_s": (sent_ns - start_ns) / 1e9, "elapsed_s": elapsed_s,
            "gbps": result["bytes"] / elapsed_s / 1e9 if result["received"] else 0.0}


# ----------------------------------------------------------------------------- (b) paced


def _node(node: str, rundir: str, streams: dict, rate_hz: float, seconds: float, seen, go,
          stop) -> None:
    """One device node: ``streams`` maps stream name to a list of (field, shape, dtype)."""
    from collector.wire.bus import NodePublisher
    from collector.wire.protocol import Describe, Event, Sample

    publisher = NodePublisher(f"ipc://{rundir}/{node}", Describe(node=node, streams=[]),
                              messages_per_second=rate_hz * len(streams))
    rng = np.random.default_rng(hash(node) % 2**32)
    pools = {name: [{f: (rng.integers(0, 256, shape).astype(dtype)) for f, shape, dtype in fields}
                    for _ in range(4)] for name, fields in streams.items()}
    while not seen.is_set():                     # slow joiner: until the recorder has us
        publisher.send(Event(node=node, kind="probe", t_host_ns=time.time_ns()))
        time.sleep(0.02)
    go.wait()
    period_ns = int(1e9 / rate_hz)
    start = time.perf_counter_ns()
    ticks = int(seconds * rate_hz)
    sent = dict.fromkeys(streams, 0)
    late = 0
    for tick in range(ticks):
        due = start + tick * period_ns
        now = time.perf_counter_ns()
        if due > now:
            time.sleep((due - now) / 1e9)
        elif now - due > period_ns:
            late += 1
        for name in streams:
            publisher.send(Sample(node=node, stream=name, seq=tick, t_device_ns=due,
                                  t_host_ns=time.time_ns(), fields=pools[name][tick % 4]))
            sent[name] += 1
    publisher.send(Event(node=node, kind="end", t_host_ns=time.time_ns(),
                         detail={"sent": sent, "late_ticks": late,
                                 "elapsed_s": (time.perf_counter_ns() - start) / 1e9}))
    stop.wait(60)
    publisher.close()


def _recorder(endpoints: list[str], nodes: list[str], seen: dict, results, timeout_s: float,
              kind: str, stop) -> None:
    from collector.wire.bus import LatestSubscriber, Subscriber
    from collector.wire.protocol import Event, Sample

    if kind == "display":                        # displays: newest sample only, live endpoints
        latest = LatestSubscriber(endpoints)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.033)                    # a 30 Hz redraw
            latest.latest()
            for event in latest.take_events():
                if event.kind == "probe":
                    seen[event.node].set()
        results.put({"display": {s: (c.received, c.missing) for s, c in latest.counters.items()}})
        latest.close()
        return

    subscriber = Subscriber(endpoints)
    latencies: dict[str, list[int]] = {}
    sent: dict[str, int] = {}
    late: dict[str, int] = {}
    ended: set[str] = set()
    first_ns = last_ns = 0
    nbytes = 0
    deadline = time.monotonic() + timeout_s
    while len(ended) < len(nodes) and time.monotonic() < deadline:
        message = subscriber.receive(100)
        now = time.time_ns()
        if isinstance(message, Sample):
            latencies.setdefault(message.stream, []).append(now - message.t_host_ns)
            nbytes += message.nbytes()
            last_ns = time.perf_counter_ns()
            first_ns = first_ns or last_ns
        elif isinstance(message, Event):
            if message.kind == "probe" and message.node in seen:
                seen[message.node].set()
            elif message.kind == "end":
                ended.add(message.node)
                sent.update(message.detail["sent"])
                late[message.node] = message.detail["late_ticks"]
    streams = {}
    for name, counters in subscriber.tracker.streams.items():
        lat = np.array(latencies.get(name, [0])) / 1e6
        streams[name] = {"sent": sent.get(name, -1), "received": counters.received,
                         "gaps": counters.gaps, "missing": counters.missing,
                         "restarts": counters.restarts,
                         "p50_ms": float(np.percentile(lat, 50)),
                         "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max())}
    results.put({"streams": streams, "ended": sorted(ended), "late": late,
                 "malformed": subscriber.malformed_count, "bytes": nbytes,
                 "span_s": (last_ns - first_ns) / 1e9})
    subscriber.close()


def run_paced(rundir: str, seconds: float, display: bool) -> dict:
    spawn = mp.get_context("spawn")
    camera = {"color": [("rgb", (H, W, 3), np.uint8)], "depth": [("z", (H, W), np.uint16)]}
    glove = {"state": [("joints", (22,), np.float32), ("imu", (13,), np.float32),
                       ("buttons", (2,), np.uint8)]}              # 142 B of payload
    nodes = {"cam0": (camera, 30.0), "cam1": (camera, 30.0), "glove": (glove, 1000.0)}
    seen = {node: spawn.Event() for node in nodes}
    seen_display = {node: spawn.Event() for node in nodes}
    go, stop = spawn.Event(), spawn.Event()
    results, display_results = spawn.Queue(), spawn.Queue()
    recorder = spawn.Process(target=_recorder, args=(
        [f"ipc://{rundir}/{n}.data" for n in nodes], list(nodes), seen, results, seconds + 60,
        "recorder", stop))
    recorder.start()
    viewer = None
    if display:
        viewer = spawn.Process(target=_recorder, args=(
            [f"ipc://{rundir}/{n}.live" for n in nodes], list(nodes), seen_display,
            display_results, seconds + 60, "display", stop))
        viewer.start()
    procs = []
    for node, (spec, rate) in nodes.items():
        streams = {f"{node}/{name}": fields for name, fields in spec.items()}
        # the display must have seen the node too before we start
        procs.append(spawn.Process(target=_node, args=(
            node, rundir, streams, rate, seconds, _AllOf(seen[node], seen_display[node])
            if display else seen[node], go, stop)))
    for p in procs:
        p.start()
    deadline = time.monotonic() + 60
    while not all(e.is_set() for e in seen.values()) or (
            display and not all(e.is_set() for e in seen_display.values())):
        if time.monotonic() > deadline:
            raise RuntimeError("the nodes never reached the recorder")
        time.sleep(0.01)
    go.set()
    result = results.get(timeout=seconds + 90)
    stop.set()
    if display:
        result.update(display_results.get(timeout=30))
    for p in [*procs, recorder, *([viewer] if viewer else [])]:
        p.join(10)
    return result


class _AllOf:
    """``is_set`` of several events (a node waits until the recorder and display have it)."""

    def __init__(self, *events) -> None:
        self.events = events

    def is_set(self) -> bool:
        return all(e.is_set() for e in self.events)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="(a) messages per variant")
    parser.add_argument("--node-rates", default="60,100,250",
                        help="(a) messages_per_second values given to NodePublisher, one row "
                             "each (they set its data HWM: 20 s of them, at least 1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="(b) duration")
    parser.add_argument("--no-display", action="store_true", help="(b) no live display process")
    parser.add_argument("--skip-unpaced", action="store_true")
    parser.add_argument("--skip-paced", action="store_true")
    args = parser.parse_args(argv)

    import zmq
    print(f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    rundir = tempfile.mkdtemp(prefix="cbb", dir="/tmp")
    try:
        if not args.skip_unpaced:
            size = COLOR_BYTES + DEPTH_BYTES
            print(f"\n(a) unpaced over ipc://: {args.messages} messages of {size:,} B "
                  f"(640x480 RGB {COLOR_BYTES:,} B + depth {DEPTH_BYTES:,} B), "
                  f"{args.messages * size / 1e9:.2f} GB")
            rows = []
            for rate in [float(r) for r in args.node_rates.split(",") if r]:
                rows.append((f"NodePublisher({rate:g}/s) -> Subscriber",
                             run_unpaced("node", rundir, args.messages, rate)))
            pubsub = run_unpaced("pubsub", rundir, args.messages, 0)
            push = run_unpaced("pushpull", rundir, args.messages, 0)
            rows += [("plain PUB -> SUB", pubsub), ("PUSH -> PULL", push)]
            print(f"  {'path':34} {'HWM':38} {'delivered':>11} {'dropped':>8} {'send s':>7} "
                  f"{'total s':>8} {'GB/s':>6}")
            for label, r in rows:
                print(f"  {label:34} {r['hwm']:38} {r['received']:>5}/{r['sent']:<5} "
                      f"{r['sent'] - r['received']:>8} {r['send_s']:>7.3f} {r['elapsed_s']:>8.3f} "
                      f"{r['gbps']:>6.2f}")
            print("  ratios (same run):")
            for label, r in rows[:-2]:
                print(f"    {label}: delivered {r['received'] / r['sent']:.2%}, "
                      f"{r['received'] / max(pubsub['received'], 1):.2f}x plain PUB-SUB's "
                      f"deliveries, {r['gbps'] / max(push['gbps'], 1e-9):.2f}x PUSH-PULL's GB/s")
            print(f"    plain PUB -> SUB delivered {pubsub['received'] / pubsub['sent']:.2%}; "
                  f"PUSH -> PULL {push['received'] / push['sent']:.2%}")

        if not args.skip_paced:
            display = not args.no_display
            print(f"\n(b) paced for {args.seconds:g} s: cam0, cam1 x (color {COLOR_BYTES:,} B + "
                  f"depth {DEPTH_BYTES:,} B) at 30 fps, glove 142 B at 1 kHz; one process per "
                  f"node, a recorder{' and a display' if display else ''}")
            r = run_paced(rundir, args.seconds, display)
            print(f"  {'stream':14} {'sent':>6} {'received':>9} {'recv/sent':>9} {'gaps':>5} "
                  f"{'missing':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
            for name, s in sorted(r["streams"].items()):
                print(f"  {name:14} {s['sent']:>6} {s['received']:>9} "
                      f"{s['received'] / max(s['sent'], 1):>9.4f} {s['gaps']:>5} "
                      f"{s['missing']:>8} {s['p50_ms']:>7.2f} {s['p99_ms']:>7.2f} "
                      f"{s['max_ms']:>7.2f}")
            print(f"  recorder: {r['bytes'] / max(r['span_s'], 1e-9) / 1e6:.1f} MB/s over "
                  f"{r['span_s']:.2f} s, malformed {r['malformed']}, nodes ended "
                  f"{', '.join(r['ended'])}; ticks more than a period late: {r['late']}")
            if display:
                shown = ", ".join(f"{s} {n}" for s, (n, _) in sorted(r["display"].items()))
                print(f"  display (live endpoints, newest only) received: {shown}")
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


if __name__ == "__main__":
    main()
