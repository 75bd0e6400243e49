"""The WAM inference node over real sockets: simulated camera and glove nodes as processes, the
node's predictions followed by the GUI's preview model, and the surprise trace in an episode."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from collector.wire.bus import default_endpoint, new_runtime_dir, request, node_endpoints
from collector.config import load_config, load_entry_point, sim_config
from collector.wire.options import ConfigError
from collector.storage.reader import open_episode
from collector.recording.session import Session
from collector.wam import preview as preview_module
from collector.wam.checkpoint import Predictor
from collector.wam.node import InferenceNode, service_config
from collector.wam.preview import WamPreview
from collector.wam.surprise import surprise_summary
from tests.waiting import wait_for

from tests.collector.test_wam import tiny_checkpoint

SMALL_CAMERA = {"width": 160, "height": 120}


@pytest.fixture
def device_nodes():
    runtime = new_runtime_dir()
    epoch = time.time_ns()
    bases = {"cam0": default_endpoint(runtime, "cam0"), "glove": default_endpoint(runtime, "glove")}
    procs = [subprocess.Popen([sys.executable, "-m", "devices", "sim_camera", "--name", "cam0",
                               "--endpoint", bases["cam0"], "--options",
                               json.dumps({"epoch_ns": epoch, **SMALL_CAMERA})]),
             subprocess.Popen([sys.executable, "-m", "devices", "sim_glove", "--name", "glove",
                               "--endpoint", bases["glove"], "--options", json.dumps({"epoch_ns": epoch})])]
    try:
        for base in bases.values():
            wait_for(lambda b=base: _answers(b))
        yield runtime, bases
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def _answers(base):
    try:
        return request(node_endpoints(base).ctl, "ping", timeout_s=0.5).get("ok")
    except TimeoutError:
        return False


def test_node_publishes_predictions_of_live_frames_and_the_preview_follows(device_nodes, tmp_path,
                                                                           monkeypatch):
    runtime, bases = device_nodes
    predictor = Predictor.from_file(tiny_checkpoint(tmp_path / "tiny.pt"))
    endpoint = default_endpoint(runtime, "wam")
    node = InferenceNode("wam", endpoint, bases, predictor, rate_hz=8.0)
    thread = threading.Thread(target=node.run, daemon=True)
    monkeypatch.setattr(preview_module, "DEAD_AFTER_S", 1.5)
    preview = WamPreview(endpoint)
    try:
        thread.start()
        state = wait_for(lambda: (s := preview.state()).available and s)
        p = state.prediction
        assert p.frames.shape == (4, 32, 32, 3) and p.actions.shape == (4, 8)
        assert p.horizons_s.tolist() == [0.125, 0.25, 0.375, 0.5]
        # Tagged with the camera frame it was predicted from, which is recent.
        assert 0 < p.source_seq and 0 <= state.age_s < 2.0
        # The simulated camera is calibrated: the predicted wrist lands inside its image.
        u, v = p.hand_uv[0]
        assert 0 <= u < SMALL_CAMERA["width"] and 0 <= v < SMALL_CAMERA["height"]
        # Once predictions come due, surprise scores follow (the step nearest 1 s: 0.5 s here).
        state = wait_for(lambda: len((s := preview.state()).trace_score) >= 2 and s)
        assert np.all((state.trace_score >= 0) & (state.trace_score <= 1))
        status = request(node_endpoints(endpoint).ctl, "status")
        assert status["state"] == "running" and status["camera"] == "cam0/color"
        assert status["action_stream"] == "glove/hand" and status["predictions"] >= 1
    finally:
        node.stop()
        thread.join(5)
        node.close()
    # The node is gone: the preview says so instead of showing a stale prediction.
    state = wait_for(lambda: not (s := preview.state()).available and s, timeout_s=10)
    assert "not responding" in state.reason
    preview.close()


def test_preview_without_a_node_says_why():
    state = WamPreview(None, unavailable_reason="the WAM preview is off").state()
    assert not state.available and state.reason == "the WAM preview is off"


def test_supervisor_starts_the_node_and_the_episode_records_its_surprise(tmp_path):
    config = sim_config(seed=2)
    config.nodes[0].options.update(SMALL_CAMERA)
    config.recording.output = tmp_path / "rec"
    config.services.append(service_config(checkpoint=str(tiny_checkpoint(tmp_path / "tiny.pt"))))
    with Session(config) as session:
        supervisor = session.supervisor
        assert supervisor.service_endpoints["wam"] and "wam" not in supervisor.service_errors
        preview = WamPreview(supervisor.service_endpoints["wam"], options=config.services[0].options)
        session.start_episode()
        time.sleep(3.0)
        result = session.stop_episode()
        assert preview.state().available and preview.state().prediction.frames.shape == (4, 32, 32, 3)
        preview.close()
    with open_episode(result["path"]) as episode:
        assert episode.streams["wam/surprise"].kind == "state"
        assert episode.count("wam/surprise") >= 3
        scores = episode.frames("wam/surprise", "score")
        assert scores.shape == (episode.count("wam/surprise"),) and np.all(scores >= 0)
        # Each compared camera frame is scored once, in order.
        assert np.all(np.diff(episode.frames("wam/surprise", "frame_seq")) > 0)
        summary = surprise_summary(episode)
        assert summary["stream"] == "wam/surprise" and summary["count"] == episode.count("wam/surprise")
        assert summary["max"] == pytest.approx(scores.max()) and 0 <= summary["peak_t_s"] < 10
        # The live skill is recorded with the episode (NaN until enough predictions were scored).
        assert episode.frames("wam/surprise", "skill_db").shape == scores.shape
        assert np.isfinite(summary["skill_db"])


def test_a_broken_checkpoint_costs_only_the_preview(tmp_path):
    config = sim_config(seed=2)
    config.nodes[0].options.update(SMALL_CAMERA)
    config.recording.output = tmp_path / "rec"
    config.services.append(service_config(checkpoint=str(tmp_path / "missing.pt")))
    with Session(config) as session:
        assert "wam" not in session.supervisor.service_endpoints
        error = session.supervisor.service_errors["wam"]
        assert "missing.pt: no such file" in error
        state = WamPreview(None, unavailable_reason=error).state()
        assert not state.available and "missing.pt: no such file" in state.reason
        session.start_episode()
        time.sleep(0.5)
        result = session.stop_episode()
    with open_episode(result["path"]) as episode:
        assert "wam/surprise" not in episode.streams and episode.count("cam0/color") > 5
        assert surprise_summary(episode) is None


def test_an_old_wam_table_is_read_as_a_service(tmp_path):
    # Configs written before [[services]] keep working: [wam] becomes the WAM service entry.
    path = tmp_path / "old.toml"
    path.write_text('[[nodes]]\nname = "cam0"\ndriver = "sim_camera"\n\n'
                    '[wam]\nenabled = true\nrate_hz = 5.0\ncamera = "cam0/color"\n')
    config = load_config(path)
    assert config.services == [service_config(rate_hz=5.0, camera="cam0/color")]
    path.write_text('[wam]\nenabled = false\ncheckpoint = "x.pt"\n')
    assert load_config(path).services == [service_config(checkpoint="x.pt", enabled=False)]
    path.write_text('[wam]\nenabeld = true\n')
    with pytest.raises(ConfigError, match="wam: unknown option 'enabeld'"):
        load_config(path)


def test_service_entries_load_and_their_options_are_checked_before_start(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text('[[nodes]]\nname = "cam0"\ndriver = "sim_camera"\n\n'
                    '[[services]]\nname = "wam"\nmodule = "collector.wam.node"\n'
                    'preview = "collector.wam.preview:WamPreview"\noptions = { rate_hz = 4.0 }\n')
    (service,) = load_config(path).services
    assert service == service_config(rate_hz=4.0)
    assert load_entry_point(service.preview) is WamPreview
    with pytest.raises(ConfigError, match="rate_hz must be 0.5..30"):
        service_config(rate_hz=100.0)
    path.write_text('[[nodes]]\nname = "wam"\ndriver = "sim_camera"\n\n'
                    '[[services]]\nname = "wam"\nmodule = "collector.wam.node"\n')
    with pytest.raises(ConfigError, match="service names must be unique"):
        load_config(path)
