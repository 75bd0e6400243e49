"""The ``uvc`` driver on sources the tests write with OpenCV (a video file, an image sequence),
through the same VideoCapture code path a camera takes: declarations, real-time playback, the
end of a source as an unplug, a stall, calibration files and discovery."""

from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pytest

from collector.config import RecordingConfig
from collector.recording.recorder import Recorder
from collector.storage.reader import open_episode, validate_episode
from collector.wire.device import DeviceDisconnected, DeviceError
from collector.wire.node import Node
from collector.wire.options import ConfigError
from devices.registry import driver_class
from devices.uvc import node as uvc_node
from devices.uvc.calibration import load_calibration
from devices.uvc.discover import find_cameras
from devices.uvc.node import UvcCamera
from tests.waiting import wait_for

W, H = 64, 48


def picture(i: int) -> np.ndarray:
    """Frame ``i``: a flat level that says its index (BGR, as OpenCV writes)."""
    return np.full((H, W, 3), (i * 7) % 250, np.uint8)


def write_video(path, frames: int, fps: float = 30.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    for i in range(frames):
        writer.write(picture(i))
    writer.release()
    return path


def write_sequence(folder, frames: int) -> str:
    folder.mkdir(exist_ok=True)
    for i in range(frames):
        cv2.imwrite(str(folder / f"frame_{i:04d}.png"), picture(i))
    return str(folder / "frame_%04d.png")


def read_until_end(camera: UvcCamera) -> tuple[list, str]:
    readings = []
    try:
        while True:
            readings += camera.read(0.2)
    except DeviceDisconnected as exc:
        return readings, str(exc)


def test_registered_and_declares_the_files_mode_before_connect(tmp_path):
    video = write_video(tmp_path / "walk.avi", 10, fps=25)
    camera = driver_class("uvc")("head", {"source": str(video)})
    (spec,) = camera.streams()
    assert spec.name == "head/color" and spec.kind == "color" and spec.image_field == "rgb"
    assert spec.field("rgb").shape == (H, W, 3) and spec.rate_hz == 25
    assert spec.meta["source_kind"] == "file"
    # A camera's mode comes from the options alone (no device is opened to declare it).
    live = UvcCamera("wrist", {"source": "/dev/video7", "width": 1280, "height": 720, "fps": 60,
                               "fourcc": "MJPG"})
    assert live.streams()[0].field("rgb").shape == (720, 1280, 3) and live.streams()[0].rate_hz == 60
    with pytest.raises(DeviceError, match="camera /dev/video7 is not attached"):
        live.connect()


@pytest.mark.parametrize("options, message", [
    ({"width": 640}, "give both width and height"),
    ({"store_jpeg": True}, "store_jpeg needs fourcc"),
    ({"fourcc": "H264"}, "is not one of"),
    ({"fps": -1.0}, "fps must be"),
    ({"source": "f/%04d.png", "fourcc": "MJPG", "store_jpeg": True},
     "store_jpeg is for cameras and MJPG video files, not sequence sources"),
    ({"sorce": "0"}, "unknown option 'sorce'"),
])
def test_option_errors_name_the_problem(options, message):
    with pytest.raises(ConfigError, match=message):
        UvcCamera("head", options)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(DeviceError, match="video file .*nothing.mp4 does not exist"):
        UvcCamera("head", {"source": str(tmp_path / "nothing.mp4")}).streams()


def test_an_image_sequence_plays_in_real_time_and_its_end_is_an_unplug(tmp_path):
    pattern = write_sequence(tmp_path / "seq", 12)
    camera = UvcCamera("head", {"source": pattern, "fps": 20})
    camera.connect()
    t0 = time.monotonic()
    readings, message = read_until_end(camera)
    elapsed = time.monotonic() - t0
    assert message == f"head: end of image sequence {pattern} (12 frames so far)"
    assert [r.seq for r in readings] == list(range(12))
    assert elapsed >= 11 / 20 - 0.02  # delivered at the sequence's rate, not all at once
    for i, r in enumerate(readings):
        assert np.array_equal(r.fields["rgb"], picture(i)[..., ::-1])  # lossless PNG, RGB order
        assert r.t_device_ns == i * 50_000_000
    assert all(b.t_host_ns - a.t_host_ns == 50_000_000 for a, b in zip(readings, readings[1:]))
    camera.connect()  # replugged: plays again, numbering on
    more, _ = read_until_end(camera)
    assert [r.seq for r in more] == list(range(12, 24))
    camera.close()
    camera.close()


def test_looping_file_never_ends_and_keeps_its_clock_going(tmp_path):
    video = write_video(tmp_path / "loop.avi", 5)
    camera = UvcCamera("head", {"source": str(video), "loop": True, "realtime": False})
    camera.connect()
    readings = []
    wait_for(lambda: readings.extend(camera.read(0.2)) or len(readings) >= 12)
    device = [r.t_device_ns for r in readings]
    assert all(b > a for a, b in zip(device, device[1:]))
    assert [r.seq for r in readings] == list(range(len(readings)))
    camera.close()


def test_a_looping_file_in_real_time_keeps_its_rate_across_the_loop(tmp_path):
    video = write_video(tmp_path / "loop.avi", 5)
    camera = UvcCamera("head", {"source": str(video), "loop": True})
    camera.connect()
    readings = []
    wait_for(lambda: readings.extend(camera.read(0.2)) or len(readings) >= 12)
    camera.close()
    steps = np.diff([r.t_host_ns for r in readings])
    assert np.all(steps >= 33_333_332) and np.mean(np.abs(steps - 33_333_333) <= 1) >= 0.8, steps


class StallingCapture:
    """A real VideoCapture whose ``grab`` blocks at frame ``at`` until ``resume`` is set: a
    camera that stops delivering for a while."""

    def __init__(self, cap, at: int, resume: threading.Event) -> None:
        self.cap, self.at, self.resume, self.grabs = cap, at, resume, 0
        self.stalled = threading.Event()

    def grab(self):
        self.grabs += 1
        if self.grabs == self.at:
            self.stalled.set()
            self.resume.wait(30)
        return self.cap.grab()

    def __getattr__(self, name):
        return getattr(self.cap, name)


@pytest.fixture
def stalling(monkeypatch):
    """``stall(at) -> (resume event, [captures])``: every source opened stalls at frame ``at``."""
    resume = threading.Event()
    opened = []

    def install(at: int):
        real = uvc_node.open_capture

        def open_stalling(source):
            opened.append(StallingCapture(real(source), at if not opened else 0, resume))
            return opened[-1]
        monkeypatch.setattr(uvc_node, "open_capture", open_stalling)
        return resume, opened

    yield install
    resume.set()


@pytest.fixture
def recording(tmp_path):
    """Run a node over a camera and record it: yields ``start(camera) -> (node, recorder)``."""
    running = []

    def start(camera: UvcCamera, **options):
        endpoint = f"ipc://{tmp_path}/{camera.name}"
        node = Node(camera, endpoint)
        recorder = Recorder({camera.name: endpoint},
                            RecordingConfig(output=tmp_path / "rec", min_free_gb=0.0, **options))
        assert recorder.start({"task": "uvc"})["ok"]
        thread = threading.Thread(target=node.run, daemon=True)
        thread.start()
        running.append((node, recorder, thread))
        return node, recorder

    yield start
    for node, recorder, thread in running:
        node.stop()
        thread.join(5)
        node.close()
        recorder.close()


def episode_events(path) -> list[tuple[str, dict]]:
    with open_episode(path) as ep:
        return [(e["kind"], json.loads(e["detail"]) if isinstance(e["detail"], str) else e["detail"])
                for e in ep.events()]


def test_a_video_file_records_into_an_episode_and_its_end_is_a_disconnect(tmp_path, recording):
    video = write_video(tmp_path / "walk.avi", 15)
    camera = UvcCamera("head", {"source": str(video)})
    node, recorder = recording(camera)
    # The file ends (an unplug); the node reopens it and it plays again; then it is removed.
    wait_for(lambda: camera.connects >= 2)
    video.unlink()
    wait_for(lambda: recorder.status()["nodes"]["head"] == "error")
    path = recorder.stop()["path"]
    problems = validate_episode(path)
    assert all(("first" in p or "last" in p) and "s missing" in p for p in problems), problems
    with open_episode(path) as ep:
        ts = ep.timestamps("head/color")
        numbers = ep.frames("head/color", "frame_number")
        rgb = ep.frames("head/color", "rgb")
        assert ep.streams["head/color"].meta["source"] == str(video)
    assert list(numbers) == list(range(len(numbers))) and len(numbers) >= 30, numbers
    assert np.array_equal(ts["seq"], numbers)
    for i, number in enumerate(numbers):  # MJPG is lossy: the level, not the bytes
        assert abs(float(rgb[i].mean()) - picture(int(number) % 15).mean()) < 3
    step = np.diff(ts["t_host_ns"].astype(np.int64))
    within = step[(numbers[1:] % 15) != 0]  # inside a pass: the file's 30 fps (a frame more
    # than 0.1 s late on a busy machine moves the clock on, as a stalled camera would)
    assert np.all(within >= 33_333_332) and np.mean(np.abs(within - 33_333_333) <= 1) >= 0.8, within
    kinds = [kind for kind, _ in episode_events(path)]
    ends = [d["message"] for k, d in episode_events(path) if k == "disconnected"]
    assert ends and ends[0] == f"head: end of video file {video} (15 frames so far)"
    assert kinds.count("connected") >= 1 and "error" in kinds


def test_an_mjpg_file_with_store_jpeg_publishes_its_jpegs_as_stored(tmp_path, recording):
    """No decode in the node and no re-encode in the recorder: the file's JPEG frames are what
    the episode keeps (what benchmarks/wearable_rig.py needs for a 720p head camera)."""
    video = write_video(tmp_path / "walk.avi", 10)
    packets = cv2.VideoCapture(str(video))
    packets.set(cv2.CAP_PROP_FORMAT, -1)
    stored = [packets.read()[1].tobytes() for _ in range(10)]
    camera = UvcCamera("head", {"source": str(video), "fourcc": "MJPG", "store_jpeg": True,
                                "realtime": False})
    camera.connect()
    readings, _ = read_until_end(camera)
    assert [r.fields["rgb"].tobytes() for r in readings] == stored
    assert all(r.encodings == {"rgb": "jpeg"} for r in readings)
    node, recorder = recording(UvcCamera("head", {"source": str(video), "fourcc": "MJPG",
                                                  "store_jpeg": True}), color_encoding="jpeg")
    wait_for(lambda: recorder.status()["nodes"]["head"] in ("disconnected", "error")
             or recorder.status()["streams"]["head/color"]["received"] >= 10)
    path = recorder.stop()["path"]
    with open_episode(path) as ep:
        rgb = ep.frames("head/color", "rgb")
        numbers = ep.frames("head/color", "frame_number")
    assert len(numbers) >= 10 and rgb.shape[1:] == (H, W, 3)
    for i, number in enumerate(numbers):
        assert abs(float(rgb[i].mean()) - picture(int(number) % 10).mean()) < 3


def test_store_jpeg_on_a_video_of_another_codec_says_so(tmp_path):
    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"XVID"), 30, (W, H))
    for i in range(3):
        writer.write(picture(i))
    writer.release()
    camera = UvcCamera("head", {"source": str(video), "fourcc": "MJPG", "store_jpeg": True})
    with pytest.raises(DeviceError, match="store_jpeg needs an MJPG video; .*walk.avi is FMP4"):
        camera.connect()


def test_a_short_stall_is_reported_and_a_long_one_reopens_the_source(tmp_path, recording, stalling):
    video = write_video(tmp_path / "walk.avi", 60)
    resume, opened = stalling(at=10)
    camera = UvcCamera("head", {"source": str(video), "reopen_after_s": 30.0})
    node, recorder = recording(camera)
    wait_for(lambda: opened and opened[0].stalled.is_set())
    wait_for(lambda: recorder.status()["nodes"]["head"] == "stalled")
    t_resume = time.time_ns()
    resume.set()
    wait_for(lambda: camera.frames_read >= 30)
    path = recorder.stop()["path"]
    events = episode_events(path)
    kinds = [k for k, _ in events]
    assert "stalled" in kinds and kinds.index("stalled") < kinds.index("resumed")
    with open_episode(path) as ep:
        ts = ep.timestamps("head/color")
    host = ts["t_host_ns"].astype(np.int64)
    # Frames 0..8 before the stall, the rest after it: the gap is in the capture times, and
    # no frame was lost (the file's frames resume where they stopped).
    assert list(ts["seq"][:12]) == list(range(12))
    assert host[9] >= t_resume - 200_000_000 and host[9] - host[8] > 500_000_000


def test_a_stall_longer_than_reopen_after_s_is_a_disconnect(tmp_path, stalling):
    video = write_video(tmp_path / "walk.avi", 60)
    resume, opened = stalling(at=5)
    camera = UvcCamera("head", {"source": str(video), "reopen_after_s": 0.5})
    camera.connect()
    with pytest.raises(DeviceDisconnected, match=r"^head: no frame from .* for \d+\.\d s; reopening$"):
        for _ in range(100):
            camera.read(0.1)
    camera.close()
    resume.set()
    camera.connect()  # the node reopens it: frames again
    wait_for(lambda: camera.read(0.2))
    camera.close()


def test_calibration_files_fisheye_and_pinhole_scaled_to_the_stream(tmp_path):
    umi = tmp_path / "gopro.json"
    umi.write_text(json.dumps({
        "image_width": 2704, "image_height": 2028, "intrinsic_type": "FISHEYE",
        "intrinsics": {"aspect_ratio": 1.0, "focal_length": 796.8, "principal_pt_x": 1354.4,
                       "principal_pt_y": 1011.4, "radial_distortion_1": -0.0196,
                       "radial_distortion_2": 0.011, "radial_distortion_3": -0.0089,
                       "radial_distortion_4": 0.0019, "skew": 0.0}}))
    intr = load_calibration(umi, 1352, 1014)
    assert intr["model"] == "fisheye" and intr["coeffs"] == [-0.0196, 0.011, -0.0089, 0.0019]
    assert intr["fx"] == pytest.approx(398.4) and intr["width"] == 1352
    assert intr["scaled_from"] == [2704, 2028]
    yaml = tmp_path / "cam.yaml"
    fs = cv2.FileStorage(str(yaml), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", W)
    fs.write("image_height", H)
    fs.write("camera_matrix", np.array([[50.0, 0, 32], [0, 51.0, 24], [0, 0, 1]]))
    fs.write("distortion_coefficients", np.array([[0.1, -0.05, 0.001, 0.002, 0.01]]))
    fs.release()
    video = write_video(tmp_path / "v.avi", 3)
    (spec,) = UvcCamera("wrist", {"source": str(video), "calibration_file": str(yaml)}).streams()
    assert spec.meta["intrinsics"]["fx"] == 50.0 and spec.meta["intrinsics"]["model"] == "brown_conrady"
    assert spec.meta["intrinsics"]["coeffs"] == pytest.approx([0.1, -0.05, 0.001, 0.002, 0.01])
    with pytest.raises(ConfigError, match="another aspect ratio"):
        load_calibration(umi, 1280, 720)
    with pytest.raises(ConfigError, match="does not exist"):
        load_calibration(tmp_path / "none.json", W, H)


def test_discovery_lists_capture_nodes_with_names(tmp_path):
    for n, name, index in ((0, "HD Pro Webcam C920", "0"), (1, "HD Pro Webcam C920", "1"),
                           (2, "GoPro Webcam", "0")):
        folder = tmp_path / f"video{n}"
        folder.mkdir()
        (folder / "name").write_text(name + "\n")
        (folder / "index").write_text(index + "\n")
    found = find_cameras(tmp_path)
    assert [(c["id"], c["name"]) for c in found] == [("/dev/video0", "HD Pro Webcam C920"),
                                                     ("/dev/video2", "GoPro Webcam")]
    assert all(c["kind"] == "uvc" for c in found)
    assert find_cameras(tmp_path / "none") == []
