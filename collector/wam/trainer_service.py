"""The background WAM trainer: fine-tunes the live preview on this station's episodes as you collect.

    [[services]]
    name = "wam"
    module = "collector.wam.node"
    [[services]]
    name = "wam-trainer"
    module = "collector.wam.trainer_service"
    options = { wam = "wam", steps = 300, max_minutes = 10 }     # TrainerOptions

The supervisor starts it like any service (after the WAM node it serves, which must come first
in the config so that its endpoint is among ``--nodes``). It learns of saved episodes the way the
session does, from the recorder's ``status`` (its ``finished`` results; the supervisor passes the
recorder's control endpoint in ``COLLECTOR_RECORDER_CTL``). Each episode goes, once and for good,
to one side of a three-way split by episode (:class:`~collector.wam.registry.Registry`):
training, selection or held out. After each saved episode it fine-tunes the checkpoint the node
runs on the training episodes (:func:`collector.wam.finetune.fine_tune`: the starting model's
objective, a low learning rate, the encoder frozen), keeps the state that scores best on the
selection episodes (early stopping), then scores that state, as it will run (int8), and the
running model on the held-out episodes. Only when the new one's skill (whole-frame PSNR at +1 s
over the still frame) beats the running one's by ``min_gain_db`` does it ask the node to swap
it in (``swap_checkpoint`` on the node's control socket). Every fine-tune, kept or not, is in
``<folder>/registry.json``; ``collector wam status`` prints it. It starts once there is one
episode on each side (the 1st is held out, the 2nd kept for selection, the 3rd trained on).

It never costs a frame: each fine-tune runs in a worker process of its own
(:mod:`collector.wam.finetune_worker`) that it freezes within :data:`RECORDING_POLL_S` of an
episode starting and thaws when it stops (``pause_while_recording``, asking the recorder's cheap
``recording``), runs niced (``nice``, default 15, below the WAM node's 10) and in
Linux's idle scheduling class (``idle_class``: only on CPU time nothing else wants), on one
torch thread (``threads``), on CUDA when torch sees it (``device = "auto"``), and reads episodes
only after the recorder has closed them. Its control socket answers ``ping``, ``describe`` and
``status``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import zmq

from collector.recording.supervisor import RECORDER_CTL_ENV
from collector.storage import EpisodeError, read_attrs
from collector.wam.finetune import FineTuneOptions, FineTuneResult, FineTuneStopped, fine_tune_options
from collector.wam.finetune_worker import result_from_json, write_job
from collector.wam.registry import HELD_OUT, SELECT, TRAIN, Registry, format_db
from collector.wire.bus import NodePublisher, node_endpoints, request
from collector.wire.node import run_until_signalled
from collector.wire.options import ConfigError, from_mapping
from collector.wire.protocol import Describe

log = logging.getLogger("collector.wam.trainer")


@dataclass
class TrainerOptions(FineTuneOptions):
    """The service's ``options`` table: how each fine-tune runs (the fields of
    :class:`~collector.wam.finetune.FineTuneOptions`: at most ``steps`` steps of ``batch_size``
    or ``max_minutes``, ``lr``, ``trainable``, early stopping every ``select_every`` steps with
    ``patience``...), plus the following."""

    #: Name of the WAM node service whose checkpoint is fine-tuned and swapped.
    wam: str = "wam"
    #: Checkpoints and ``registry.json``; empty: ``.wam`` in the recordings folder.
    folder: str = ""
    #: A new checkpoint replaces the running one only when its held-out skill is higher by this.
    min_gain_db: float = 0.05
    #: Fractions of the episodes held out (scored once, for the swap) and kept for selection
    #: (scored during the fine-tune to keep its best state): whole episodes, decided when each
    #: is first seen.
    val_fraction: float = 0.2
    select_fraction: float = 0.2
    #: Training episodes needed before the first fine-tune.
    min_episodes: int = 1
    threads: int = 1
    #: CPU priority below capture, the recorder and the WAM node.
    nice: int = 15
    #: Also run in Linux's idle scheduling class (``SCHED_IDLE``) and idle I/O class: only on
    #: CPU time nothing else wants. Nice 15 alone still let the fine-tune take the capture
    #: path's CPU: capture-to-recorder p99 273 ms against 22 ms with the WAM node alone, 2 cores
    #: (``benchmarks/wam.py --capture 20``).
    idle_class: bool = True
    #: Seconds between looks at the recorder's finished episodes.
    poll_s: float = 2.0
    #: Freeze the fine-tune's worker while an episode records (the recorder is asked every
    #: :data:`RECORDING_POLL_S`): on a small CPU station even the idle class cost capture p99
    #: (25 -> 39-56 ms, 2 cores). A GPU station may set it false.
    pause_while_recording: bool = True

    def validate(self) -> None:
        try:
            super().validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.threads < 1 or self.min_episodes < 1:
            raise ConfigError("threads and min_episodes must be >= 1")
        if not (0 < self.val_fraction < 1 and 0 < self.select_fraction < 1
                and self.val_fraction + self.select_fraction < 1):
            raise ConfigError("val_fraction and select_fraction must be in (0, 1) and leave episodes "
                              f"to train on, got {self.val_fraction} and {self.select_fraction}")
        if self.poll_s <= 0:
            raise ConfigError(f"poll_s must be > 0, got {self.poll_s}")


#: How often the trainer asks the recorder whether an episode is recording while a fine-tune
#: runs (the worker is frozen within this of a start).
RECORDING_POLL_S = 0.1
#: Seconds a terminated worker gets to exit before it is killed.
WORKER_STOP_S = 2.0


def lower_priority(options: TrainerOptions) -> list[str]:
    """Put this process below everything capture needs (``nice``, ``idle_class``); what was
    applied, in words (a class the OS refuses is skipped: the nice level still holds)."""
    applied = []
    if options.nice:
        os.nice(options.nice)
        applied.append(f"nice {options.nice}")
    if options.idle_class and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            applied.append("SCHED_IDLE")
        except OSError as exc:
            log.info("idle CPU class refused (%s); running at nice %d", exc, options.nice)
        try:
            psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)
            applied.append("idle I/O")
        except (OSError, AttributeError, psutil.Error) as exc:
            log.info("idle I/O class refused (%s)", exc)
    return applied


class TrainerService:
    """Watches the recorder for saved episodes and fine-tunes, scores and swaps (see the module
    docstring). :meth:`run` loops until :meth:`stop`; :meth:`step` is one look and, when due,
    one fine-tune."""

    def __init__(self, name: str, endpoint: str, bases: dict[str, str], options: TrainerOptions,
                 recorder_ctl: str) -> None:
        if options.wam not in bases:
            raise ValueError(f"no WAM node {options.wam!r} among --nodes ({', '.join(bases) or 'none'}): "
                             "list its [[services]] entry before this one")
        self.name = name
        self.options = options
        self.wam_ctl = node_endpoints(bases[options.wam]).ctl
        self.recorder_ctl = recorder_ctl
        self.registry: Registry | None = None
        self.state, self.message = "waiting", "no episode saved yet"
        self.fine_tunes = 0
        self.pending = 0  # saved episodes not trained on yet
        self.failures = 0
        #: The running fine-tune's worker process, if any.
        self.worker_pid: int | None = None
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self.publisher = NodePublisher(endpoint, Describe(node=name, streams=[], info={"driver": "wam-trainer"}),
                                       messages_per_second=1.0,
                                       handlers={"status": lambda _req: self.status()})

    def status(self) -> dict[str, Any]:
        registry = self.registry
        active = registry.active_entry() if registry else None
        return {"ok": True, "state": self.state, "message": self.message,
                "fine_tunes": self.fine_tunes, "pending_episodes": self.pending,
                "failures": self.failures,
                "folder": str(registry.folder) if registry else None,
                "episodes": {side: len(registry.uuids(side)) for side in (TRAIN, SELECT, HELD_OUT)}
                if registry else {},
                "active": active, "summary": active.get("summary", "") if active else ""}

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.publisher.close()

    def run(self) -> None:
        parent = os.getppid()
        while not self._stop.is_set():
            if os.getppid() != parent:
                log.warning("parent process exited; stopping")
                break
            self.step()
            self._stop.wait(self.options.poll_s)

    def step(self) -> bool:
        """Look for newly saved episodes; fine-tune when there are some. True if it trained."""
        try:
            finished = request(self.recorder_ctl, "status", timeout_s=2.0)
        except (TimeoutError, OSError, ValueError) as exc:
            self.state, self.message = "waiting", f"recorder not answering ({exc})"
            return False
        self._note_saved(finished)
        if self.registry is None or not self.pending:
            return False
        have = {side: len(self.registry.paths(side)) for side in (TRAIN, SELECT, HELD_OUT)}
        if have[TRAIN] < self.options.min_episodes or not have[SELECT] or not have[HELD_OUT]:
            self.state = "waiting"
            self.message = (f"{have[TRAIN]} training, {have[SELECT]} selection and {have[HELD_OUT]} "
                            f"held-out episodes: need {self.options.min_episodes}, 1 and 1")
            return False
        return self.fine_tune()

    def _recording(self) -> bool:
        """Whether the recorder records an episode now (a recorder that does not answer records
        nothing this process could cost)."""
        try:
            return bool(request(self.recorder_ctl, "recording", timeout_s=1.0).get("recording"))
        except (TimeoutError, OSError, ValueError):
            return False

    def _run_worker(self, job: Path, result: Path) -> tuple[FineTuneResult, str]:
        """Run the fine-tune ``job`` in a worker process (:mod:`collector.wam.finetune_worker`),
        frozen while an episode records; returns its result and the one-line summary of what the
        kept state was trained on. Raises :class:`FineTuneStopped` on :meth:`stop` and
        ``ValueError`` when the fine-tune failed."""
        worker = subprocess.Popen([sys.executable, "-m", "collector.wam.finetune_worker", str(job)],
                                  stdin=subprocess.DEVNULL)
        self.worker_pid = worker.pid
        frozen, resume_message = False, self.message
        try:
            while worker.poll() is None:
                if self._stop.is_set():
                    raise FineTuneStopped("stopped: the trainer is shutting down")
                busy = self.options.pause_while_recording and self._recording()
                if busy != frozen:
                    try:  # SIGCONT after any SIGSTOP, so that a stop reaches it too
                        os.kill(worker.pid, signal.SIGSTOP if busy else signal.SIGCONT)
                    except ProcessLookupError:  # it just ended
                        break
                    frozen = busy
                    if busy:
                        resume_message, self.message = self.message, "fine-tune paused: an episode is recording"
                    else:
                        self.message = resume_message
                self._stop.wait(RECORDING_POLL_S)
        finally:
            if worker.poll() is None:
                worker.terminate()  # a stop keeps nothing: it ends at once ...
                os.kill(worker.pid, signal.SIGCONT)  # ... once it runs again
                try:
                    worker.wait(WORKER_STOP_S)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            self.worker_pid = None
            self.message = resume_message if frozen else self.message
        try:
            data = json.loads(result.read_text())
        except (OSError, ValueError):
            raise ValueError(f"the fine-tune worker exited with status {worker.returncode} "
                             "and no result (see the log above)") from None
        if "error" in data:
            raise ValueError(data["error"])
        return result_from_json(data), str(data.get("summary", ""))

    def _note_saved(self, status: dict[str, Any]) -> None:
        if self.registry is None and status.get("output") is not None:
            folder = Path(self.options.folder or Path(status["output"]) / ".wam")
            self.registry = Registry.load(folder)
            self._seen.update(self.registry.episodes)
        if self.registry is None:
            return
        for uuid, result in (status.get("finished") or {}).items():
            if uuid in self._seen:
                continue
            self._seen.add(uuid)
            path = result.get("path")
            if not result.get("ok") or result.get("discarded") or not path or not Path(path).exists():
                continue
            try:
                task = str(read_attrs(path, ("task",))["task"] or "")
            except (EpisodeError, OSError) as exc:  # damaged or unreadable: never trained on
                log.warning("skipping %s: %s", path, exc)
                self.failures += 1
                continue
            side = self.registry.note_episode(uuid, path, task, self.options.val_fraction,
                                              self.options.select_fraction)
            log.info("episode %s (%s): %s", Path(path).name, task, side)
            self.pending += 1
        self.registry.save()

    def fine_tune(self) -> bool:
        """Fine-tune the running checkpoint, score it against the running one, swap if better."""
        registry, o = self.registry, self.options
        try:
            running = request(self.wam_ctl, "status", timeout_s=5.0)
        except TimeoutError:  # restarting, or busy: the episodes wait for the next look
            self.state, self.message = "waiting", "the WAM node is not answering"
            return False
        current = running.get("checkpoint")
        if not current:
            self.state, self.message = "idle", "the WAM node runs a plugged-in predictor: nothing to fine-tune"
            self.pending = 0
            return False
        self.pending = 0
        self.state, self.message = "training", f"fine-tuning {Path(current).name}"
        number = len(registry.checkpoints) + 1
        out = registry.folder / f"wam-{number:04d}.pt"
        train_paths, select_paths, val_paths = (registry.paths(side) for side in (TRAIN, SELECT, HELD_OUT))
        tasks = registry.tasks(TRAIN)
        candidate = out.with_name(out.name + ".candidate")
        job, result_path = (out.with_name(f"{out.stem}.{kind}.json") for kind in ("job", "result"))
        registry.folder.mkdir(parents=True, exist_ok=True)
        write_job(job, init=current, train=[str(p) for p in train_paths], select=[str(p) for p in select_paths],
                  held_out=[str(p) for p in val_paths],
                  options=fine_tune_options(o), camera=running.get("camera"), seed=number, threads=o.threads,
                  station={"episodes": len(train_paths), "tasks": tasks,
                           "selection_episodes": len(select_paths), "held_out_episodes": len(val_paths)},
                  out=candidate, result=result_path)
        try:
            result, result_summary = self._run_worker(job, result_path)
        except FineTuneStopped as exc:  # shutting down: the episodes are trained on next time
            _remove(candidate)
            self.state, self.message = "stopped", f"fine-tune {exc}"
            return False
        except (ValueError, OSError) as exc:  # unreadable episodes, too short for a window
            _remove(candidate)
            self.failures += 1
            self.state, self.message = "error", f"fine-tune failed: {exc}"
            log.warning("%s", self.message)
            return False
        finally:
            job.unlink(missing_ok=True)
            result_path.unlink(missing_ok=True)
        new_skill, old_skill = result.tuned_skill, result.running_skill
        better = result.beats_running(o.min_gain_db)
        entry = {"path": str(out), "created_ns": time.time_ns(), "initialized_from": current,
                 "train_episodes": registry.uuids(TRAIN), "selection_episodes": registry.uuids(SELECT),
                 "held_out_episodes": registry.uuids(HELD_OUT),
                 "tasks": tasks, "episodes": len(train_paths), "steps": result.steps,
                 "best_step": result.best_step, "seconds": round(result.seconds, 1),
                 "cpu_seconds": round(result.cpu_seconds, 1),
                 "trained_minutes": round(result.trained_minutes, 2),
                 "skill_db": new_skill, "running_skill_db": old_skill,
                 "validation": result.tuned, "summary": result_summary, "kept": False}
        self.fine_tunes += 1
        if better:  # only kept checkpoints take disk space
            candidate.replace(out)
            entry["kept"], entry["swap"] = self._swap(str(out))
        else:
            candidate.unlink(missing_ok=True)
            entry["reason"] = (f"held-out skill {format_db(new_skill)} not above the running "
                               f"{format_db(old_skill)} + {o.min_gain_db:g} dB"
                               + ("" if result.best_step else "; no step beat it on the selection episodes"))
        registry.checkpoints.append(entry)
        if entry["kept"]:
            registry.active = str(out)
        registry.save()
        self.state = "idle"
        self.message = (f"swapped in {out.name}: {entry['summary']}" if entry["kept"]
                        else f"kept the running model: {entry.get('reason') or entry.get('swap')}")
        log.info("%s", self.message)
        return True

    def _swap(self, path: str) -> tuple[bool, str]:
        """Ask the node to swap ``path`` in and wait (bounded) until it says how it went."""
        try:
            reply = request(self.wam_ctl, "swap_checkpoint", timeout_s=5.0, path=path)
            if not reply.get("ok"):
                return False, str(reply.get("error"))
            deadline = time.monotonic() + 60.0
            while time.monotonic() < deadline and not self._stop.is_set():
                swap = request(self.wam_ctl, "status", timeout_s=5.0).get("swap") or {}
                if swap.get("path") == path and swap.get("state") in ("swapped", "refused"):
                    return swap["state"] == "swapped", swap.get("message") or swap["state"]
                self._stop.wait(0.2)
        except TimeoutError as exc:
            return False, f"the WAM node did not answer ({exc})"
        return False, "the WAM node did not finish loading within 60 s"


def _remove(candidate: Path) -> None:
    """A worker's checkpoint that is not kept, and what a worker killed while saving it left."""
    candidate.unlink(missing_ok=True)
    candidate.with_name(candidate.name + ".tmp").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.wam.trainer_service", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="wam-trainer")
    parser.add_argument("--endpoint", required=True, help="base endpoint of its control socket")
    parser.add_argument("--nodes", required=True, help="JSON object: node name -> base endpoint")
    parser.add_argument("--options", default="{}", help="JSON object (TrainerOptions)")
    parser.add_argument("--recorder", default=os.environ.get(RECORDER_CTL_ENV),
                        help=f"the recorder's control endpoint (default: ${RECORDER_CTL_ENV})")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s {args.name} %(levelname)s %(message)s")
    try:
        options = from_mapping(TrainerOptions, json.loads(args.options), where=f"{args.name}.options")
        if not args.recorder:
            raise ConfigError(f"no recorder: pass --recorder or set {RECORDER_CTL_ENV}")
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lower_priority(options)  # the fine-tune workers it starts inherit the classes
    try:
        service = TrainerService(args.name, args.endpoint, json.loads(args.nodes), options, args.recorder)
    except (ValueError, zmq.ZMQError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_until_signalled(service)


if __name__ == "__main__":
    raise SystemExit(main())
