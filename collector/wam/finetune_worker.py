"""One station fine-tune in a process of its own, so that the trainer can freeze it at once.

    python -m collector.wam.finetune_worker JOB.json

The background trainer (:mod:`collector.wam.trainer_service`) writes a job and starts this
process for each fine-tune, and freezes it (``SIGSTOP``) within a tenth of a second of an
episode starting, thawing it (``SIGCONT``) when the episode stops. A fine-tune that only held
between its steps kept running through the step, episode load or validation pass in progress
(seconds on one CPU thread) while the station captured; a frozen process uses no CPU at all.

The job is a JSON object::

    {"init": checkpoint, "train": [...], "select": [...], "held_out": [...],
     "options": {FineTuneOptions fields}, "camera": str | null, "seed": int, "threads": int,
     "station": {what the trainer records in the report}, "out": path, "result": path}

The kept state (int8, its report's ``station`` set) is saved to ``out`` and a JSON result to
``result`` (:func:`result_to_json`); exit status 0. Episodes that give no window or cannot be
read: the result holds ``{"error": text}``, exit status 2. ``SIGTERM`` ends it at once (a stop
keeps nothing of a fine-tune, and the app closing must not wait for a step, an episode load or a
validation pass on a niced thread). Time frozen (or starved of CPU for longer than
:data:`StallMeter.GAP_S`) does not count against ``max_minutes``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from collector.wam.finetune import FineTuneOptions, FineTuneResult, fine_tune
from collector.wire.options import ConfigError, from_mapping, to_mapping

log = logging.getLogger("collector.wam.finetune_worker")

#: Exit status of a fine-tune that failed (its result says why).
FAILED = 2


class StallMeter:
    """Counts the seconds this process did not run: a thread that wakes every :data:`TICK_S`
    and adds any gap longer than :data:`GAP_S` (a ``SIGSTOP``, or starvation in the idle CPU
    class) to :attr:`seconds`."""

    TICK_S = 0.05
    GAP_S = 0.5

    def __init__(self) -> None:
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-meter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.TICK_S):
            now = time.monotonic()
            if now - last > self.GAP_S:
                self.seconds += now - last - self.TICK_S
            last = now

    def __call__(self) -> float:
        return self.seconds

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)


def result_to_json(result: FineTuneResult) -> dict[str, Any]:
    """What the trainer needs of a worker's fine-tune (the checkpoint itself is in ``out``)."""
    from collector.wam.registry import training_summary

    return {"running": result.running, "tuned": result.tuned, "best_step": result.best_step,
            "steps": result.steps, "selection": [list(s) for s in result.selection],
            "seconds": result.seconds, "cpu_seconds": result.cpu_seconds,
            "trained_minutes": result.trained_minutes, "paused_s": result.paused_s,
            "summary": training_summary(result.checkpoint.report if result.checkpoint else None)}


def result_from_json(data: dict[str, Any]) -> FineTuneResult:
    """The worker's result as a :class:`FineTuneResult` without its checkpoint (it is on disk)."""
    return FineTuneResult(None, data["running"], data["tuned"], int(data["best_step"]), int(data["steps"]),
                          [tuple(s) for s in data["selection"]], float(data["seconds"]),
                          float(data["cpu_seconds"]), float(data["trained_minutes"]), float(data["paused_s"]))


def write_job(path: Path, *, init: str, train: list[str], select: list[str], held_out: list[str],
              options: FineTuneOptions, camera: str | None, seed: int, threads: int,
              station: dict[str, Any], out: Path, result: Path) -> None:
    """The job file :func:`main` runs."""
    path.write_text(json.dumps({
        "init": init, "train": train, "select": select, "held_out": held_out,
        "options": to_mapping(options), "camera": camera, "seed": seed, "threads": threads,
        "station": station, "out": str(out), "result": str(result)}))


def run_job(job: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Run one job; returns the exit status and the result object."""
    import torch

    torch.set_num_threads(int(job.get("threads", 1)))
    options = from_mapping(FineTuneOptions, job.get("options") or {}, where="job.options")
    meter = StallMeter()
    try:
        result = fine_tune(job["init"], job["train"], job["select"], job["held_out"], options=options,
                           say=log.info, camera=job.get("camera"), seed=int(job.get("seed", 0)),
                           held_s=meter)
    except (ValueError, OSError, ConfigError) as exc:
        return FAILED, {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        meter.close()
    result.checkpoint.report["station"] = job.get("station") or {}
    result.checkpoint.save(job["out"])
    return 0, result_to_json(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.wam.finetune_worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s wam-finetune %(levelname)s %(message)s")
    job = json.loads(args.job.read_text())
    code, result = run_job(job)
    tmp = Path(job["result"] + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(job["result"])
    return code


if __name__ == "__main__":
    sys.exit(main())
