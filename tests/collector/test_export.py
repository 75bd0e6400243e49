"""Exports read back by readers written strictly against each target's published layout.

robomimic and LeRobot cannot be installed in the test extra (both pull another torch), and ACT
is not a package: the readers below check what their loaders read (robomimic's SequenceDataset,
ACT's EpisodicDataset/get_norm_stats, LeRobot v3.0's metadata, parquet and video decoding).
"""

import hashlib
import json
import os

import av
import cv2
import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collector.cli import main
from collector.storage.reader import open_episode
from collector.export import common
from collector.export.aloha import export_aloha
from collector.export.common import ExportError
from collector.export.lerobot import export_lerobot
from collector.export.robomimic import export_robomimic
from collector.export.selection import SignalMapping, load_steps
from tests.collector.sim_episodes import write_library, write_sim_episode

GRIP = SignalMapping(action="next:glove/hand:wrist_pos,grip")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return write_library(tmp_path_factory.mktemp("recordings"))


@pytest.fixture(scope="module")
def folder(library):
    return library["plain"].parent.parent


def digest(paths):
    return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in paths}


def resized(path, steps, size):
    with open_episode(path) as ep:
        frames = ep.frames("cam0/color", "rgb", steps.frames["cam0/color"])
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]) \
        if size else frames


def test_robomimic_layout_as_sequence_dataset_reads_it(library, folder, tmp_path):
    before = digest(library.values())
    out = tmp_path / "demo.hdf5"
    mapping = SignalMapping(action=GRIP.action, image_size=(32, 24))
    result = export_robomimic([folder], out, mapping=mapping, val_fraction=0.25, show_progress=False)
    assert digest(library.values()) == before  # the recordings are untouched
    with h5py.File(out, "r") as f:
        env = json.loads(f["data"].attrs["env_args"])
        assert set(env) == {"env_name", "type", "env_kwargs"} and env["type"] == 2
        demos = sorted(f["data"].keys(), key=lambda d: int(d[5:]))
        assert demos == [f"demo_{i}" for i in range(4)]
        train = [d.decode() for d in f["mask/train"][:]]
        valid = [d.decode() for d in f["mask/valid"][:]]
        assert sorted(train + valid, key=lambda d: int(d[5:])) == demos and len(valid) == 1
        assert f["data"].attrs["total"] == sum(f[f"data/{d}"].attrs["num_samples"] for d in demos)
        for d in demos:
            g = f[f"data/{d}"]
            n = g.attrs["num_samples"]
            assert set(g["obs"]) == set(g["next_obs"]) == {
                "cam0_image", "glove_wrist_pos", "glove_wrist_quat", "glove_finger_joints",
                "glove_grip", "glove_pressure", "glove_imu_gyro", "glove_imu_accel"}
            assert g["actions"].shape == (n, 4) and g["actions"].dtype == np.float32
            assert g["rewards"].shape == g["dones"].shape == (n,)
            assert g["dones"][-1] == 1 and g["dones"][:-1].sum() == 0
            assert g["rewards"][-1] == (1.0 if g.attrs["outcome"] == "success" else 0.0)
            image = g["obs/cam0_image"]
            assert image.dtype == np.uint8 and image.shape == (n, 24, 32, 3)
            for key in g["obs"]:
                assert np.array_equal(g["next_obs"][key][:-1], g["obs"][key][1:]), key
            steps = load_steps(g.attrs["source"], mapping)
            scale, offset = f["data"].attrs["action_scale"], f["data"].attrs["action_offset"]
            assert np.allclose(g["actions"][:] * scale + offset, steps.action, atol=1e-6)
            assert np.array_equal(g["obs/glove_wrist_pos"][:], steps.state[:, :3])
            assert np.array_equal(image[:], resized(g.attrs["source"], steps, (32, 24)))
    assert result.episodes == 4 and result.steps == sum(
        load_steps(p, mapping).__len__() for p in library.values())


def test_aloha_files_load_as_act_reads_them(library, folder, tmp_path):
    out = tmp_path / "act"
    export_aloha([folder], out, mapping=GRIP, episode_len="max", show_progress=False)
    files = sorted(out.glob("episode_*.hdf5"))
    assert [f.name for f in files] == [f"episode_{i}.hdf5" for i in range(4)]
    qpos, actions = [], []
    for path in files:
        with h5py.File(path, "r") as root:  # as ACT's EpisodicDataset.__getitem__
            assert root.attrs["sim"] is np.False_ or root.attrs["sim"] == False  # noqa: E712
            episode_len = root["/action"].shape[0]
            start_ts = episode_len // 2
            assert root["/observations/qpos"][start_ts].shape == (34,)
            assert root["/observations/qvel"][start_ts].shape == (34,)
            image = root["/observations/images/cam0"][start_ts]
            assert image.shape == (48, 64, 3) and image.dtype == np.uint8
            assert root["/action"].dtype == np.float32
            qpos.append(root["/observations/qpos"][()])
            actions.append(root["/action"][()])
            n = int(root.attrs["original_length"])
            steps = load_steps(root.attrs["source"], GRIP)
            # One step earlier than the selection's action: ACT (sim=False) reads from t - 1.
            assert root.attrs["act_lookback_shift"] == 1
            assert np.array_equal(root["/action"][:n - 1], steps.action[1:])
            assert np.array_equal(root["/action"][n - 1], steps.action[-1])
            # Padding repeats the last step.
            assert (root["/action"][n:] == steps.action[-1]).all()
            assert np.array_equal(root["/observations/images/cam0"][n - 1],
                                  root["/observations/images/cam0"][-1])
            # qvel is the time derivative of qpos (central differences on the step times).
            expected = np.gradient(steps.state.astype(np.float64), steps.t_s, axis=0)
            assert np.allclose(root["/observations/qvel"][:n], expected, rtol=1e-4, atol=1e-4)
    # ACT's get_norm_stats stacks every episode: one length.
    assert np.stack(qpos).shape[:2] == np.stack(actions).shape[:2] == (4, max(len(a) for a in actions))
    manifest = json.loads((out / "steps.json").read_text())
    assert manifest["action_names"] == [f"glove/hand/wrist_pos.{c}" for c in "xyz"] + \
        ["glove/hand/grip.aperture"]


def test_aloha_episode_len_min_cuts_and_number_is_exact(folder, tmp_path):
    export_aloha([folder], tmp_path / "min", mapping=GRIP, episode_len="min", show_progress=False)
    export_aloha([folder], tmp_path / "n", mapping=GRIP, episode_len=10, show_progress=False)
    lengths = [h5py.File(p, "r")["/action"].shape[0] for p in sorted((tmp_path / "min").glob("*.hdf5"))]
    assert len(set(lengths)) == 1
    assert all(h5py.File(p, "r")["/action"].shape[0] == 10 for p in (tmp_path / "n").glob("*.hdf5"))
    with pytest.raises(ExportError, match="episode length"):
        export_aloha([folder], tmp_path / "bad", mapping=GRIP, episode_len="longest")


@pytest.mark.parametrize("vcodec", ["libsvtav1", "h264"])
def test_lerobot_v3_dataset_reads_back_strictly(library, folder, tmp_path, vcodec):
    before = digest(library.values())
    out = tmp_path / "lerobot"
    result = export_lerobot([folder], out, mapping=GRIP, vcodec=vcodec, robot_type="glove",
                            show_progress=False)
    assert digest(library.values()) == before
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 30
    assert info["total_episodes"] == 4 and info["total_frames"] == result.steps
    assert info["total_tasks"] == 2 and info["splits"] == {"train": "0:4"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert features[key]["shape"] == [1] and features[key]["names"] is None
    video = features["observation.images.cam0"]
    assert video["dtype"] == "video" and video["shape"] == [48, 64, 3]
    assert video["names"] == ["height", "width", "channels"]
    assert video["info"]["video.codec"] == {"libsvtav1": "av1", "h264": "h264"}[vcodec]
    assert features["action"] == {"dtype": "float32", "shape": [4], "names": [
        "glove/hand/wrist_pos.x", "glove/hand/wrist_pos.y", "glove/hand/wrist_pos.z",
        "glove/hand/grip.aperture"]}
    assert all("/" not in key for key in features)  # LeRobot rejects '/' in feature names

    tasks = pd.read_parquet(out / "meta/tasks.parquet")  # as LeRobot's load_tasks
    assert tasks.index.name == "task" and list(tasks.columns) == ["task_index"]
    assert sorted(tasks.index) == ["pick-cube", "stack"]

    data = pq.read_table(out / info["data_path"].format(chunk_index=0, file_index=0))
    assert data.schema.field("observation.state").type == pa.list_(pa.float32(), 34)
    assert data.schema.field("action").type == pa.list_(pa.float32(), 4)
    assert data.schema.field("timestamp").type == pa.float32()
    assert np.array_equal(data["index"].to_numpy(), np.arange(result.steps))

    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    decoded = {}
    for ep in episodes:
        key = "videos/observation.images.cam0"
        path = out / info["video_path"].format(video_key="observation.images.cam0",
                                               chunk_index=ep[f"{key}/chunk_index"],
                                               file_index=ep[f"{key}/file_index"])
        if path not in decoded:
            with av.open(str(path)) as container:
                decoded[path] = [(f.time, f.to_ndarray(format="rgb24"))
                                 for f in container.decode(video=0)]
        frames = decoded[path]
        rows = data.slice(ep["dataset_from_index"], ep["length"])
        assert ep["dataset_to_index"] - ep["dataset_from_index"] == ep["length"]
        assert set(rows["episode_index"].to_pylist()) == {ep["episode_index"]}
        frame_index = rows["frame_index"].to_numpy()
        assert np.array_equal(frame_index, np.arange(ep["length"]))
        assert np.allclose(rows["timestamp"].to_numpy(), frame_index / 30, atol=1e-6)
        assert ep["tasks"][0] == tasks.index[rows["task_index"].to_numpy()[0]]
        assert ep[f"{key}/to_timestamp"] - ep[f"{key}/from_timestamp"] == pytest.approx(ep["length"] / 30)
        steps = load_steps(library[_name(library, ep, episodes)], GRIP)
        assert np.array_equal(np.stack(rows["action"].to_numpy(zero_copy_only=False)), steps.action)
        source = resized(steps.path, steps, None)
        times = np.array([t for t, _ in frames])
        for k in range(0, ep["length"], 7):  # LeRobot's query: from_timestamp + timestamp, 1e-4 s
            query = ep[f"{key}/from_timestamp"] + rows["timestamp"].to_numpy()[k]
            nearest = int(np.abs(times - query).argmin())
            assert abs(times[nearest] - query) < 1e-4
            error = np.abs(frames[nearest][1].astype(float) - source[k]).mean()
            assert error < 12, (k, error)  # lossy video of the same frame
        assert ep["stats/action/count"] == [ep["length"]]
    assert sum(len(f) for f in decoded.values()) == result.steps
    stats = json.loads((out / "meta/stats.json").read_text())
    actions = np.stack(data["action"].to_numpy(zero_copy_only=False))
    assert np.allclose(stats["action"]["mean"], actions.mean(0), atol=1e-5)
    assert np.allclose(stats["action"]["std"], actions.std(0), atol=1e-5)
    assert np.array(stats["observation.images.cam0"]["mean"]).shape == (3, 1, 1)


def _name(library, ep, episodes):
    # Episodes are exported in sorted path order: a/command, a/plain, b/failure, b/jpeg.
    order = sorted(library, key=lambda k: str(library[k]))
    return order[ep["episode_index"]]


def test_lerobot_rolls_over_files_by_size(folder, tmp_path):
    out = tmp_path / "small_files"
    export_lerobot([folder], out, mapping=GRIP, vcodec="h264", data_file_mb=1e-6,
                   video_file_mb=1e-6, show_progress=False)
    assert len(list((out / "data/chunk-000").glob("*.parquet"))) == 4
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["data/file_index"] for e in episodes] == [0, 1, 2, 3]
    assert [e["videos/observation.images.cam0/from_timestamp"] for e in episodes] == [0.0] * 4


def test_lerobot_refuses_odd_image_sizes(folder, tmp_path):
    mapping = SignalMapping(action=GRIP.action, image_size=(33, 24))
    with pytest.raises(ExportError, match="even --image-size"):
        export_lerobot([folder], tmp_path / "odd", mapping=mapping, show_progress=False)
    assert not (tmp_path / "odd").exists()


def test_a_failed_export_leaves_no_output_and_no_partial_files(folder, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("collector.export.aloha.read_images", broken)
    with pytest.raises(OSError, match="disk full"):
        export_aloha([folder], tmp_path / "act", mapping=GRIP, show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_and_reports_errors(library, folder, tmp_path, capsys):
    out = tmp_path / "rm.hdf5"
    argv = ["export", "robomimic", str(folder), "-o", str(out), "-q", "--outcome", "success",
            "--action", "next:glove/hand:grip", "--image-size", "32x24"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 episodes" in printed and "skipped" in printed and "outcome 'failure'" in printed
    assert main(argv) == 1
    assert "exists (use --force" in capsys.readouterr().err
    assert main(argv + ["--force", "--task", "nothing"]) == 1
    assert "no episodes to export" in capsys.readouterr().err
    assert main(["export", "lerobot", str(folder), "-o", str(tmp_path / "x"), "-q",
                 "--state", "glove/foot"]) == 1
    assert "no stream 'glove/foot'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "aloha", str(folder), "-o", str(tmp_path / "y"), "--image-size", "big"])


def test_default_action_needs_every_episode_alike(folder, tmp_path):
    # One episode has a teleop command stream, the others do not: the default action differs.
    with pytest.raises(ExportError, match="action_names differ"):
        export_robomimic([folder], tmp_path / "mixed.hdf5", show_progress=False)
    assert common.check_consistent([]) is None


def tree(root):
    """Every file under ``root`` with its bytes' digest: what a user would find there."""
    return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def recs(tmp_path):
    """A recordings folder of two episodes inside a parent folder that holds an unrelated file."""
    root = tmp_path / "parent" / "recs"
    write_sim_episode(root / "a.h5", seed=1, seconds=0.6)
    write_sim_episode(root / "b.h5", seed=2, seconds=0.6)
    (tmp_path / "parent" / "thesis.txt").write_text("unrelated work\n")
    return root


@pytest.mark.parametrize("fmt", ["lerobot", "robomimic", "aloha"])
def test_an_export_into_its_own_input_is_refused_even_with_force(recs, fmt, capsys):
    parent = recs.parent
    before = tree(parent)
    for out in (recs, parent, recs / "out", recs / "a.h5"):
        code = main(["export", fmt, str(recs), "-o", str(out), "-q", "--force"])
        err = capsys.readouterr().err
        assert code != 0, (fmt, out)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "refusing" in err and "input" in err, err
        assert tree(parent) == before, (fmt, out)  # nothing deleted, nothing written
    # An episode file given as the input: an output folder holding it is refused as well.
    assert main(["export", fmt, str(recs / "a.h5"), "-o", str(recs), "-q", "--force"]) != 0
    assert "refusing" in capsys.readouterr().err
    assert tree(parent) == before


@pytest.mark.parametrize("fmt, name", [("lerobot", "lr"), ("robomimic", "rm.hdf5"), ("aloha", "act")])
def test_force_replaces_only_a_previous_export(recs, tmp_path, fmt, name, capsys):
    out = tmp_path / name
    argv = ["export", fmt, str(recs), "-o", str(out), "-q"]
    assert main(argv) == 0
    assert main(argv + ["--force"]) == 0  # its own previous export: replaced
    capsys.readouterr()
    # Something else at the output path: --force refuses and says why, and leaves it alone.
    other = tmp_path / f"other-{name}"
    if out.is_dir():
        other.mkdir()
        (other / "notes.txt").write_text("mine\n")
    else:
        with h5py.File(other, "w") as f:
            f["data"] = np.arange(3)
    before = other.read_bytes() if other.is_file() else tree(other)
    code = main(["export", fmt, str(recs), "-o", str(other), "-q", "--force"])
    err = capsys.readouterr().err
    assert code != 0 and "not a previous collector export" in err and "Traceback" not in err, err
    assert (other.read_bytes() if other.is_file() else tree(other)) == before


# --- Issue 16: exports that train as-is ---------------------------------------------------------

@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A folder of one GUI episode (the WAM preview recorded wam/surprise) and one headless."""
    root = tmp_path_factory.mktemp("mixed")
    write_sim_episode(root / "gui.h5", seed=5, seconds=1.0, surprise=True)
    write_sim_episode(root / "headless.h5", seed=6, seconds=1.3)
    return root


def test_a_models_output_is_never_default_state_or_action(mixed):
    from collector.export.selection import is_derived

    gui = load_steps(mixed / "gui.h5")
    headless = load_steps(mixed / "headless.h5")
    assert not any(n.startswith("wam/") for n in gui.state_names + gui.action_names)
    assert gui.state_names == headless.state_names and gui.action_names == headless.action_names
    with open_episode(mixed / "gui.h5") as ep:
        assert is_derived("wam/surprise", ep.streams["wam/surprise"])
        assert not is_derived("glove/hand", ep.streams["glove/hand"])
    # Named explicitly, a model's output is still available.
    chosen = load_steps(mixed / "gui.h5", SignalMapping(state=["wam/surprise:score"]))
    assert chosen.state_names == ["wam/surprise/score.0"]


@pytest.mark.parametrize("fmt", ["lerobot", "robomimic", "aloha"])
def test_exports_of_a_folder_mixing_gui_and_headless_episodes_work(mixed, tmp_path, fmt, capsys):
    out = tmp_path / ("out.hdf5" if fmt == "robomimic" else "out")
    argv = ["export", fmt, str(mixed), "-o", str(out), "-q"]
    argv += ["--vcodec", "h264"] if fmt == "lerobot" else []
    assert main(argv) == 0, capsys.readouterr().err
    assert "2 episodes" in capsys.readouterr().out


def quat_matrices(q):
    """Rotation matrices of (w, x, y, z) quaternions (the textbook formula)."""
    out = []
    for w, x, y, z in np.asarray(q, np.float64) / np.linalg.norm(q, axis=1, keepdims=True):
        out.append([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return np.array(out)


def rotvec_matrices(rotvecs):
    """Rotation matrices of axis-angle vectors, by OpenCV's Rodrigues (independent of the export)."""
    return np.array([cv2.Rodrigues(np.asarray(r, np.float64).reshape(3, 1))[0] for r in rotvecs])


def act_sample(root, start_ts):
    """What ACT's EpisodicDataset.__getitem__ reads for one start step (sim=False look-back)."""
    is_sim = bool(root.attrs["sim"])
    episode_len = root["/action"].shape[0]
    action = root["/action"][start_ts:] if is_sim else root["/action"][max(0, start_ts - 1):]
    return root["/observations/qpos"][start_ts], action, episode_len


def test_aloha_default_is_equal_lengths_and_aloha14_with_the_chunk_at_the_next_command(mixed, tmp_path):
    out = tmp_path / "act"
    result = export_aloha([mixed], out, show_progress=False)
    files = sorted(out.glob("episode_*.hdf5"))
    assert len(files) == 2
    assert "padded" in result.summary() and "repeating" in result.summary()
    qpos, actions = [], []
    for path in files:
        with h5py.File(path, "r") as root:
            assert root.attrs["layout"] == "aloha14"
            assert json.loads(root.attrs["missing_hands"]) == ["left"]
            q, a = root["/observations/qpos"][()], root["/action"][()]
            assert q.shape[1] == a.shape[1] == 14 and q.dtype == a.dtype == np.float32
            qpos.append(q)
            actions.append(a)
            n = int(root.attrs["original_length"])
            assert not q[:, :7].any() and not a[:, :7].any()  # the missing left hand: zeros
            steps = load_steps(root.attrs["source"],
                               SignalMapping(state=["glove/hand:wrist_pos,wrist_quat,grip"], action="next"))
            assert np.allclose(q[:n, 7:10], steps.state[:, :3])
            rotvec = q[:n, 10:13]
            assert (np.linalg.norm(rotvec, axis=1) <= np.pi + 1e-5).all()
            assert np.allclose(rotvec_matrices(rotvec), quat_matrices(steps.state[:, 3:7]), atol=1e-4)
            assert np.allclose(q[:n, 13], steps.state[:, 7])
            # ACT's own sampling: the chunk starts at the next command, not the current state.
            for start_ts in range(1, n - 1, 5):
                current, chunk, _ = act_sample(root, start_ts)
                assert np.array_equal(chunk[0], q[start_ts + 1])
                assert not np.array_equal(chunk[0], current)
    # ACT's get_norm_stats: torch.stack of every episode's qpos and action.
    assert np.stack(qpos).shape == np.stack(actions).shape
    manifest = json.loads((out / "steps.json").read_text())
    assert manifest["state_names"][:7] == ["left/wrist_pos.x", "left/wrist_pos.y", "left/wrist_pos.z",
                                           "left/wrist_rotvec.x", "left/wrist_rotvec.y",
                                           "left/wrist_rotvec.z", "left/grip"]
    assert manifest["action_names"] == manifest["state_names"] and manifest["layout"] == "aloha14"


def test_aloha14_maps_two_gloves_left_then_right(tmp_path):
    rec = write_sim_episode(tmp_path / "rec" / "two.h5", seed=7, seconds=0.6,
                            gloves={"rglove": "right", "lglove": "left"})
    export_aloha([rec], tmp_path / "act", layout="aloha14", show_progress=False)
    with h5py.File(tmp_path / "act" / "episode_0.hdf5", "r") as root:
        assert json.loads(root.attrs["missing_hands"]) == []
        assert json.loads(root.attrs["hands"]) == {"left": "lglove/hand", "right": "rglove/hand"}
        q = root["/observations/qpos"][()]
    steps = load_steps(rec, SignalMapping(state=["lglove/hand:wrist_pos", "rglove/hand:wrist_pos"]))
    n = len(steps)
    assert np.allclose(q[:n, 0:3], steps.state[:, 0:3]) and np.allclose(q[:n, 7:10], steps.state[:, 3:6])


def test_aloha14_refused_when_it_does_not_fit_and_state_layout_kept_on_request(folder, tmp_path):
    with pytest.raises(ExportError, match="aloha14"):
        export_aloha([folder], tmp_path / "x", layout="aloha14",
                     mapping=SignalMapping(cameras=["cam0/color"], state=["glove/hand:grip"], action="next"),
                     show_progress=False)
    export_aloha([folder], tmp_path / "raw", mapping=GRIP, show_progress=False)  # explicit: as asked
    with h5py.File(tmp_path / "raw" / "episode_0.hdf5", "r") as root:
        assert root.attrs["layout"] == "state" and root["/observations/qpos"].shape[1] == 34


def test_robomimic_actions_are_in_minus_one_one_and_the_stored_inverse_gives_the_recorded_values(
        folder, tmp_path):
    # imu_accel holds gravity (~9.8 m/s^2): far outside robomimic's [-1, 1].
    mapping = SignalMapping(cameras=["cam0/color"], action="next:glove/hand:imu_accel,finger_joints,grip")
    out = tmp_path / "rm.hdf5"
    export_robomimic([folder], out, mapping=mapping, show_progress=False)
    with h5py.File(out, "r") as f:
        norm = json.loads(f["data"].attrs["action_normalization"])
        scale, offset = np.array(norm["scale"]), np.array(norm["offset"])
        assert np.array_equal(scale, f["data"].attrs["action_scale"])
        assert np.array_equal(offset, f["data"].attrs["action_offset"])
        env = json.loads(f["data"].attrs["env_args"])
        assert env["env_kwargs"]["action_normalization"] == norm
        everything = []
        for d in f["data"]:
            g = f[f"data/{d}"]
            actions = g["actions"][()]
            everything.append(actions)
            # robomimic's get_dataset_info check, strictly.
            assert actions.dtype == np.float32 and actions.min() >= -1.0 and actions.max() <= 1.0
            recorded = load_steps(g.attrs["source"], mapping).action
            assert np.abs(recorded).max() > 5  # the raw values would not fit
            assert np.allclose(actions * scale + offset, recorded, rtol=0, atol=1e-5 * np.abs(recorded).max())
        stacked = np.concatenate(everything)
        varying = stacked.max(0) > stacked.min(0)
        assert np.allclose(stacked.max(0)[varying], 1.0, atol=1e-6)
        assert np.allclose(stacked.min(0)[varying], -1.0, atol=1e-6)


def test_robomimic_raw_actions_on_request(folder, tmp_path):
    out = tmp_path / "raw.hdf5"
    export_robomimic([folder], out, mapping=GRIP, normalize_actions=False, show_progress=False)
    with h5py.File(out, "r") as f:
        assert "action_normalization" not in f["data"].attrs
        g = f["data/demo_0"]
        assert np.array_equal(g["actions"][()], load_steps(g.attrs["source"], GRIP).action)


def test_robomimic_validation_mask_is_never_empty_with_two_episodes_and_warns_with_one(mixed, tmp_path):
    for fraction in (0.01, 0.99):
        out = tmp_path / f"two-{fraction}.hdf5"
        export_robomimic([mixed], out, val_fraction=fraction, show_progress=False)
        with h5py.File(out, "r") as f:
            assert len(f["mask/valid"]) == 1 and len(f["mask/train"]) == 1
    result = export_robomimic([mixed / "gui.h5"], tmp_path / "one.hdf5", show_progress=False)
    assert "one episode" in result.summary() and "experiment.validate" in result.summary()


def test_lerobot_refuses_a_non_integer_rate_naming_the_nearest_valid_ones(mixed, tmp_path):
    mapping = SignalMapping(rate_hz=7.5)
    with pytest.raises(ExportError, match=r"--rate 7\b.*--rate 8\b"):
        export_lerobot([mixed], tmp_path / "x", mapping=mapping, vcodec="h264", show_progress=False)
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def dropped(tmp_path_factory):
    """An episode whose camera lost frames mid-episode (about one in eight)."""
    root = tmp_path_factory.mktemp("dropped")
    return write_sim_episode(root / "drops.h5", seed=9, seconds=2.0,
                             camera_options={"drop_fraction": 0.12})


def test_lerobot_fills_a_missing_step_with_the_held_sample_and_never_compresses_time(dropped, tmp_path):
    steps = load_steps(dropped)
    gaps = np.diff(steps.t_s) * 30
    assert (gaps > 1.5).any()  # the recording really lost steps mid-episode
    out = tmp_path / "lr"
    result = export_lerobot([dropped], out, vcodec="h264", show_progress=False)
    info = json.loads((out / "meta/info.json").read_text())
    fps = info["fps"]
    assert isinstance(fps, int) and fps == 30
    assert info["features"]["frame_is_filled"] == {"dtype": "bool", "shape": [1], "names": None}
    data = pq.read_table(out / info["data_path"].format(chunk_index=0, file_index=0))
    filled = data["frame_is_filled"].to_numpy(zero_copy_only=False)
    timestamps = data["timestamp"].to_numpy().astype(np.float64)
    state = np.stack(data["observation.state"].to_numpy(zero_copy_only=False))
    assert np.allclose(timestamps, data["frame_index"].to_numpy() / fps, atol=1e-6)
    # Time is never compressed: the last frame sits where the last step was captured.
    captured = steps.t_s - steps.t_s[0]
    assert abs(timestamps[-1] - captured[-1]) <= 0.5 / fps
    assert filled.sum() >= (np.round(gaps) - 1).clip(0).sum() - 1 and filled.any()
    assert "filled" in result.summary()
    # Every real row is a recorded step, at its capture time within half a step.
    lookup = {row.tobytes(): i for i, row in enumerate(steps.state)}
    for k in np.flatnonzero(~filled):
        i = lookup[state[k].tobytes()]
        assert abs(timestamps[k] - captured[i]) <= 0.5 / fps + 1e-6, (k, timestamps[k], captured[i])
    # A filled row holds the previous sample.
    for k in np.flatnonzero(filled):
        assert k > 0 and np.array_equal(state[k], state[k - 1])
    # The video has one frame per row.
    with av.open(str(out / info["video_path"].format(video_key="observation.images.cam0",
                                                     chunk_index=0, file_index=0))) as c:
        assert sum(1 for _ in c.decode(video=0)) == len(timestamps)


def test_lerobot_timestamps_match_capture_times_within_half_a_step(folder, tmp_path):
    out = tmp_path / "lr"
    export_lerobot([folder], out, mapping=GRIP, vcodec="h264", show_progress=False)
    info = json.loads((out / "meta/info.json").read_text())
    data = pq.read_table(out / info["data_path"].format(chunk_index=0, file_index=0))
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for ep in episodes:
        rows = data.slice(ep["dataset_from_index"], ep["length"])
        steps = load_steps(sorted(folder.rglob("*.h5"))[ep["episode_index"]], GRIP)
        real = ~rows["frame_is_filled"].to_numpy(zero_copy_only=False)
        assert real.sum() == len(steps)
        ts = rows["timestamp"].to_numpy()[real].astype(np.float64)
        assert np.abs(ts - (steps.t_s - steps.t_s[0])).max() <= 0.5 / info["fps"]


def recorded_depth(path, steps):
    with open_episode(path) as ep:
        return ep.frames("cam0/depth", "depth", steps.depth_frames["cam0/color"])


DEPTH = SignalMapping(cameras=["cam0/color"], depth=True)


def test_depth_exports_as_uint16_with_its_scale_in_robomimic_and_aloha(mixed, tmp_path):
    assert main(["export", "robomimic", str(mixed), "-o", str(tmp_path / "rm.hdf5"), "-q", "--depth"]) == 0
    with h5py.File(tmp_path / "rm.hdf5", "r") as f:
        for d in f["data"]:
            g = f[f"data/{d}"]
            depth = g["obs/cam0_depth"]
            assert depth.dtype == np.uint16 and depth.shape == (g.attrs["num_samples"], 48, 64, 1)
            assert depth.attrs["depth_scale"] == pytest.approx(0.001)
            steps = load_steps(g.attrs["source"], DEPTH)
            assert np.array_equal(depth[..., 0], recorded_depth(g.attrs["source"], steps))
            assert np.array_equal(g["next_obs/cam0_depth"][:-1], depth[1:])
            assert depth[()].max() > 0
        env = json.loads(f["data"].attrs["env_args"])
        assert env["env_kwargs"]["depth_scale"] == {"cam0_depth": pytest.approx(0.001)}
    export_aloha([mixed], tmp_path / "act", mapping=DEPTH, show_progress=False)
    with h5py.File(tmp_path / "act" / "episode_0.hdf5", "r") as root:
        depth = root["/observations/depth/cam0"]
        n = int(root.attrs["original_length"])
        assert depth.dtype == np.uint16 and depth.shape[1:] == (48, 64)
        assert depth.shape[0] == root["/observations/qpos"].shape[0]
        assert depth.attrs["depth_scale"] == pytest.approx(0.001)
        steps = load_steps(root.attrs["source"], DEPTH)
        assert np.array_equal(depth[:n], recorded_depth(root.attrs["source"], steps))
    manifest = json.loads((tmp_path / "act" / "steps.json").read_text())
    assert manifest["depth_scale"] == {"cam0": pytest.approx(0.001)}


def test_depth_exports_as_an_image_feature_in_lerobot(mixed, tmp_path):
    out = tmp_path / "lr"
    export_lerobot([mixed], out, mapping=DEPTH, vcodec="h264", show_progress=False)
    info = json.loads((out / "meta/info.json").read_text())
    feature = info["features"]["observation.images.cam0_depth"]
    assert feature["dtype"] == "image" and feature["shape"] == [48, 64, 1]
    assert feature["info"]["depth_scale"] == pytest.approx(0.001)
    data = pq.read_table(out / info["data_path"].format(chunk_index=0, file_index=0))
    column = data["observation.images.cam0_depth"]
    assert column.type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # HF Image
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for ep in episodes:
        rows = data.slice(ep["dataset_from_index"], ep["length"])
        source = sorted(mixed.glob("*.h5"))[ep["episode_index"]]
        steps = load_steps(source, DEPTH)
        expected = recorded_depth(source, steps)
        real = ~rows["frame_is_filled"].to_numpy(zero_copy_only=False)
        images = [cv2.imdecode(np.frombuffer(v["bytes"], np.uint8), cv2.IMREAD_UNCHANGED)
                  for v in rows["observation.images.cam0_depth"].to_pylist()]
        assert all(i.dtype == np.uint16 for i in images)
        assert np.array_equal(np.stack(images)[real], expected)
    stats = json.loads((out / "meta/stats.json").read_text())
    assert np.array(stats["observation.images.cam0_depth"]["mean"]).shape == (1, 1, 1)


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling policies")
def test_an_av1_export_leaves_the_process_scheduling_policy_as_it_was(library, tmp_path):
    # SVT-AV1, run as root (containers), switches the encoding thread to real-time SCHED_FIFO;
    # the exporter must hand the process back as it found it.
    before = os.sched_getscheduler(0)
    export_lerobot([library["plain"]], tmp_path / "le", vcodec="libsvtav1", show_progress=False)
    assert os.sched_getscheduler(0) == before


def test_lerobot_depth_beyond_int16_is_clamped_and_counted(mixed, tmp_path, monkeypatch):
    # LeRobot reads 16-bit PNGs as int16: a value above 32767 would come back negative.
    import collector.export.lerobot as lerobot_module

    real_read = lerobot_module.read_depth

    def far(*args, **kwargs):
        depth = real_read(*args, **kwargs)
        depth[:, 0, 0] = 40_000
        return depth

    monkeypatch.setattr(lerobot_module, "read_depth", far)
    out = tmp_path / "lr"
    result = export_lerobot([mixed], out, mapping=DEPTH, vcodec="h264", show_progress=False)
    info = json.loads((out / "meta/info.json").read_text())
    data = pq.read_table(out / info["data_path"].format(chunk_index=0, file_index=0))
    first = data["observation.images.cam0_depth"][0].as_py()
    image = cv2.imdecode(np.frombuffer(first["bytes"], np.uint8), cv2.IMREAD_UNCHANGED)
    assert image[0, 0] == 32767 and image.astype(np.int16).min() >= 0
    assert any("clamped to 32767" in note for note in result.notes)
    stats = json.loads((out / "meta/stats.json").read_text())
    assert stats["observation.images.cam0_depth"]["max"] == [[[32767.0]]]
