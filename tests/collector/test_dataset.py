"""EpisodeDataset: windows checked against the simulated world's ground truth, filters, split,
normalization, DataLoader workers."""

import json

import cv2
import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from collector.dataset import EpisodeDataset
from collector.storage.reader import open_episode
from collector.export.selection import (EpisodeFilter, SelectionError, SignalMapping, load_steps,
                                        split_by_episode)
from tests.collector.sim_episodes import COMMAND_OFFSET, glove_world, write_library, write_sim_episode


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return write_library(tmp_path_factory.mktemp("recordings"))


def true_times(path, stream, clock):
    with open_episode(path) as ep:
        return np.array([clock.true_time_ns(int(t)) for t in ep.timestamps(stream)["t_device_ns"]])


def test_state_and_next_state_action_match_the_worlds_ground_truth(library):
    path = library["plain"]
    world, glove_clock, cam_clock = glove_world(path)
    ds = EpisodeDataset([path], horizon=4, mapping=SignalMapping(action="next"))
    steps = ds.episodes[0]
    assert steps.state_names[:3] == ["glove/hand/wrist_pos.x", "glove/hand/wrist_pos.y",
                                     "glove/hand/wrist_pos.z"]
    frame_t = true_times(path, "cam0/color", cam_clock)[steps.frames["cam0/color"]]
    glove_t = true_times(path, "glove/hand", glove_clock)
    # The glove sample truly nearest each frame, by the simulator's clock model.
    nearest_t = glove_t[np.abs(glove_t[None, :] - frame_t[:, None]).argmin(axis=1)]
    exact, error = [], []
    for k in range(len(steps)):
        item = ds[k]
        state = item["observation.state"][0].numpy()
        truth = world.state_at_ns(int(nearest_t[k]))
        exact.append(np.array_equal(state[:3], truth.wrist_pos.astype(np.float32)))
        # The camera frame's own instant: at most half a glove period (2.5 ms) away.
        error.append(np.abs(state[:3] - world.state_at_ns(int(frame_t[k])).wrist_pos).max())
        # Action chunk: the next steps' wrist positions, padded with the last one at the end.
        for h in range(4):
            row = min(k + 1 + h, len(steps))
            if k + h < len(steps):
                assert not item["action_is_pad"][h]
                next_t = glove_t[np.abs(glove_t - (frame_t[row] if row < len(steps) else
                                                   frame_t[-1] + 33_333_333)).argmin()]
                if row < len(steps):
                    expected = world.state_at_ns(int(next_t)).wrist_pos
                    assert np.abs(item["action"][h, :3].numpy() - expected).max() < 2e-3
            else:
                assert item["action_is_pad"][h]
                assert torch.equal(item["action"][h], item["action"][h - 1])
    assert np.mean(exact) >= 0.95
    assert max(error) < 5e-3  # metres: hand speed x 2.5 ms


def test_command_stream_is_the_default_action(library):
    path = library["command"]
    world, glove_clock, cam_clock = glove_world(path)
    steps = load_steps(path)
    assert steps.action_source == "teleop/command:target_pos,teleop/command:gripper"
    assert steps.action_names[0] == "teleop/command/target_pos.x"
    frame_t = true_times(path, "cam0/color", cam_clock)[steps.frames["cam0/color"]]
    for k in range(0, len(steps), 5):
        truth = world.state_at_ns(int(frame_t[k]))
        assert np.abs(steps.action[k, :3] - (truth.wrist_pos + COMMAND_OFFSET)).max() < 5e-3
        assert abs(steps.action[k, 3] - truth.grip) < 2e-3
    # The same file with the next glove state as action, on request.
    assert load_steps(path, SignalMapping(action="next:glove/hand:grip")).action_names == \
        ["glove/hand/grip.aperture"]


def test_windows_images_are_the_synchronized_frames_resized(library):
    path = library["jpeg"]
    ds = EpisodeDataset([path], n_obs_steps=3, mapping=SignalMapping(image_size=(32, 24)))
    steps = ds.episodes[0]
    item = ds[1]
    images = item["observation.images.cam0"]
    assert images.shape == (3, 3, 24, 32) and images.dtype == torch.float32
    with open_episode(path) as ep:
        rows = [0, 0, 1]  # the window repeats the first step before the episode starts
        for i, row in enumerate(rows):
            frame = ep.frames("cam0/color", "rgb", int(steps.frames["cam0/color"][row]))
            expected = cv2.resize(frame, (32, 24), interpolation=cv2.INTER_AREA)
            got = (images[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            assert np.array_equal(got, expected)
    assert torch.equal(item["observation.state"][0], item["observation.state"][1])


def test_rate_resamples_on_a_uniform_grid(library):
    steps = load_steps(library["plain"], SignalMapping(rate_hz=10))
    assert np.allclose(np.diff(steps.t_s), 0.1, atol=1e-6)
    native = load_steps(library["plain"])
    # Each 10 Hz step shows the 30 fps frame nearest in time: every third one.
    assert np.all(np.abs(np.diff(steps.frames["cam0/color"]) - 3) <= 1)
    assert len(native) > 2.5 * len(steps)


def test_native_rate_uses_the_files_synchronized_index(library):
    path = library["plain"]
    steps = load_steps(path)
    with open_episode(path) as ep:
        index = ep.sync["streams"]["glove/hand"]["index"]
        joints = ep.frames("glove/hand", "wrist_pos")
    assert np.array_equal(steps.state[:, :3], joints[index[steps.frames["cam0/color"]]])


def test_filters_pick_episodes_by_task_outcome_and_tags(library, tmp_path):
    folder = library["plain"].parent.parent
    everything = EpisodeDataset([folder], mapping=SignalMapping(action="next:glove/hand:grip"))
    assert len(everything.episodes) == 4 and not everything.skipped
    cases = [(EpisodeFilter(tasks=["stack"]), {"failure"}),
             (EpisodeFilter(outcomes=["success"]), {"plain", "command", "jpeg"}),
             (EpisodeFilter(tags=["clean", "teleop"]), {"command"}),
             (EpisodeFilter(exclude_tags=["clean"]), {"failure"})]
    for episode_filter, expected in cases:
        ds = EpisodeDataset([folder], episode_filter=episode_filter,
                            mapping=SignalMapping(action="next:glove/hand:grip"))
        assert {e.path.stem for e in ds.episodes} == expected, episode_filter
        assert len(ds.skipped) == 4 - len(expected)


def test_interrupted_and_recovered_episodes_follow_the_quality_filter(library, tmp_path):
    interrupted = tmp_path / "interrupted.h5"
    recovered = write_sim_episode(tmp_path / "recovered.h5", seed=5, seconds=1.0)
    with h5py.File(recovered, "r+") as f:
        f.attrs["status"] = "recovered"
    write_sim_episode(interrupted, seed=6, seconds=1.0)
    with h5py.File(interrupted, "r+") as f:
        f.attrs["status"] = "recording"
    ds = EpisodeDataset([tmp_path])
    assert [e.path for e in ds.episodes] == [recovered]
    assert "interrupted" in ds.skipped[interrupted]
    strict = EpisodeDataset([tmp_path], episode_filter=EpisodeFilter(allow_recovered=False))
    assert not strict.episodes and "recovered" in strict.skipped[recovered]


def test_train_val_split_is_by_episode_disjoint_and_stable(library):
    folder = library["plain"].parent.parent
    kw = dict(mapping=SignalMapping(action="next:glove/hand:grip"), val_fraction=0.25, seed=3)
    train = EpisodeDataset([folder], split="train", **kw)
    val = EpisodeDataset([folder], split="val", **kw)
    train_ids = {e.uuid for e in train.episodes}
    val_ids = {e.uuid for e in val.episodes}
    assert len(val_ids) == 1 and len(train_ids) == 3 and not train_ids & val_ids
    # Adding episodes does not move existing ones to the other side unless ranks shift.
    assert split_by_episode(sorted(train_ids | val_ids), 0.25, 3) == val_ids
    assert split_by_episode(["only"], 0.5) == set()


def test_normalization_uses_the_training_statistics(library):
    folder = library["plain"].parent.parent
    kw = dict(mapping=SignalMapping(action="next:glove/hand:grip"), val_fraction=0.25)
    train = EpisodeDataset([folder], split="train", normalize=True, **kw)
    states = torch.stack([train[i]["observation.state"][0] for i in range(len(train))])
    varying = train.stats["observation.state"]["std"] > 1e-3
    assert torch.allclose(states.mean(0)[varying], torch.zeros(int(varying.sum())), atol=1e-4)
    assert torch.allclose(states.std(0, unbiased=False)[varying], torch.ones(int(varying.sum())),
                          atol=1e-3)
    val = EpisodeDataset([folder], split="val", normalize=True, stats=train.stats, **kw)
    raw = EpisodeDataset([folder], split="val", **kw)
    s = train.stats["action"]
    assert torch.allclose(val[0]["action"], (raw[0]["action"] - torch.from_numpy(s["mean"]))
                          / torch.from_numpy(np.maximum(s["std"], 1e-6)), atol=1e-5)


def test_dataloader_with_two_workers_gives_the_same_samples(library):
    ds = EpisodeDataset([library["plain"], library["jpeg"]], horizon=3,
                        mapping=SignalMapping(image_size=(16, 12)))
    serial = list(DataLoader(ds, batch_size=16, num_workers=0))
    # The parent has used OpenCV's thread pool, as any script that resized an image has: a
    # forked worker that then changed OpenCV's thread count hung for good.
    cv2.setNumThreads(2)
    cv2.resize(np.zeros((960, 1280, 3), np.uint8), (320, 240), interpolation=cv2.INTER_AREA)
    parallel = list(DataLoader(ds, batch_size=16, num_workers=2, timeout=60))
    assert len(serial) == len(parallel)
    for a, b in zip(serial, parallel):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_batch_fetched_at_once_equals_its_samples_one_by_one(library):
    # DataLoader fetches through __getitems__ (frames per episode read and resized once); it
    # must give exactly what dataset[i] gives, windows at the episode start and repeats included.
    ds = EpisodeDataset([library["plain"], library["jpeg"]], horizon=4, n_obs_steps=3,
                        mapping=SignalMapping(image_size=(16, 12)), normalize=True)
    first_of_second = len(ds.episodes[0])
    batch = [0, 1, first_of_second + 2, 5, 0, first_of_second, len(ds) - 1]
    together = ds.__getitems__(batch)
    assert len(together) == len(batch)
    for index, item in zip(batch, together):
        alone = ds[index]
        assert item.keys() == alone.keys()
        for key in item:
            assert torch.equal(item[key], alone[key]), (index, key)
    assert together[0]["observation.images.cam0"].shape == (3, 3, 12, 16)


def test_uint8_images_are_the_float_images_times_255(library):
    as_float = EpisodeDataset([library["jpeg"]], mapping=SignalMapping(image_size=(16, 12)))
    as_uint8 = EpisodeDataset([library["jpeg"]], mapping=SignalMapping(image_size=(16, 12)),
                              uint8_images=True)
    for index in (0, len(as_float) - 1):
        image = as_uint8[index]["observation.images.cam0"]
        assert image.dtype == torch.uint8 and image.shape == (1, 3, 12, 16)
        assert torch.allclose(image.float() / 255, as_float[index]["observation.images.cam0"])


def test_trim_attribute_keeps_only_the_steps_inside(library, tmp_path):
    path = write_sim_episode(tmp_path / "trim.h5", seed=1, attrs={"trim": json.dumps([0.5, 1.5])})
    steps = load_steps(path)
    assert steps.t_s.min() >= 0.5 and steps.t_s.max() <= 1.5
    assert 28 <= len(steps) <= 31


def test_unknown_signals_are_named_in_the_error(library):
    with pytest.raises(SelectionError, match="no stream 'glove/foot'"):
        load_steps(library["plain"], SignalMapping(state=["glove/foot"]))
    with pytest.raises(KeyError, match="no field 'elbow'"):
        load_steps(library["plain"], SignalMapping(action="glove/hand:elbow"))
    with pytest.raises(SelectionError, match="not a color stream"):
        load_steps(library["plain"], SignalMapping(cameras=["cam0/depth"]))
