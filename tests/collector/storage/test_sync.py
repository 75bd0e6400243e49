"""The synchronized index against timestamps whose nearest matches are known."""

import h5py
import numpy as np
import pytest

from collector.storage.sync import (SKEW_MARGIN_NS, build_sync_index, default_max_skew_ns, fit_device_clock, sync_time_ns,
                            read_sync_group, skew_stats_ms, write_sync_group)

T0 = 1_700_000_000_000_000_000  # realistic epoch ns: beyond float64's exact integers


def brute_force(master, other, max_skew):
    """Nearest by exhaustive search, the earlier sample on a tie."""
    index = np.full(len(master), -1)
    for i, t in enumerate(master):
        d = np.abs(other - t)
        best = d.min() if len(other) else None
        if best is not None and best <= max_skew:
            index[i] = np.flatnonzero(d == best)[np.argmin(other[d == best])]
    return index


def test_identical_clocks_match_one_to_one():
    t = T0 + np.arange(10) * 33_333_333
    index, skew = build_sync_index(t, t.copy(), 1_000_000)
    assert np.array_equal(index, np.arange(10)) and not skew.any()
    assert index.dtype == np.int64 and skew.dtype == np.int64


def test_camera_against_jittery_glove_with_a_dropout():
    rng = np.random.default_rng(3)
    camera = T0 + np.arange(90) * 33_333_333 + rng.integers(-2_000_000, 2_000_000, 90)
    glove = T0 + np.arange(3000) * 1_000_000 + rng.integers(-200_000, 200_000, 3000)
    dropout = (glove > T0 + 1_000_000_000) & (glove < T0 + 1_300_000_000)  # 300 ms lost
    glove = glove[~dropout]
    max_skew = default_max_skew_ns(30, 1000)
    index, skew = build_sync_index(camera, glove, max_skew)
    assert np.array_equal(index, brute_force(camera, glove, max_skew))
    matched = index >= 0
    assert np.array_equal(skew[matched], glove[index[matched]] - camera[matched])
    assert not skew[~matched].any()
    # Frames inside the dropout, further than max_skew from any glove sample, get -1.
    inside = (camera > T0 + 1_000_000_000 + max_skew) & (camera < T0 + 1_300_000_000 - max_skew)
    assert inside.sum() >= 3 and np.all(index[inside] == -1)
    assert np.all(index[~inside & (np.abs(camera - (T0 + 1_150_000_000)) > 200_000_000)] >= 0)
    # Away from the dropout and the ends, a 1 kHz partner is always within ~0.7 ms.
    rel = camera - T0
    dense = ((rel > 5e6) & (rel < 995e6)) | ((rel > 1305e6) & (rel < 2900e6))
    assert np.abs(skew[dense]).max() <= 700_000


def test_glove_master_against_a_slower_camera():
    camera = T0 + np.arange(30) * 33_333_333
    glove = T0 + np.arange(1000) * 1_000_000
    max_skew = default_max_skew_ns(1000, 30)
    index, skew = build_sync_index(glove, camera, max_skew)
    assert np.array_equal(index, brute_force(glove, camera, max_skew))
    within = glove <= camera[-1]  # later glove samples lie past the last frame
    assert np.abs(skew[within]).max() <= 33_333_333 // 2 + 1
    assert np.all(index[glove > camera[-1] + max_skew] == -1)
    assert index[0] == 0 and index[988] == 29 and index[999] == -1
    assert index[16] == 0 and index[17] == 1  # 17 ms is nearer to 33.3 ms than to 0


def test_unsorted_other_and_ties():
    other = np.array([30, 10, 20, 0], dtype=np.int64) + T0
    master = np.array([5, 14, 16, 29, 100], dtype=np.int64) + T0
    index, skew = build_sync_index(master, other, 10)
    # 5 ties between 0 (pos 3) and 10 (pos 1): the earlier wins; 100 is too far.
    assert index.tolist() == [3, 1, 2, 0, -1]
    assert skew.tolist() == [-5, -4, 4, 1, 0]


def test_empty_inputs_and_derived_bound():
    empty = np.zeros(0, np.int64)
    assert build_sync_index(empty, np.arange(3), 5)[0].shape == (0,)
    index, skew = build_sync_index(np.arange(3), empty, 5)
    assert index.tolist() == [-1, -1, -1] and skew.tolist() == [0, 0, 0]
    master = T0 + np.arange(10) * 10_000_000
    other = T0 + np.arange(0, 100_000_000, 1_000_000)
    other = other[(other < T0 + 40_000_000) | (other > T0 + 60_000_000 + SKEW_MARGIN_NS)]
    # None derives half the larger measured period (5 ms) plus the margin: 50 ms is unmatched.
    index, _ = build_sync_index(master, other, None)
    assert index[5] == -1 and (index[np.arange(10) != 5] >= 0).all()


def test_default_bound_is_half_the_larger_period_plus_margin():
    assert default_max_skew_ns(30, 1000) == round(1e9 / 30 / 2) + SKEW_MARGIN_NS
    assert default_max_skew_ns(1000, 30) == default_max_skew_ns(30, 1000)
    assert default_max_skew_ns(200, 200, margin_ns=0) == 2_500_000


def test_skew_stats_ignore_unmatched():
    stats = skew_stats_ms(np.array([-2_000_000, 1_000_000, 0, 0]), np.array([1, 2, -1, 3]))
    assert stats["max_ms"] == 2.0 and stats["p50_ms"] == 1.0 and stats["unmatched"] == 1
    assert np.isnan(skew_stats_ms(np.zeros(2), np.array([-1, -1]))["p50_ms"])


def test_sync_group_round_trip():
    with h5py.File("sync.h5", "w", driver="core", backing_store=False) as f:
        cam = T0 + np.arange(5) * 33_333_333
        glove = T0 + np.arange(200) * 1_000_000 + 300_000
        written = write_sync_group(f, "cam0/color", {"cam0/color": (30.0, cam),
                                                     "glove/hand": (1000.0, glove)})
        written_again = write_sync_group(f, "cam0/color", {"cam0/color": (30.0, cam),
                                                           "glove/hand": (1000.0, glove)})
        read = read_sync_group(f)
        assert read["master"] == "cam0/color" and read["method"] == "nearest"
        assert np.array_equal(read["t_ns"], cam) and list(read["streams"]) == ["glove/hand"]
        glove_sync = read["streams"]["glove/hand"]
        assert glove_sync["index"].tolist() == [0, 33, 66, 100, 133]
        assert np.array_equal(glove_sync["index"], written["streams"]["glove/hand"]["index"])
        assert glove_sync["max_skew_ns"] == read["max_skew_ns"] == default_max_skew_ns(30, 1000)
        assert written_again["t_ns"].size == 5
        del f["sync"]
        assert read_sync_group(f) is None


@pytest.mark.parametrize("master", ["missing/stream", ""])
def test_sync_group_with_an_unknown_master_is_empty(master):
    with h5py.File("sync.h5", "w", driver="core", backing_store=False) as f:
        write_sync_group(f, master, {"a/b": (10.0, np.arange(3))})
        read = read_sync_group(f)
        assert read["t_ns"].size == 0 and read["streams"] == {}


def test_device_clock_fit_recovers_offset_and_drift_through_host_jitter():
    rng = np.random.default_rng(0)
    true = 1_700_000_000_000_000_000 + np.arange(3000, dtype=np.int64) * 5_000_000
    device = 42_000_000_000 + np.rint((true - true[0]) * (1 + 120e-6)).astype(np.int64)
    host = true + rng.integers(200_000, 2_000_000, true.size)  # latency jitter 0.2..2 ms
    fit = fit_device_clock(device, host)
    assert fit is not None and abs(fit["drift_ppm"] - 120) < 2
    mapped = sync_time_ns(device, host, fit)
    error = mapped - true
    # The mapped clock is the true capture time plus the mean latency, with the jitter removed.
    assert abs(np.median(error) - 1_100_000) < 100_000 and np.ptp(error) < 50_000


def test_device_clock_fit_refuses_clocks_that_do_not_explain_host_time():
    host = 1_700_000_000_000_000_000 + np.arange(100, dtype=np.int64) * 33_000_000
    assert fit_device_clock(np.zeros(100, np.int64), host) is None  # no device clock
    reset = np.concatenate([np.arange(50), np.arange(50)]).astype(np.int64) * 33_000_000
    assert fit_device_clock(reset, host) is None
    wrong_units = np.arange(100, dtype=np.int64) * 33_000  # microseconds taken for ns
    assert fit_device_clock(wrong_units, host) is None
    assert np.array_equal(sync_time_ns(wrong_units, host, None), host)
