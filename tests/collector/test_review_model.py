"""The review model headless, on real files: list a folder, filter, select, curate, undo, trash
and restore, as the review window's buttons would, and the events a view draws from."""

import json

import h5py
import pytest

from collector.review.model import ReviewFilter, ReviewModel
from collector.review.synthetic import T0_NS, write_synthetic_episode
from collector.storage.library import sample_checksum
from tests.waiting import wait_for


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "recordings"
    write_synthetic_episode(root / "pick" / "clean.h5", duration_s=3, width=32, height=24,
                            attrs={"task": "pick", "operator": "ana", "outcome": "success"})
    write_synthetic_episode(root / "pick" / "faulty.h5", duration_s=4, width=32, height=24, gap=(2.0, 0.3),
                            attrs={"task": "pick", "operator": "bo"}, start_ns=T0_NS + 10**11)
    write_synthetic_episode(root / "wipe" / "wipe.h5", duration_s=2, width=32, height=24,
                            attrs={"task": "wipe", "operator": "cy", "outcome": "failure"},
                            start_ns=T0_NS + 2 * 10**11)
    clean = root / "pick" / "clean.h5"
    (root / "pick" / "half.h5").write_bytes(clean.read_bytes()[:clean.stat().st_size // 2])
    return root


@pytest.fixture
def model(folder):
    model = ReviewModel(folder)
    events = []
    model.subscribe(lambda name, data: events.append((name, data)))
    model.events = events
    model.scan(wait=True)
    yield model
    model.close()


def names(summaries):
    return [s.name for s in summaries]


def attrs(path):
    with h5py.File(path) as f:
        return {k: f.attrs.get(k) for k in ("outcome", "tags", "notes", "trim")}


def test_scan_runs_in_the_background_and_says_so(folder):
    model = ReviewModel(folder)
    seen = []
    model.subscribe(lambda name, data: seen.append(name))
    assert model.summaries == [] and model.scan()
    wait_for(lambda: "scanned" in seen and not model.scanning, message="background scan")
    assert seen[0] == "scan_started" and seen.count("scan_progress") == 4  # nothing cached yet
    assert names(model.summaries) == ["wipe.h5", "faulty.h5", "clean.h5", "half.h5"]  # newest first
    assert model.tasks == ["pick", "wipe"]
    seen.clear()
    model.scan(wait=True)  # from the cache: no file opened
    assert "scan_progress" not in seen and "scanned" in seen
    assert ReviewModel().scan() is False  # no folder


def test_filter_and_selection(model):
    assert names(model.visible()) == ["wipe.h5", "faulty.h5", "clean.h5", "half.h5"]
    model.set_filter(search="bo pick")
    assert names(model.visible()) == ["faulty.h5"]
    model.set_filter(search="", flagged_only=True)
    assert sorted(names(model.visible())) == ["faulty.h5", "half.h5"]
    model.set_filter(flagged_only=False, outcome="damaged")
    assert names(model.visible()) == ["half.h5"]
    assert model.set_filter(outcome="any outcome", task="wipe") == ReviewFilter(task="wipe")
    assert ("filter", {"filter": ReviewFilter(task="wipe")}) in model.events
    assert model.set_filter(task="", search="any") == ReviewFilter(search="any")  # a word, not "any task"
    model.set_filter(search="", task="wipe")
    with pytest.raises(ValueError):
        model.set_filter(colour="red")
    path = model.get(model.root / "wipe" / "wipe.h5").path
    assert model.select(path).name == "wipe.h5" and model.current.name == "wipe.h5"
    assert model.events[-1] == ("selected", {"summary": model.current})
    model.scan(wait=True)
    assert model.current.name == "wipe.h5"  # the selection survives a rescan
    assert model.select(None) is None and model.current is None


def test_curate_writes_attributes_only_and_undo_takes_each_edit_back(model, folder):
    path = folder / "pick" / "faulty.h5"
    before = sample_checksum(path)
    model.select(path)
    assert model.set_outcome("success").outcome == "success"
    updated = model.curate(tags=["retry", "occluded"], notes="slow start", trim=[0.5, 3.5])
    assert updated.trim == [0.5, 3.5] and model.current is updated
    written = attrs(path)
    assert written["outcome"] == "success" and json.loads(written["tags"]) == ["retry", "occluded"]
    assert written["notes"] == "slow start" and json.loads(written["trim"]) == [0.5, 3.5]
    assert sample_checksum(path) == before
    kinds = [name for name, _ in model.events]
    assert kinds.count("releasing") == 2 and kinds.count("curated") == 2 and kinds.count("released") == 2
    assert kinds.index("releasing") < kinds.index("curated") < kinds.index("released")
    assert model.can_undo and model.undo_text() == "edit of faulty.h5"

    assert model.undo()  # tags, notes and trim as they were
    written = attrs(path)
    assert written["outcome"] == "success" and json.loads(written["tags"]) == [] and not written["notes"]
    assert written["trim"] is None and model.current.trim is None
    assert model.undo() and model.current.outcome == "unknown" and not model.can_undo
    assert not model.undo()
    assert ReviewModel(folder).scan(wait=True)  # a fresh model reads the edits back (cache)


def test_a_bad_edit_changes_nothing_and_says_why(model, folder):
    model.select(folder / "pick" / "clean.h5")
    assert model.curate(trim=[3.0, 1.0]) is None
    assert attrs(folder / "pick" / "clean.h5")["trim"] is None and not model.can_undo
    error = next(data for name, data in model.events if name == "error")
    assert error["action"] == "Not saved" and "trim" in error["message"]
    model.select(folder / "pick" / "half.h5")
    assert model.set_outcome("success") is None  # a damaged file is not edited
    with pytest.raises(ValueError):
        model.set_outcome("great")


def test_trash_and_undo_puts_the_file_back_and_selects_it(model, folder):
    path = folder / "wipe" / "wipe.h5"
    model.select(path)
    model.set_outcome("success")
    target = model.trash()
    assert target == folder / ".trash" / "wipe.h5" and target.exists() and not path.exists()
    assert model.current is None and "wipe.h5" not in names(model.summaries)
    assert model.trashed() == [target]
    kinds = [name for name, _ in model.events]
    assert kinds.index("selected", kinds.index("releasing")) < kinds.index("trashed")
    assert model.undo_text() == "trash of wipe.h5"
    assert model.undo(wait=True)
    assert path.exists() and not target.exists()
    assert "wipe.h5" in names(model.summaries) and model.current.name == "wipe.h5"
    assert model.undo() and attrs(path)["outcome"] == "failure"  # then the outcome edit

    model.select(folder / "pick" / "half.h5")
    assert model.trash() is not None  # a damaged file may go too
    trashed = model.trashed()[0]
    assert model.restore(trashed, wait=True) == folder / "pick" / "half.h5"
    assert model.current.name == "half.h5"
