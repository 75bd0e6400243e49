"""The background trainer: learns of saved episodes from the recorder's status, fine-tunes the
running checkpoint on the training side of a by-episode split, swaps it into the node only when
its held-out skill is higher, and keeps a registry that ``collector wam status`` prints."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
import torch
import zmq

from collector.cli import main
from collector.wam.checkpoint import Predictor
from collector.wam.node import InferenceNode
from collector.wam.registry import HELD_OUT, SELECT, TRAIN, Registry, training_summary
from collector.wam.trainer_service import TrainerOptions, TrainerService
from collector.wire.bus import default_endpoint, new_runtime_dir, serve_requests
from tests.collector.sim_episodes import write_sim_episode
from tests.collector.test_wam import tiny_checkpoint
from tests.waiting import wait_for


@pytest.fixture
def torch_threads():
    """The trainer sets torch's thread count (one, as in its own process): put it back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Four short episodes as the recorder leaves them (uuid -> path)."""
    folder = tmp_path_factory.mktemp("recordings") / "pick-cube"
    folder.mkdir()
    return {f"uuid{i}": str(write_sim_episode(folder / f"ep{i}.h5", seed=i, seconds=2.0,
                                              epoch_offset_s=1.0 + i))
            for i in range(4)}


class StandInRecorder:
    """Answers ``status`` as the recorder does (its output folder and its finished episodes),
    and ``recording`` (:attr:`recording`)."""

    def __init__(self, endpoint: str, output: Path) -> None:
        self.finished: dict = {}
        self.recording = False
        self.output = output
        self._stop = threading.Event()
        sock = zmq.Context.instance().socket(zmq.REP)
        sock.bind(endpoint)
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self._thread.start()

    def _serve(self, sock) -> None:
        try:
            serve_requests(sock, self._answer, self._stop)
        finally:
            sock.close(linger=0)

    def _answer(self, request: dict) -> dict:
        if request["cmd"] == "recording":
            return {"ok": True, "recording": self.recording}
        return {"ok": True, "output": str(self.output), "recording": self.recording,
                "finished": dict(self.finished)}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


def test_the_trainer_fine_tunes_after_saved_episodes_and_swaps_only_a_better_model(saved, tmp_path, capsys,
                                                                                  torch_threads):
    runtime = new_runtime_dir()
    wam_base = default_endpoint(runtime, "wam")
    started_with = str(tiny_checkpoint(tmp_path / "start.pt"))
    node = InferenceNode("wam", wam_base, {}, Predictor.from_file(started_with))
    recorder = StandInRecorder(f"ipc://{runtime}/recorder.ctl", tmp_path / "recordings")
    folder = tmp_path / "recordings" / ".wam"
    # Any held-out skill counts as better for the first fine-tune: the swap path, deterministically.
    options = TrainerOptions(steps=2, batch_size=4, val_windows=8, min_gain_db=-100.0,
                             device="cpu")
    trainer = TrainerService("wam-trainer", default_endpoint(runtime, "wam-trainer"), {"wam": wam_base},
                             options, f"ipc://{runtime}/recorder.ctl")
    uuids = list(saved)
    try:
        # A failed and a discarded episode are never trained on; the first saved one is held
        # out, the second kept for selection, the third trained on.
        recorder.finished = {"bad": {"ok": False, "error": "disk full"},
                             "gone": {"ok": True, "discarded": True, "path": saved[uuids[1]]},
                             uuids[0]: {"ok": True, "path": saved[uuids[0]]}}
        assert not trainer.step()
        assert trainer.status()["state"] == "waiting"
        assert "0 training, 0 selection and 1 held-out" in trainer.message
        recorder.finished[uuids[1]] = {"ok": True, "path": saved[uuids[1]]}
        assert not trainer.step() and "0 training, 1 selection and 1 held-out" in trainer.message
        recorder.finished[uuids[2]] = {"ok": True, "path": saved[uuids[2]]}
        assert trainer.step()
        first = folder / "wam-0001.pt"
        assert node.swap["state"] == "swapped" and node.predictor.path == str(first)
        registry = Registry.load(folder)
        assert registry.active == str(first) and registry.uuids(HELD_OUT) == [uuids[0]]
        assert registry.uuids(SELECT) == [uuids[1]]
        entry = registry.checkpoints[0]
        assert entry["kept"] and entry["train_episodes"] == [uuids[2]] and entry["tasks"] == {"pick-cube": 1}
        assert entry["selection_episodes"] == [uuids[1]] and entry["cpu_seconds"] > 0
        assert entry["initialized_from"] == started_with and entry["steps"] == 2
        assert entry["summary"].startswith("trained on 1 episode of pick-cube, ")
        assert entry["summary"] == training_summary(node.predictor.checkpoint.report)
        assert trainer.status()["summary"] == entry["summary"]

        # Now demand more than any fine-tune of a few steps can gain: scored, not kept, deleted.
        trainer.options.min_gain_db = 100.0
        recorder.finished[uuids[3]] = {"ok": True, "path": saved[uuids[3]]}
        assert trainer.step()
        registry = Registry.load(folder)
        second = registry.checkpoints[1]
        assert not second["kept"] and "not above the running" in second["reason"]
        assert second["initialized_from"] == str(first) and second["train_episodes"] == uuids[2:]
        assert not Path(second["path"]).exists() and node.predictor.path == str(first)
        assert registry.active == str(first)
        # Nothing new saved: nothing trained.
        assert not trainer.step() and len(Registry.load(folder).checkpoints) == 2
    finally:
        trainer.close()
        recorder.close()
        node.close()

    capsys.readouterr()
    assert main(["wam", "status", "--folder", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wam-0001.pt: {entry['summary']}\n")
    assert "episodes seen: 4 (2 for training, 1 for selection, 1 held out)" in out
    assert "wam-0002.pt: 2 episodes" in out and "not kept (held-out skill" in out
    assert main(["wam", "status", "--folder", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["active"]["path"] == str(first)


@pytest.fixture
def recording_station(saved, tmp_path):
    """A WAM node, a recorder that says an episode is recording and has three saved episodes
    (enough for a fine-tune), and a trainer; the trainer's ``step`` runs on a thread."""
    runtime = new_runtime_dir()
    wam_base = default_endpoint(runtime, "wam")
    node = InferenceNode("wam", wam_base, {}, Predictor.from_file(str(tiny_checkpoint(tmp_path / "start.pt"))))
    recorder = StandInRecorder(f"ipc://{runtime}/recorder.ctl", tmp_path / "recordings")
    recorder.recording = True
    recorder.finished = {uuid: {"ok": True, "path": path} for uuid, path in list(saved.items())[:3]}
    trainer = TrainerService("wam-trainer", default_endpoint(runtime, "wam-trainer"), {"wam": wam_base},
                             TrainerOptions(steps=2, batch_size=4, val_windows=8, min_gain_db=-100.0,
                                            device="cpu"), f"ipc://{runtime}/recorder.ctl")
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(trainer.step()), daemon=True)
    thread.start()
    try:
        yield trainer, recorder, thread, outcome
    finally:
        trainer.stop()
        thread.join(60)
        trainer.close()
        recorder.close()
        node.close()


def frozen_worker(trainer: TrainerService) -> psutil.Process:
    """The trainer's fine-tune worker, once the kernel has it stopped (SIGSTOP)."""
    def stopped():
        pid = trainer.worker_pid
        try:
            return pid is not None and psutil.Process(pid).status() == psutil.STATUS_STOPPED and psutil.Process(pid)
        except psutil.NoSuchProcess:
            return False
    return wait_for(stopped, timeout_s=60, message="the fine-tune worker stopped by SIGSTOP")


def test_a_fine_tune_is_frozen_while_an_episode_records_and_finishes_after(recording_station):
    """Holding between steps let a step, an episode load or a validation pass in progress run on
    while the station captured (capture p99 25 -> 39-66 ms, 2 cores): the fine-tune now runs in
    a worker process that is frozen as soon as an episode records, and finishes once it stops."""
    trainer, recorder, thread, outcome = recording_station
    worker = frozen_worker(trainer)
    assert trainer.status()["message"] == "fine-tune paused: an episode is recording"
    assert thread.is_alive() and not outcome
    recorder.recording = False
    wait_for(lambda: worker.status() != psutil.STATUS_STOPPED if worker.is_running() else True,
             message="the worker thawed")
    thread.join(120)
    assert outcome == [True]
    entry = trainer.registry.checkpoints[0]
    assert entry["kept"] and Path(entry["path"]).exists() and entry["steps"] == 2
    assert not list(trainer.registry.folder.glob("*.candidate")) and not list(trainer.registry.folder.glob("*.json.*"))
    assert trainer.worker_pid is None and not worker.is_running()


def test_a_stop_ends_a_frozen_fine_tune_and_keeps_nothing(recording_station):
    trainer, recorder, thread, outcome = recording_station
    worker = frozen_worker(trainer)
    trainer.stop()
    thread.join(60)
    assert outcome == [False] and trainer.status()["state"] == "stopped"
    assert not worker.is_running() and trainer.registry.checkpoints == []
    assert not [p for p in trainer.registry.folder.iterdir() if p.name != "registry.json"]


def test_an_episode_keeps_its_side_of_the_split_as_episodes_accumulate(tmp_path):
    registry = Registry(tmp_path)
    sides = [registry.note_episode(f"u{i}", str(tmp_path / f"{i}.h5"), "t") for i in range(11)]
    # The first is held out, then one more each time the held-out share would fall below 1/5.
    assert [i for i, s in enumerate(sides) if s == HELD_OUT] == [0, 5, 10]
    assert registry.note_episode("u3", "elsewhere.h5", "t") == TRAIN
    registry.save()
    assert Registry.load(tmp_path).episodes == registry.episodes
    (tmp_path / "registry.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a version 1 WAM checkpoint registry"):
        Registry.load(tmp_path)


def test_the_three_way_split_holds_out_then_selects_then_trains(tmp_path):
    registry = Registry(tmp_path)
    sides = [registry.note_episode(f"u{i}", str(tmp_path / f"{i}.h5"), "t", 0.2, 0.2) for i in range(11)]
    assert sides[:3] == [HELD_OUT, SELECT, TRAIN]
    assert [i for i, s in enumerate(sides) if s == HELD_OUT] == [0, 5, 10]
    assert [i for i, s in enumerate(sides) if s == SELECT] == [1, 6]


def test_the_trainer_refuses_a_config_without_its_wam_node(tmp_path):
    with pytest.raises(ValueError, match="no WAM node 'wam' among --nodes"):
        TrainerService("wam-trainer", default_endpoint(new_runtime_dir(), "t"), {"cam0": "ipc:///x"},
                       TrainerOptions(), "ipc:///recorder")


@pytest.mark.slow
def test_in_a_session_the_trainer_swaps_a_fine_tuned_model_into_the_running_node(tmp_path):
    """The whole path with real processes: services from the config, episodes saved by the
    recorder, the trainer's swap seen in the node's status (slow: five processes and training)."""
    from collector.config import ServiceConfig, sim_config
    from collector.recording.session import Session
    from collector.wam.node import service_config
    from collector.wire.bus import node_endpoints, request
    from tests.collector.test_wam_node import SMALL_CAMERA
    from tests.waiting import wait_for, wait_for_samples

    config = sim_config(seed=3)
    config.nodes[0].options.update(SMALL_CAMERA)
    config.recording.output = tmp_path / "rec"
    config.services.append(service_config(checkpoint=str(tiny_checkpoint(tmp_path / "tiny.pt"))))
    config.services.append(ServiceConfig("wam-trainer", "collector.wam.trainer_service", options={
        "steps": 2, "batch_size": 4, "val_windows": 8, "min_gain_db": -100.0, "poll_s": 0.2}))
    with Session(config) as session:
        for _ in range(3):  # held out, selection, training
            session.start_episode()
            wait_for_samples(session.status, ("cam0/color",), count=90)
            session.stop_episode()
        wam_ctl = node_endpoints(session.supervisor.service_endpoints["wam"]).ctl
        status = wait_for(lambda: (s := request(wam_ctl, "status"))["swap"]["state"] == "swapped" and s,
                          timeout_s=120)
    assert status["checkpoint"] == str(tmp_path / "rec" / ".wam" / "wam-0001.pt")
    assert status["trained_on"].startswith("trained on 1 episode of demo, ")
    assert Registry.load(tmp_path / "rec" / ".wam").active == status["checkpoint"]


def test_a_damaged_episode_is_skipped_counted_and_left_alone(tmp_path):
    runtime = new_runtime_dir()
    recorder = StandInRecorder(f"ipc://{runtime}/recorder.ctl", tmp_path)
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(b"not an episode")
    recorder.finished = {"u1": {"ok": True, "path": str(damaged)}}
    trainer = TrainerService("wam-trainer", default_endpoint(runtime, "wam-trainer"),
                             {"wam": default_endpoint(runtime, "wam")}, TrainerOptions(),
                             f"ipc://{runtime}/recorder.ctl")
    try:
        assert not trainer.step()
        status = trainer.status()
        assert status["failures"] == 1 and status["episodes"] == {TRAIN: 0, SELECT: 0, HELD_OUT: 0}
        assert damaged.read_bytes() == b"not an episode"
        assert not trainer.step() and trainer.status()["failures"] == 1  # counted once
    finally:
        trainer.close()
        recorder.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")
def test_the_trainer_runs_in_the_idle_cpu_class_below_capture():
    """Nice 15 alone let the fine-tune take the capture path's CPU on 2 cores; the trainer
    also asks for SCHED_IDLE (and idle I/O), here in a child so this process keeps its class."""
    from collector.wam.trainer_service import lower_priority

    code = ("import os, json; from collector.wam.trainer_service import TrainerOptions, lower_priority;"
            "applied = lower_priority(TrainerOptions());"
            "print(json.dumps([applied, os.sched_getscheduler(0) == os.SCHED_IDLE, os.nice(0)]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    applied, idle, niceness = json.loads(done.stdout.strip().splitlines()[-1])
    assert "SCHED_IDLE" in applied and idle and niceness >= 15
    assert lower_priority(TrainerOptions(nice=0, idle_class=False)) == []
