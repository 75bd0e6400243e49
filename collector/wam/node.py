"""The WAM inference node: predicts the next 2 s from the live camera and glove, in its own process.

    python -m collector.wam.node --name wam --endpoint ipc:///tmp/x/wam \\
        --nodes '{"cam0": "ipc:///tmp/x/cam0", "glove": "ipc:///tmp/x/glove"}' \\
        --options '{"checkpoint": "collector/wam/checkpoints/sim.pt", "rate_hz": 8}'

The supervisor starts it as a service from the config (see :func:`service_config`)::

    [[services]]
    name = "wam"
    module = "collector.wam.node"
    preview = "collector.wam.preview:WamPreview"
    options = { rate_hz = 8.0 }     # checkpoint, rate_hz, camera, threads, nice: WamOptions

It reads the device nodes' ``live`` endpoints (a few messages deep: when this node falls behind,
the publishers drop frames for it, never for the recorder), keeps a few seconds of small frames
and actions, and at ``rate_hz`` runs the model on the newest history (a latest-only mailbox: a
late tick skips, it never queues). It runs at a lower CPU priority than capture (``--nice``).

It publishes, as node ``NAME``:

``NAME/prediction`` (``live`` only, not recorded)
    ``frames`` (K, S, S, 3) uint8, ``actions`` (K, A) float32 raw units, ``horizons_s`` (K,),
    ``hand_uv`` (K, 2) the predicted wrist in the camera image's pixels (NaN without calibration),
    ``source_seq`` / ``source_t_host_ns`` (the camera frame it was predicted from) and
    ``inference_ms``.
``NAME/surprise`` (recorded with the episode like any stream)
    once a prediction's time has come: ``score``, the RMSE (0..1) between the frame predicted
    ``horizon_s`` ago and the frame that came; ``baseline``, the same for "nothing moves" (the
    source frame); ``horizon_s``, ``source_seq`` and ``frame_seq``; ``skill_db``, the rolling
    skill of the last 60 s in dB over the still frame (collector/wam/skill.py; NaN until enough
    predictions were scored). ``t_host_ns`` is the compared frame's capture time, so the trace
    lines up with the episode's frames.

Status changes (``warming_up``, ``running``, ``waiting``, ``error``) go out as ``status`` events;
the control socket answers ``ping``, ``describe``, ``status`` and ``swap_checkpoint`` (``path``:
load that checkpoint beside the running model, check it, then swap the reference between two
ticks; the inference loop never waits for it; ``status`` says how it went).

The model is a predictor (:mod:`collector.wam.predictor`): the built-in checkpoint model, or a
lab's own named by ``predictor`` (``"package.module:attr"`` or an entry point) with
``predictor_options``. On another host (a GPU machine) the node binds ``tcp://`` with CurveZMQ
keys and reads the station's nodes over ``tcp://`` too (``--curve-secret``,
``--curve-authorized``, ``--node-keys``; docs/wam-station.md, "Running the node remote").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections import deque

from dataclasses import dataclass, field

import numpy as np
import zmq

from collector.config import ServiceConfig
from collector.wire import protocol, security
from collector.wire.bus import NodePublisher
from collector.wire.node import run_until_signalled
from collector.wire.options import ConfigError, from_mapping
from collector.wire.protocol import Describe, Event, Sample
from collector.wire.streams import FieldSpec, StreamSpec
from collector.wam.data import nearest_index
from collector.wam.geometry import field_slice, project_to_image
from collector.wam.history import Frame, LiveHistory
from collector.wam.skill import RollingSkill, Skill
from collector.wam.predictor import PredictorSpec, load_predictor
from collector.wam.registry import training_summary

log = logging.getLogger("collector.wam.node")

#: Horizon (seconds) whose prediction is compared with the frame that came.
SURPRISE_HORIZON_S = 1.0
#: What the GUI loads to show this node's predictions (``[[services]] preview``).
PREVIEW = "collector.wam.preview:WamPreview"


@dataclass
class WamOptions:
    """The service's ``options`` table."""

    #: Checkpoint file; empty: the one shipped with collector (trained on simulated episodes).
    checkpoint: str = ""
    #: A lab's predictor factory, ``"package.module:attr"`` or an entry point name in
    #: ``collector.wam_predictors``; empty: the built-in model in ``checkpoint``.
    predictor: str = ""
    #: Keyword arguments of the ``predictor`` factory.
    predictor_options: dict = field(default_factory=dict)
    #: Torch device of the built-in model: ``cpu``, ``cuda``, ``auto`` (CUDA when present).
    device: str = "cpu"
    rate_hz: float = 8.0
    #: Color stream to predict; empty: the checkpoint's camera, else the first color stream.
    camera: str = ""
    # One thread by default: on a small machine busy with capture, two OpenMP threads wait on
    # each other at every op (measured 5x slower, benchmarks/wam.py --threads 1 vs 2 under load).
    threads: int = 1
    #: Lower CPU priority than capture.
    nice: int = 10

    def validate(self) -> None:
        if self.predictor and self.checkpoint:
            raise ConfigError("checkpoint is for the built-in model; a predictor takes its "
                              "files in predictor_options")
        if self.predictor_options and not self.predictor:
            raise ConfigError("predictor_options need a predictor (the built-in model takes "
                              "checkpoint and device)")
        if not 0.5 <= self.rate_hz <= 30:
            raise ConfigError(f"rate_hz must be 0.5..30, got {self.rate_hz}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")


def service_config(name: str = "wam", *, enabled: bool = True, **options) -> ServiceConfig:
    """The ``[[services]]`` entry that runs this node with ``options`` (see :class:`WamOptions`)."""
    from_mapping(WamOptions, options, where=f"{name}.options")  # fail here, not in the child
    return ServiceConfig(name=name, module="collector.wam.node",
                         options=dict(options), preview=PREVIEW, enabled=enabled)


class InferenceNode:
    """Runs the predictor on the live history at a fixed rate and publishes what it predicts."""

    def __init__(self, name: str, endpoint: str, bases: dict[str, str], predictor, *,
                 rate_hz: float = 8.0, camera: str | None = None,
                 curve: "security.CurveServer | None" = None, insecure: bool = False) -> None:
        self.name = name
        #: Swapped whole (a reference) by :meth:`swap_checkpoint`; each tick reads it once.
        self.predictor = predictor
        config: PredictorSpec = predictor.spec
        self.config = config
        self.rate_hz = rate_hz
        self.state = "starting"
        self.message = ""
        self.inference_ms: deque[float] = deque(maxlen=200)
        self.predictions = 0
        self.skipped_ticks = 0
        #: Predictions refused because the predictor's answer did not fit its spec.
        self.bad_predictions = 0
        self.swap = {"state": "none", "message": ""}
        self._swapped = False  # the next status event announces the new model
        self._swap_lock = threading.Lock()
        self._surprise_seq = 0
        self._prediction_seq = 0
        # (source seq, source time, source frame, predicted frames, the predictor that made
        # them), oldest first.
        self._pending: deque[tuple[int, int, np.ndarray, np.ndarray, object]] = deque(maxlen=64)
        self._last_scored_seq = -1
        #: Live skill over the still frame; starts afresh when the predictor is swapped.
        self.skill = RollingSkill()
        self._skill_of = predictor
        self._stop = threading.Event()
        k1 = min(range(config.horizon), key=lambda k: abs(config.horizons_s[k] - SURPRISE_HORIZON_S))
        self.surprise_step = k1
        s, k = config.image_size, config.horizon
        self.specs = [
            StreamSpec(f"{name}/prediction", "prediction", rate_hz, [
                FieldSpec("frames", "uint8", (k, s, s, 3)),
                FieldSpec("actions", "float32", (k, config.action_dim)),
                FieldSpec("horizons_s", "float32", (k,), "s"),
                FieldSpec("hand_uv", "float32", (k, 2), "px", ["u", "v"]),
                FieldSpec("source_seq", "int64", ()),
                FieldSpec("source_t_host_ns", "int64", (), "ns"),
                FieldSpec("inference_ms", "float32", (), "ms")],
                meta={"action_fields": list(config.action_fields), "recorded": False}),
            StreamSpec(f"{name}/surprise", "state", rate_hz, [
                FieldSpec("score", "float32", ()),
                FieldSpec("baseline", "float32", ()),
                FieldSpec("horizon_s", "float32", (), "s"),
                FieldSpec("source_seq", "int64", ()),
                FieldSpec("frame_seq", "int64", ()),
                FieldSpec("skill_db", "float32", (), "dB")],
                meta={"score": "RMSE (0..1) of the frame predicted horizon_s earlier against the "
                               "frame that came; baseline: the same for the unchanged source frame",
                      "skill_db": "10 log10(mean baseline^2 / mean score^2) over the last 60 s: dB "
                                  "better than the still frame; NaN until enough were scored"}),
        ]
        # Only the surprise stream is declared (and so recorded); predictions are a live view.
        self.describe = Describe(node=name, streams=[self.specs[1].to_dict()],
                                 info={"driver": "wam", "prediction": self.specs[0].to_dict(),
                                       "horizons_s": config.horizons_s})
        self.context = zmq.Context.instance()
        self.publisher = NodePublisher(endpoint, self.describe, messages_per_second=rate_hz * 2,
                                       context=self.context, curve=curve, insecure=insecure,
                                       handlers={"status": lambda _req: self.status(),
                                                 "swap_checkpoint": self._swap_request})
        self.history = LiveHistory(bases, config.image_size, config.action_fields,
                                   camera or config.camera, self.context)

    def status(self) -> dict:
        times = sorted(self.inference_ms)
        return {"ok": True, "state": self.state, "message": self.message,
                "predictions": self.predictions, "skipped_ticks": self.skipped_ticks,
                "inference_ms_p50": times[len(times) // 2] if times else None,
                "camera": self.history.camera, "action_stream": self.history.action_stream,
                "frames_received": self.history.received, "bad_predictions": self.bad_predictions,
                "checkpoint": getattr(self.predictor, "path", None),
                "predictor": type(self.predictor).__module__ + "." + type(self.predictor).__name__,
                "trained_on": training_summary(getattr(getattr(self.predictor, "checkpoint", None),
                                                       "report", None)),
                "swap": dict(self.swap), "skill": self.skill.current().describe()}

    def _swap_request(self, request: dict) -> dict:
        """``swap_checkpoint``: start loading ``path`` on a thread of its own; answer at once."""
        path = request.get("path")
        if not isinstance(path, str) or not path:
            return {"ok": False, "error": "swap_checkpoint needs a checkpoint 'path'"}
        if not hasattr(self.predictor, "checkpoint"):
            return {"ok": False, "error": "this node runs a plugged-in predictor; checkpoints swap "
                                          "only into the built-in model"}
        with self._swap_lock:
            if self.swap["state"] == "loading":
                return {"ok": False, "error": f"already loading {self.swap.get('path')}"}
            self.swap = {"state": "loading", "path": path, "message": ""}
        threading.Thread(target=self.swap_checkpoint, args=(path,), name="swap", daemon=True).start()
        return {"ok": True, "state": "loading", "path": path}

    def swap_checkpoint(self, path: str) -> bool:
        """Load ``path``, check that it fits this node's streams and predicts, then replace the
        running predictor (one reference assignment, between two ticks). False: kept the old one
        (``swap["message"]`` says why)."""
        from collector.wam.checkpoint import CheckpointError, Predictor

        current = self.predictor
        try:
            candidate = Predictor.from_file(path, str(getattr(current, "device", "cpu")))
            why = self.config.compatible_with(candidate.spec)
            if why:
                raise ValueError(f"does not fit the running model: {why}")
            spec = candidate.spec
            frames, actions = candidate.predict(
                np.zeros((spec.context, spec.image_size, spec.image_size, 3), np.uint8),
                np.zeros((spec.context, spec.action_dim), np.float32))
            spec.check_outputs(frames, actions)
        except (CheckpointError, ValueError, OSError) as exc:
            log.warning("checkpoint %s refused: %s", path, exc)
            self.swap = {"state": "refused", "path": path, "message": str(exc)}
            return False
        self.predictor = candidate
        self._swapped = True
        self.swap = {"state": "swapped", "path": path, "message": "",
                     "t_host_ns": protocol.now_ns()}
        log.info("swapped in %s", path)
        return True

    def _set_state(self, state: str, message: str = "") -> None:
        changed = state != self.state or self._swapped
        self.state, self.message = state, message
        if not changed:  # messages may carry a running count; events go out on changes only
            return
        self._swapped = False
        log.info("%s %s", state, message)
        self.publisher.send(Event(node=self.name, kind="status", t_host_ns=protocol.now_ns(),
                                  detail={"state": state, "message": message,
                                          "camera": self.history.camera,
                                          "trained_on": self.status()["trained_on"]}))

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        period = 1.0 / self.rate_hz
        next_tick = time.monotonic()
        parent = os.getppid()
        self.publisher.send(self.describe)
        while not self._stop.is_set():
            if os.getppid() != parent:
                log.warning("parent process exited; stopping")
                break
            self.step()
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay < 0:
                # Too slow for the rate: skip the missed ticks rather than queueing them.
                missed = int(-delay / period) + 1
                self.skipped_ticks += missed
                next_tick += missed * period
                delay = next_tick - time.monotonic()
            self._stop.wait(max(0.0, delay))

    def step(self) -> bool:
        """One tick: score due predictions, then predict from the newest frame. True if it did."""
        frames, t_act, actions = self.history.snapshot()
        if self.history.camera is None or self.history.action_stream is None:
            self._set_state("waiting", "no camera or glove stream with the model's action fields")
            return False
        if not frames or not len(t_act):
            self._set_state("waiting", f"no frames from {self.history.camera} yet")
            return False
        # Judged by when frames arrived here: on another host, the camera's clock is not ours.
        silent_s = (time.time_ns() - frames[-1].received_ns) / 1e9
        if silent_s > 1.0:
            self._set_state("waiting", f"{self.history.camera} sent nothing for {silent_s:.1f} s")
            return False
        self._score(frames)
        window = self._window(frames, t_act, actions)
        if window is None:
            self._set_state("warming_up", f"collecting {self.config.context * self.config.dt_s:g} s of frames")
            return False
        source, past_frames, past_actions = window
        predictor = self.predictor  # once per tick: a swap takes effect at the next one
        started = time.perf_counter()
        try:
            pred_frames, pred_actions = predictor.predict(past_frames, past_actions)
            predictor.spec.check_outputs(pred_frames, pred_actions)
        except ValueError as exc:  # e.g. a glove whose fields do not fit the model: say so, live on
            self.bad_predictions += 1
            self._set_state("error", str(exc))
            return False
        elapsed_ms = (time.perf_counter() - started) * 1e3
        self.inference_ms.append(elapsed_ms)
        self._publish_prediction(source, pred_frames, pred_actions, elapsed_ms)
        self._pending.append((source.seq, source.t_host_ns, source.small, pred_frames, predictor))
        self._set_state("running")
        return True

    def _window(self, frames: list[Frame], t_act: np.ndarray, actions: np.ndarray):
        c = self.config
        t_frames = np.array([f.t_host_ns for f in frames], np.int64)
        now = frames[-1]
        wanted = now.t_host_ns - (np.arange(c.context)[::-1] * c.dt_s * 1e9).astype(np.int64)
        idx = nearest_index(t_frames, wanted)
        if np.abs(t_frames[idx] - wanted).max() > c.dt_s * 0.5e9:
            return None
        past_frames = np.stack([frames[i].small for i in idx])
        past_actions = actions[nearest_index(t_act, t_frames[idx])]
        return now, past_frames, past_actions

    def _publish_prediction(self, source: Frame, frames: np.ndarray, actions: np.ndarray,
                            inference_ms: float) -> None:
        c = self.config
        uv = np.full((c.horizon, 2), np.nan, np.float32)
        where = field_slice(self.history.action_layout, "wrist_pos")
        if where is not None and where.stop - where.start == 3:
            projected = project_to_image(actions[:, where], self.history.camera_meta)
            if projected is not None:
                uv = projected
        now = protocol.now_ns()
        sample = Sample(node=self.name, stream=self.specs[0].name, seq=self._prediction_seq,
                        t_device_ns=now, t_host_ns=now, fields={
                            "frames": frames, "actions": actions.astype(np.float32),
                            "horizons_s": np.asarray(c.horizons_s, np.float32), "hand_uv": uv,
                            "source_seq": np.array(source.seq, np.int64),
                            "source_t_host_ns": np.array(source.t_host_ns, np.int64),
                            "inference_ms": np.array(inference_ms, np.float32)})
        self._prediction_seq += 1
        self.predictions += 1
        try:  # the live socket only: displays want the newest, the recorder never sees these
            self.publisher.live.send_multipart(protocol.encode(sample), copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass

    def _score(self, frames: list[Frame]) -> None:
        """Publish the surprise of the newest prediction whose +1 s has come."""
        if self.predictor is not self._skill_of:  # swapped: the new model's skill starts afresh
            self.skill, self._skill_of = RollingSkill(), self.predictor
        c = self.config
        horizon_ns = int(c.horizons_s[self.surprise_step] * 1e9)
        tolerance_ns = int(c.dt_s * 0.5e9)
        newest = frames[-1]
        due = None
        while self._pending and self._pending[0][1] + horizon_ns <= newest.t_host_ns + tolerance_ns:
            due = self._pending.popleft()
        if due is None:
            return
        seq, t_source, source, predicted, made_by = due
        t_frames = np.array([f.t_host_ns for f in frames], np.int64)
        i = int(nearest_index(t_frames, np.array([t_source + horizon_ns]))[0])
        actual = frames[i]
        if abs(actual.t_host_ns - t_source - horizon_ns) > tolerance_ns or actual.seq == self._last_scored_seq:
            return
        self._last_scored_seq = actual.seq
        truth = actual.small.astype(np.float32) / 255
        score = float(np.sqrt(np.mean((predicted[self.surprise_step].astype(np.float32) / 255 - truth) ** 2)))
        baseline = float(np.sqrt(np.mean((source.astype(np.float32) / 255 - truth) ** 2)))
        skill = self._pool_skill(actual.t_host_ns, score, baseline, made_by)
        self.publisher.send(Sample(
            node=self.name, stream=self.specs[1].name, seq=self._surprise_seq,
            t_device_ns=actual.t_host_ns, t_host_ns=actual.t_host_ns, fields={
                "score": np.array(score, np.float32), "baseline": np.array(baseline, np.float32),
                "horizon_s": np.array(c.horizons_s[self.surprise_step], np.float32),
                "source_seq": np.array(seq, np.int64), "frame_seq": np.array(actual.seq, np.int64),
                "skill_db": np.array(skill.db, np.float32)}))
        self._surprise_seq += 1

    def _pool_skill(self, t_ns: int, score: float, baseline: float, made_by) -> Skill:
        """Pool a score into the running predictor's skill. A swapped-in model earns its own:
        predictions the old model made before the swap (scored after it, their second having
        come) are published but never credited to the new one."""
        if made_by is not self._skill_of:
            return self.skill.current()
        return self.skill.add(t_ns, score, baseline)

    def close(self) -> None:
        self.history.close()
        self.publisher.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.wam.node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="wam", help="node name, the prefix of its streams")
    parser.add_argument("--endpoint", required=True, help="base endpoint, ipc://PATH or tcp://HOST:PORT")
    parser.add_argument("--nodes", required=True, help="JSON object: device node name -> base endpoint")
    parser.add_argument("--options", default="{}", help="JSON object: checkpoint, predictor, "
                        "predictor_options, device, rate_hz, camera, threads, nice (WamOptions)")
    parser.add_argument("--curve-secret", help="this node's CurveZMQ secret key file (collector "
                        "keys): encrypt its sockets and admit only --curve-authorized clients; "
                        "also its client key towards the --node-keys nodes")
    parser.add_argument("--curve-authorized", help="folder of the public keys (*.key) of the apps "
                        "allowed to connect")
    parser.add_argument("--node-keys", default="{}", help="JSON object: node name -> that node's "
                        "public key file, for --nodes reached over CurveZMQ")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a plain tcp:// bind beyond loopback (trusted networks only)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s {args.name} %(levelname)s %(message)s")
    try:
        options = from_mapping(WamOptions, json.loads(args.options), where=f"{args.name}.options")
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if options.nice:
        os.nice(options.nice)
    curve = None
    try:
        bases = json.loads(args.nodes)
        curve = _curve(args, bases)
        if options.predictor:
            predictor = load_predictor(options.predictor, options.predictor_options)
        else:
            predictor = load_predictor("", {"checkpoint": options.checkpoint, "device": options.device})
        if "torch" in sys.modules:  # the built-in model, or a plugin built on torch
            sys.modules["torch"].set_num_threads(options.threads)
        node = InferenceNode(args.name, args.endpoint, bases, predictor,
                             rate_hz=options.rate_hz, camera=options.camera or None,
                             curve=curve, insecure=args.insecure)
    except (ValueError, zmq.ZMQError) as exc:  # CheckpointError, ConfigError, SecurityError too
        if curve is not None:
            curve.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return run_until_signalled(node)
    finally:
        if curve is not None:
            curve.stop()


def _curve(args: argparse.Namespace, bases: dict[str, str]) -> "security.CurveServer | None":
    """The node's CurveZMQ server side, and its client side towards the ``--node-keys`` nodes."""
    node_keys = json.loads(args.node_keys)
    unknown = set(node_keys) - set(bases)
    if unknown:
        raise ValueError(f"--node-keys names {', '.join(sorted(unknown))}, not in --nodes")
    if node_keys and not args.curve_secret:
        raise ValueError("--node-keys needs --curve-secret (this node's keypair)")
    if node_keys:
        security.configure_client(args.curve_secret, {bases[n]: k for n, k in node_keys.items()})
    if not (args.curve_secret or args.curve_authorized):
        return None
    if not (args.curve_secret and args.curve_authorized):
        raise ValueError("--curve-secret and --curve-authorized go together")
    return security.CurveServer(args.curve_secret, args.curve_authorized)


if __name__ == "__main__":
    raise SystemExit(main())
