"""One train/validation split for the whole app: WAM training and exports hold out the same episodes."""

import numpy as np
import pytest

from collector.export import selection
from collector.storage import library
from collector.storage.writer import HDF5EpisodeWriter
from collector.wam.data import DatasetError, split_by_episode as wam_split
from collector.wire.protocol import Sample
from collector.wire.streams import FieldSpec, StreamSpec

SPEC = StreamSpec("glove/hand", "state", 100, [FieldSpec("q", "<f4", (3,))])


def episode(path, uuid):
    with HDF5EpisodeWriter(path, [SPEC], {"uuid": uuid}) as w:
        w.append(Sample("glove", "hand", 0, 1, 1, {"q": np.zeros(3, np.float32)}), 1)
    return path


def test_exports_and_the_wam_use_one_split_rule():
    assert selection.split_by_episode is library.split_by_episode


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_wams_held_out_episodes_are_the_exports_held_out_episodes(tmp_path, seed):
    uuids = [f"{i:032x}" for i in range(1, 13)]
    # File names sort differently from the uuids: the split must not depend on paths.
    paths = [episode(tmp_path / f"{99 - i:02d}.h5", u) for i, u in enumerate(uuids)]
    train, val = wam_split(paths, 0.25, seed)
    export_val = library.split_by_episode(uuids, 0.25, seed)
    by_path = dict(zip(paths, uuids))
    assert {by_path[p] for p in val} == export_val
    assert {by_path[p] for p in train} == set(uuids) - export_val
    # Renaming or moving files changes nothing: the rule is by uuid.
    moved = [episode(tmp_path / "moved" / f"e{i}.h5", u) for i, u in enumerate(uuids)]
    _, val_moved = wam_split(moved, 0.25, seed)
    assert {dict(zip(moved, uuids))[p] for p in val_moved} == export_val


def test_the_split_is_stable_when_recordings_are_added():
    uuids = [f"ep-{i}" for i in range(40)]
    before = library.split_by_episode(uuids[:20], 0.2, 3)
    after = library.split_by_episode(uuids, 0.2, 3)
    assert len(before) == 4 and len(after) == 8
    assert len(before - after) <= 2


def test_the_wam_needs_two_episodes(tmp_path):
    with pytest.raises(DatasetError):
        wam_split([episode(tmp_path / "a.h5", "a" * 32)], 0.5)
