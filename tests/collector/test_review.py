"""Review core without Qt: summaries and their cache, quality reports, curation, trash, dashboard."""

import json

import h5py
import numpy as np
import pytest

from collector.storage.writer import HDF5EpisodeWriter
from collector.storage.library import parse_trim, sample_checksum as data_checksum, trim_mask, update_episode_attrs
from collector.review import EpisodeCatalog, build_dashboard, summarize_episode
from collector.review.catalog import CACHE_DIR, CACHE_FILE
from collector.review.playback import EpisodePlayback
from collector.review.synthetic import synthetic_specs, write_synthetic_episode, write_synthetic_ledger


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "recordings"
    write_synthetic_episode(root / "pick" / "clean.h5", duration_s=3, attrs={"task": "pick", "operator": "ana"})
    write_synthetic_episode(root / "pick" / "faulty.h5", duration_s=6, idle_start_s=1.5, idle_end_s=1.5,
                            gap=(2.0, 0.3), stall=(3.0, 0.4), disconnect_at_s=4.0, surprise_peaks_s=[3.5],
                            attrs={"task": "pick", "operator": "bo", "outcome": "failure"},
                            start_ns=1_790_000_100_000_000_000)
    source = root / "pick" / "clean.h5"
    (root / "broken").mkdir()
    (root / "broken" / "truncated.h5").write_bytes(source.read_bytes()[:source.stat().st_size // 2])
    (root / "broken" / "not-hdf5.h5").write_bytes(b"this is not an episode")
    return root


def test_summaries_list_damaged_files_with_their_reason(folder):
    by_name = {s.name: s for s in EpisodeCatalog(folder).scan()}
    assert set(by_name) == {"clean.h5", "faulty.h5", "truncated.h5", "not-hdf5.h5"}
    assert by_name["truncated.h5"].flags == ["damaged"] and "truncated" in by_name["truncated.h5"].error
    assert "not an HDF5 file" in by_name["not-hdf5.h5"].error
    clean = by_name["clean.h5"]
    assert clean.ok and clean.task == "pick" and clean.operator == "ana" and clean.flags == []
    assert clean.streams == {"cam0/color": "color", "glove/hand": "state"}
    assert abs(clean.duration_s - 3.05) < 1e-6 and clean.thumbnail


def test_quality_report_finds_each_planted_defect(folder):
    s = summarize_episode(folder / "pick" / "faulty.h5")
    # The glove's 0.3 s gap leaves camera frames without a glove sample: "skew" too.
    assert s.flags == ["disconnect", "drops", "idle-end", "idle-start", "skew", "stalls"]
    q = s.quality
    glove, camera = q["streams"]["glove/hand"], q["streams"]["cam0/color"]
    assert glove["gaps"] == 1 and glove["missing"] == 60 and glove["gap_times_s"] == [pytest.approx(2.3, abs=0.01)]
    assert glove["stalls"] == []  # lost samples are a drop, not a stall
    assert camera["gaps"] == 0 and len(camera["stalls"]) == 1
    assert camera["stalls"][0]["t_s"] == pytest.approx(2.99, abs=0.02)
    assert camera["stalls"][0]["duration_s"] == pytest.approx(0.43, abs=0.02)
    assert q["disconnects"] == [{"t_s": pytest.approx(4.0), "stream": "", "node": "glove"}]
    assert q["idle"]["start_s"] == pytest.approx(1.5, abs=0.15)
    assert q["idle"]["end_s"] == pytest.approx(1.5, abs=0.15)
    skew = q["streams"]["glove/hand"]["skew"]
    assert 7 <= skew["unmatched_inside"] <= 10
    assert skew["frames"] == camera["count"] and sum(skew["histogram"]) == skew["frames"] - skew["unmatched"]
    assert s.surprise_stream == "wam/surprise"


def test_duration_outliers_are_flagged_within_their_task(tmp_path):
    for i, duration in enumerate([2.0, 2.1, 2.2, 1.9, 2.0, 6.0]):
        write_synthetic_episode(tmp_path / f"ep{i}.h5", duration_s=duration, width=32, height=24,
                                attrs={"task": "wipe"}, start_ns=1_790_000_000_000_000_000 + i * 10**10)
    flagged = {s.name for s in EpisodeCatalog(tmp_path).scan() if "duration-outlier" in s.flags}
    assert flagged == {"ep5.h5"}


def test_cache_is_used_until_a_file_changes(folder, monkeypatch):
    first = EpisodeCatalog(folder).scan()
    cache = json.loads((folder / CACHE_DIR / CACHE_FILE).read_text())
    assert len(cache["entries"]) == 4
    opened = []
    import collector.review.catalog as catalog_module
    real = catalog_module.summarize_episode
    monkeypatch.setattr(catalog_module, "summarize_episode", lambda p, *a: opened.append(p) or real(p, *a))
    again = EpisodeCatalog(folder).scan()
    assert opened == [] and [s.to_dict() for s in again] == [s.to_dict() for s in first]
    clean = folder / "pick" / "clean.h5"
    with h5py.File(clean, "r+") as f:  # someone else edits the file: its entry is stale
        f.attrs["operator"] = "cy"
    refreshed = {s.name: s for s in EpisodeCatalog(folder).scan()}
    assert opened == [clean] and refreshed["clean.h5"].operator == "cy"


def test_curation_survives_reopening_and_never_touches_samples(folder):
    path = folder / "pick" / "faulty.h5"
    before = data_checksum(path)
    catalog = EpisodeCatalog(folder)
    catalog.scan()
    events = []
    catalog.observers.append(lambda event, payload: events.append(event))
    updated = catalog.curate(path, outcome="success", tags=["retry", " occluded "], notes="late grasp",
                             trim=[1.4, 4.9])
    assert (updated.outcome, updated.tags, updated.notes, updated.trim) == \
        ("success", ["retry", "occluded"], "late grasp", [1.4, 4.9])
    assert events == ["curated"]
    assert data_checksum(path) == before
    reopened = {s.name: s for s in EpisodeCatalog(folder).scan()}["faulty.h5"]  # from the cache
    fresh = summarize_episode(path)  # from the file itself
    for s in (reopened, fresh):
        assert (s.outcome, s.tags, s.notes, s.trim) == ("success", ["retry", "occluded"], "late grasp", [1.4, 4.9])
    assert reopened.quality == fresh.quality
    catalog.curate(path, trim=None)
    assert summarize_episode(path).trim is None and data_checksum(path) == before


def test_bad_curation_values_change_nothing(folder):
    path = folder / "pick" / "clean.h5"
    with h5py.File(path) as f:
        attrs = dict(f.attrs)
    mtime = path.stat().st_mtime_ns
    for bad in ({"outcome": "great"}, {"trim": [5, 2]}, {"trim": [-1, 2]}, {"tags": "a,b"},
                {"uuid": "x"}, {"outcome": "success", "trim": "nonsense"}):
        with pytest.raises(ValueError):
            update_episode_attrs(path, **bad)
    assert path.stat().st_mtime_ns == mtime
    with h5py.File(path) as f:
        assert dict(f.attrs).keys() == attrs.keys()


def test_an_interrupted_recording_cannot_be_curated(tmp_path):
    path = tmp_path / "live.h5"
    writer = HDF5EpisodeWriter(path, synthetic_specs(32, 24))
    writer.abort()  # status stays "recording"
    with pytest.raises((ValueError, OSError), match="recording|recover"):
        update_episode_attrs(path, outcome="success")
    s = summarize_episode(path)
    assert s.ok and "interrupted" in s.flags


def test_trim_mask_selects_the_kept_samples():
    t0 = 1_000_000_000_000
    t = t0 + np.arange(0, 5_000_000_000, 500_000_000)
    assert trim_mask(t, t0, None).all()
    assert trim_mask(t, t0, "[1.0, 2.5]").nonzero()[0].tolist() == [2, 3, 4, 5]
    assert parse_trim("") is None and parse_trim([0, 1.5]) == (0.0, 1.5)


def test_trash_is_recoverable_and_never_overwrites(folder):
    catalog = EpisodeCatalog(folder)
    catalog.scan()
    clean = folder / "pick" / "clean.h5"
    checksum = data_checksum(clean)
    trashed = catalog.trash(clean)
    assert not clean.exists() and trashed == folder / ".trash" / "clean.h5"
    assert "clean.h5" not in {s.name for s in catalog.scan()}  # the trash is not listed
    write_synthetic_episode(clean, duration_s=1, width=32, height=24)  # same name, another episode
    second = catalog.trash(clean)
    assert second == folder / ".trash" / "clean.1.h5" and trashed.exists()
    restored = catalog.restore(trashed)
    assert restored == clean and data_checksum(restored) == checksum
    assert catalog.trashed() == [second]


def test_dashboard_aggregates_hours_outcomes_and_flags(folder):
    catalog = EpisodeCatalog(folder)
    board = build_dashboard(catalog.scan())
    assert board.total.episodes == 4 and board.total.damaged == 2
    assert board.total.seconds == pytest.approx(3.05 + 6.05)
    assert board.total.success_rate == 0.0 and board.total.flagged_share == 0.5
    assert set(board.by_operator) == {"ana", "bo"} and board.by_task["pick"].episodes == 2
    assert board.flag_counts["drops"] == 1


def test_playback_pairs_frames_and_finds_jump_targets(folder):
    with EpisodePlayback(folder / "pick" / "faulty.h5") as playback:
        assert playback.cameras == ["cam0/color"]
        assert playback.frame_count == len(playback.times_s) > 100
        first = playback.frame(0)
        assert first["cam0/color"].shape == (120, 160, 3)
        glove = playback.series("glove/hand")
        assert set(glove) >= {"wrist_pos", "finger_joints"}
        assert glove["t_s"].shape[0] == glove["wrist_pos"].shape[0]
        marks = playback.markers()
        assert [m.kind for m in marks if m.kind == "gap"] and [m.kind for m in marks if m.kind == "disconnected"]
        peaks = [m for m in marks if m.kind == "surprise"]
        assert peaks and abs(peaks[0].t_s - 3.55) < 0.11
        assert playback.index_at(peaks[0].t_s) == int(np.argmin(np.abs(playback.times_s - peaks[0].t_s)))


def test_no_cache_mode_writes_nothing_into_the_folder(folder):
    listed = EpisodeCatalog(folder, use_cache=False).scan()
    assert len(listed) == 4 and not (folder / CACHE_DIR).exists()


def test_an_interrupted_recording_plays_paired_by_host_time(tmp_path):
    from collector.wire.protocol import Sample

    path = tmp_path / "killed.h5"
    writer = HDF5EpisodeWriter(path, synthetic_specs(32, 24), {"start_time_ns": 10**18})
    for i in range(30):
        t = 10**18 + i * 33_333_333
        writer.append(Sample("cam0", "cam0/color", i, t, t, {"rgb": np.full((24, 32, 3), i, np.uint8)}), t)
        for j in range(7):
            tg = t + j * 5_000_000
            writer.append(Sample("glove", "glove/hand", i * 7 + j, tg, tg, {
                "wrist_pos": np.zeros(3, np.float32), "finger_joints": np.zeros(5, np.float32),
                "grip": np.zeros(1, np.float32)}), tg)
    writer.abort()  # never finalized: no /sync, status "recording"
    with EpisodePlayback(path) as playback:
        assert playback.episode.sync is None and playback.frame_count == 30
        assert int(playback.frame(12)["cam0/color"][0, 0, 0]) == 12
        assert playback.times_s[1] == pytest.approx(0.0333, abs=1e-3)


def test_integrity_problems_are_listed_in_words_and_flagged(tmp_path):
    # The camera stops 1.5 s before the stop and 45 of its frames never arrived: the summary
    # says so in the ledger's words; a clean ledger says nothing; a failed recording is failed.
    short = write_synthetic_episode(tmp_path / "short.h5", duration_s=4, stall=(2.5, 2.0))
    write_synthetic_ledger(short, undrained={"cam0/color": 45})
    clean = write_synthetic_episode(tmp_path / "clean.h5", duration_s=4, start_ns=1_790_000_100_000_000_000)
    write_synthetic_ledger(clean)
    failed = write_synthetic_episode(tmp_path / "failed.h5", duration_s=4, start_ns=1_790_000_200_000_000_000)
    write_synthetic_ledger(failed, failed="the receiver thread died")
    by_name = {s.name: s for s in EpisodeCatalog(tmp_path).scan()}
    assert by_name["short.h5"].integrity == ["cam0/color: 45 samples missing (45 tail not drained)",
                                             "cam0/color: last 1.6 s missing"]
    assert "incomplete" in by_name["short.h5"].flags and "failed" not in by_name["short.h5"].flags
    assert by_name["clean.h5"].integrity == [] and by_name["clean.h5"].flags == []
    assert by_name["failed.h5"].integrity == ["the recording failed: the receiver thread died"]
    assert "failed" in by_name["failed.h5"].flags and by_name["failed.h5"].status == "failed"
    # The cached summaries say the same.
    cached = {s.name: s for s in EpisodeCatalog(tmp_path).scan()}
    assert cached["short.h5"].integrity == by_name["short.h5"].integrity
