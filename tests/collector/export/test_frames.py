"""Frame reading for exports and EpisodeDataset: each distinct frame once, runs by slices, in the
order asked; resizing close to a plain area filter."""

import cv2
import numpy as np
import pytest

from collector.export.frames import frame_runs, read_frames, resize_image
from collector.storage import open_episode
from tests.collector.sim_episodes import write_sim_episode


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    return {enc: write_sim_episode(folder / f"{enc}.h5", seed=7, seconds=1.0, color_encoding=enc)
            for enc in ("raw", "jpeg")}


class CallLog:
    """An episode reader that records the index of every ``frames`` call."""

    def __init__(self, episode):
        self.episode, self.calls = episode, []

    def frames(self, stream, field, index):
        self.calls.append(index)
        return self.episode.frames(stream, field, index)


def test_frame_runs_group_distinct_consecutive_frames():
    assert frame_runs(np.array([9, 3, 4, 4, 5, 12, 11])) == [(3, 6), (9, 10), (11, 13)]
    assert frame_runs(np.array([], np.int64)) == []


@pytest.mark.parametrize("encoding", ["raw", "jpeg"])
def test_scattered_repeated_frames_come_back_in_order_each_read_once_by_slices(episodes, encoding):
    wanted = np.array([5, 3, 4, 4, 9, 20, 7, 3])
    with open_episode(episodes[encoding]) as ep:
        reader = CallLog(ep)
        got = read_frames(reader, "cam0/color", "rgb", wanted)
        one_by_one = np.stack([ep.frames("cam0/color", "rgb", int(i)) for i in wanted])
    np.testing.assert_array_equal(got, one_by_one)
    assert reader.calls == [slice(3, 6), slice(7, 8), slice(9, 10), slice(20, 21)]


def test_an_empty_selection_reads_nothing(episodes):
    with open_episode(episodes["raw"]) as ep:
        got = read_frames(ep, "cam0/color", "rgb", np.array([], np.int64))
        assert got.shape == (0, *ep.frames("cam0/color", "rgb", 0).shape)


def test_resizing_stays_an_area_average():
    rng = np.random.default_rng(0)
    # A smooth image with one hard edge, like a rendered scene.
    y, x = np.mgrid[0:480, 0:640]
    image = np.stack([(x * 255 // 640), (y * 255 // 480), np.where(x > 300, 200, 30)], -1)
    image = np.clip(image + rng.integers(-3, 4, image.shape), 0, 255).astype(np.uint8)
    area = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)
    fast = resize_image(image, (224, 224))
    assert fast.shape == area.shape
    assert np.abs(fast.astype(int) - area.astype(int)).mean() < 1.0
    # Exactly half: the same as the plain area filter; enlarging: bilinear.
    np.testing.assert_array_equal(resize_image(image, (320, 240)),
                                  cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA))
    small = image[:48, :64]
    np.testing.assert_array_equal(resize_image(small, (128, 96)),
                                  cv2.resize(small, (128, 96), interpolation=cv2.INTER_LINEAR))
