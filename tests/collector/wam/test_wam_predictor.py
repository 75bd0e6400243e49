"""The predictor interface: a lab's model loaded by name runs in the node; wrong answers are
refused and counted; checkpoints swap into the running node atomically, or are refused."""

import pytest
import torch

from collector.wam.checkpoint import Checkpoint, Predictor
from collector.wam.model import WamConfig, WorldActionModel
from collector.wam.node import InferenceNode, WamOptions
from collector.wam.predictor import ENTRY_POINT_GROUP, load_predictor
from collector.wam.preview import WamPreview
from collector.wire.bus import default_endpoint, new_runtime_dir, node_endpoints, request
from collector.wire.options import ConfigError, from_mapping
from tests.collector.test_wam import TINY, tiny_checkpoint
from tests.collector.wam.live_inputs import StandInStation, WrongShapePredictor
from tests.waiting import wait_for

TOY = "tests.collector.wam.live_inputs:make_toy"


@pytest.fixture
def station():
    runtime = new_runtime_dir()
    base = default_endpoint(runtime, "station")
    stand_in = StandInStation(base)
    yield runtime, {"station": base}
    stand_in.close()


def _node(runtime, bases, predictor):
    return InferenceNode("wam", default_endpoint(runtime, "wam"), bases, predictor, rate_hz=8.0)


def test_a_predictor_named_in_the_config_runs_in_the_node_and_its_predictions_are_shown(station):
    runtime, bases = station
    predictor = load_predictor(TOY, {"shift": 3})
    node = _node(runtime, bases, predictor)
    preview = WamPreview(default_endpoint(runtime, "wam"))
    try:
        state = wait_for(lambda: node.step() and (s := preview.state()).available and s)
        assert predictor.calls >= 1
        p = state.prediction
        assert p.frames.shape == (3, 16, 16, 3) and p.actions.shape == (3, 4)
        assert p.horizons_s.tolist() == [0.25, 0.5, 1.0]
        # The toy's answer as it made it: the newest frame (a dark scene, a bright bar resized
        # into a grey one) brightened by 3.
        assert p.frames.min() == 3 and p.frames.max() > 100
        status = request(node_endpoints(default_endpoint(runtime, "wam")).ctl, "status")
        assert status["predictor"].endswith("ToyPredictor") and status["checkpoint"] is None
    finally:
        preview.close()
        node.close()


def test_a_predictor_installed_as_an_entry_point_is_found_by_its_name(monkeypatch):
    from importlib.metadata import EntryPoint

    from collector.wam import predictor as predictor_module

    installed = [EntryPoint("toy-wam", TOY, ENTRY_POINT_GROUP)]
    monkeypatch.setattr(predictor_module, "entry_points", lambda group, name=None: [
        e for e in installed if e.group == group and name in (None, e.name)])
    toy = load_predictor("toy-wam", {"shift": 2})
    assert toy.shift == 2 and toy.spec.horizons_s == (0.25, 0.5, 1.0)
    with pytest.raises(ConfigError, match="installed: toy-wam"):
        load_predictor("big-wam")


def test_unknown_or_unfit_predictors_are_refused_with_what_was_looked_for():
    with pytest.raises(ConfigError, match=ENTRY_POINT_GROUP):
        load_predictor("no-such-predictor")
    with pytest.raises(ConfigError, match="has no PredictorSpec"):
        load_predictor("builtins:dict")
    with pytest.raises(ConfigError, match="unexpected keyword"):
        load_predictor(TOY, {"weights": "big.pt"})
    with pytest.raises(ConfigError, match="cannot import"):
        load_predictor("no_such_package.models:load")
    with pytest.raises(ConfigError, match="predictor_options"):
        from_mapping(WamOptions, {"checkpoint": "a.pt", "predictor": TOY})
    with pytest.raises(ConfigError, match="predictor_options need a predictor"):
        from_mapping(WamOptions, {"predictor_options": {"shift": 1}})


def test_a_predictor_answering_off_its_spec_is_refused_counted_and_never_published(station):
    runtime, bases = station
    node = _node(runtime, bases, WrongShapePredictor())
    try:
        wait_for(lambda: node.step() or node.bad_predictions)
        wait_for(lambda: node.step() or node.bad_predictions >= 2)
        assert node.predictions == 0
        status = node.status()
        assert status["state"] == "error" and "the spec says uint8 (3, 16, 16, 3)" in status["message"]
        assert status["bad_predictions"] >= 2
    finally:
        node.close()


def _trained_elsewhere(path, seed, **overrides):
    config = WamConfig(**{**TINY, **overrides}, action_dim=8)
    torch.manual_seed(seed)  # distinct weights
    ckpt = Checkpoint.load(tiny_checkpoint(path))
    ckpt.config = config
    ckpt.state_dict = WorldActionModel(config).state_dict()
    ckpt.report = {"train_episodes": ["a.h5", "b.h5"],
                   "validation": {"psnr_1s": 30.0, "psnr_1s_copy_last": 29.0}}
    ckpt.save(path)
    return str(path)


def test_a_checkpoint_swaps_into_the_running_node_and_an_unfit_one_is_refused(tmp_path):
    runtime = new_runtime_dir()
    first = Predictor.from_file(tiny_checkpoint(tmp_path / "first.pt"))
    node = InferenceNode("wam", default_endpoint(runtime, "wam"), {}, first)
    ctl = node_endpoints(default_endpoint(runtime, "wam")).ctl
    try:
        better = _trained_elsewhere(tmp_path / "better.pt", 1)
        assert request(ctl, "swap_checkpoint", path=better)["ok"]
        status = wait_for(lambda: (s := request(ctl, "status"))["swap"]["state"] != "loading" and s)
        assert status["swap"]["state"] == "swapped" and status["checkpoint"] == better
        assert status["trained_on"] == "trained on 2 episodes, +1.0 dB over still frame at +1 s"
        assert node.predictor is not first
        # Another horizon would not fit the declared streams: refused, the running model kept.
        running = node.predictor
        unfit = _trained_elsewhere(tmp_path / "unfit.pt", 2, horizon=3)
        assert request(ctl, "swap_checkpoint", path=unfit)["ok"]
        status = wait_for(lambda: (s := request(ctl, "status"))["swap"]["state"] != "loading" and s)
        assert status["swap"]["state"] == "refused" and "horizons_s differs" in status["swap"]["message"]
        assert node.predictor is running and status["checkpoint"] == better
        assert not node.swap_checkpoint(str(tmp_path / "missing.pt"))
        assert "no such file" in node.swap["message"] and node.predictor is running
        assert request(ctl, "swap_checkpoint")["error"] == "swap_checkpoint needs a checkpoint 'path'"
    finally:
        node.close()


def test_a_plugged_in_predictor_takes_no_checkpoint_swap():
    runtime = new_runtime_dir()
    toy = load_predictor(TOY)
    node = InferenceNode("wam", default_endpoint(runtime, "wam"), {}, toy)
    try:
        reply = request(node_endpoints(default_endpoint(runtime, "wam")).ctl, "swap_checkpoint", path="x.pt")
        assert not reply["ok"] and "plugged-in predictor" in reply["error"]
        assert node.predictor is toy and node.swap["state"] == "none"
    finally:
        node.close()
