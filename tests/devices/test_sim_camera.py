"""The simulated RGB-D camera: declared streams, pictures caused by the hand, consistent depth."""

from __future__ import annotations

import time

import numpy as np
import pytest

from collector.wire.options import ConfigError
from devices.sim_camera.node import SimCamera
from devices.sim_camera.render import FINGER_COLOR, Renderer, camera_for_view
from devices.sim_world import FINGER_LENGTH, World

W, H = 320, 240  # small frames keep the tests quick; the geometry does not depend on size


def fast_camera(**options) -> SimCamera:
    camera = SimCamera("cam0", {"realtime": False, "width": W, "height": H, **options})
    camera.connect()
    return camera


def project(camera, point) -> tuple[np.ndarray, float]:
    cam = camera.to_camera(np.asarray(point, float)[None])[0]
    return camera.project(cam[None])[0], cam[2]


def foreground(renderer: Renderer, depth: np.ndarray) -> np.ndarray:
    return (depth > 0) & (depth.astype(int) < renderer.background_depth.astype(int) - 15)


def finger_pixels(renderer: Renderer, rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    # Orange, unlike the red cube (g << r), the table (not foreground) and the other cubes.
    orange = (r > 100) & (g > 0.4 * r) & (g < 0.75 * r) & (b < 0.4 * r)
    return orange & foreground(renderer, depth)


def test_streams_and_meta():
    camera = SimCamera("cam0", {"seed": 4, "view": 1})
    color, depth = camera.streams()
    assert (color.name, color.kind, color.rate_hz) == ("cam0/color", "color", 30.0)
    assert (depth.name, depth.kind) == ("cam0/depth", "depth")
    assert color.field("rgb").dtype == "|u1" and color.field("rgb").shape == (480, 640, 3)
    assert depth.field("depth").dtype == "<u2" and depth.field("depth").unit == "mm"
    intr = color.meta["intrinsics"]
    assert set(intr) == {"width", "height", "fx", "fy", "ppx", "ppy", "model", "coeffs"}
    assert intr["model"] == "pinhole" and intr["coeffs"] == [0.0] * 5
    assert depth.meta["intrinsics"] == intr and depth.meta["depth_scale"] == 0.001
    assert depth.meta["depth_to_color"]["translation"] == [0.0, 0.0, 0.0]
    assert color.meta["serial"] == "SIM-4-1" and camera.info()["serial"] == "SIM-4-1"
    assert color.meta["clock"]["model"] == "linear"


def test_config_typo_names_the_option():
    with pytest.raises(ConfigError) as err:
        SimCamera("cam0", {"fsp": 30})
    assert str(err.value).startswith("cam0.options: unknown option 'fsp' (known: ")
    with pytest.raises(ConfigError, match=r"^cam0\.options: fps must be > 0, got -1\.0$"):
        SimCamera("cam0", {"fps": -1})
    with pytest.raises(ConfigError, match=r"^cam0\.options\.fps: expected float, got str '30'$"):
        SimCamera("cam0", {"fps": "30"})


def test_readings_pair_color_and_depth():
    camera = fast_camera(clock_drift_ppm=25.0)
    specs = {s.name: s for s in camera.streams()}
    frames = [camera.read(1.0) for _ in range(4)]
    for k, (color, depth) in enumerate(frames):
        assert color.stream == "cam0/color" and depth.stream == "cam0/depth"
        assert color.seq == depth.seq == k
        assert color.t_device_ns == depth.t_device_ns and color.t_host_ns == depth.t_host_ns
        for reading in (color, depth):
            for f in specs[reading.stream].fields:
                array = reading.fields[f.name]
                assert array.dtype.str == f.dtype and array.shape == f.shape
    true = [camera.ticker.clock.true_time_ns(c.t_device_ns) for c, _ in frames]
    assert np.allclose(np.diff(true), 1e9 / 30, atol=1)


def test_gripper_in_the_video_follows_the_hand():
    world = World(seed=0)
    cam = camera_for_view(0, W, H)
    renderer = Renderer(world, cam)
    centroids, expected = [], []
    for t in (3.2, 4.0, 4.6, 5.2):  # lifting and carrying a cube
        state = world.state_at(t)
        assert state.held >= 0
        rgb, depth = renderer.render(state, 0)
        ys, xs = np.nonzero(finger_pixels(renderer, rgb, depth))
        assert len(xs) > 30
        centroids.append((xs.mean(), ys.mean()))
        middle = state.wrist_pos + state.wrist_rotation() @ [0, 0, FINGER_LENGTH / 2]
        expected.append(project(cam, middle)[0])
        # The held cube is drawn where the world says it is, nearer than the table.
        (u, v), z = project(cam, state.object_pos[state.held])
        assert foreground(renderer, depth)[int(round(v)), int(round(u))]
    centroids, expected = np.array(centroids), np.array(expected)
    assert np.abs(centroids - expected).max() < 12
    moves = np.diff(centroids, axis=0)
    assert np.abs(moves - np.diff(expected, axis=0)).max() < 6
    assert np.linalg.norm(moves, axis=1).max() > 20  # the motion is large enough to matter


def test_depth_matches_geometry():
    world = World(seed=1)
    cam = camera_for_view(0, W, H)
    renderer = Renderer(world, cam)
    state = world.state_at(1.0)
    rgb, depth = renderer.render(state, 3)
    # The palm (just above the wrist origin) is nearer than the table behind it.
    (u, v), z = project(cam, state.wrist_pos)
    patch = depth[int(v) - 1:int(v) + 2, int(u) - 1:int(u) + 2]
    table = renderer.background_depth[int(v), int(u)]
    assert np.median(patch) < table - 100
    # The ray to the wrist origin (centre of the palm's underside) ends there or on the
    # palm / fingers in front of it, never more than the palm's half-diagonal nearer.
    assert z * 1000 - 70 < np.median(patch) <= z * 1000 + 4
    # A free spot of the table reads its true distance (2 mm noise, no object there).
    spots = [(x, y, 0.0) for x in np.linspace(-0.3, 0.3, 7) for y in (-0.2, 0.25)]
    free = [p for p in spots if np.linalg.norm(state.object_pos[:, :2] - p[:2], axis=1).min() > 0.1
            and np.linalg.norm(state.wrist_pos[:2] - p[:2]) > 0.15]
    for point in free[:4]:
        (u, v), z = project(cam, point)
        patch = depth[int(round(v)) - 1:int(round(v)) + 2, int(round(u)) - 1:int(round(u)) + 2]
        assert abs(np.median(patch) - z * 1000) <= 4


def test_frames_differ_only_where_things_move():
    camera = fast_camera(seed=2)
    a = camera._renderer.render(camera.world.state_at(2.0), 0)
    b = camera._renderer.render(camera.world.state_at(2.4), 0)
    noise_only = camera._renderer.render(camera.world.state_at(2.0), 1)
    changed = np.abs(a[0].astype(int) - b[0].astype(int)).max(axis=2) > 20
    assert changed.mean() > 0.002  # the gripper moved
    assert np.abs(a[0].astype(int) - noise_only[0].astype(int)).max() < 20  # only sensor noise
    assert (a[0] != noise_only[0]).any()  # but the noise is there, and seeded per frame
    ys, xs = np.nonzero(changed)
    assert foreground(camera._renderer, a[1])[ys, xs].mean() + \
        foreground(camera._renderer, b[1])[ys, xs].mean() > 0.8


def test_views_and_seeds_give_different_pictures():
    world = World(seed=0)
    state = world.state_at(1.0)
    front = Renderer(world, camera_for_view(0, W, H)).render(state)[0]
    side = Renderer(world, camera_for_view(1, W, H)).render(state)[0]
    orbit = Renderer(world, camera_for_view(5, W, H)).render(state)[0]
    assert np.abs(front.astype(int) - side.astype(int)).mean() > 10
    assert np.abs(front.astype(int) - orbit.astype(int)).mean() > 10


def test_drop_fraction_drops_both_streams_of_a_frame():
    camera = fast_camera(drop_fraction=0.3, seed=5, fps=60.0)
    seqs = []
    for _ in range(60):
        color, depth = camera.read(1.0)
        assert color.seq == depth.seq
        seqs.append(color.seq)
    assert np.all(np.diff(seqs) >= 1)
    assert 1 - len(seqs) / (seqs[-1] + 1) == pytest.approx(0.3, abs=0.15)


def test_realtime_pacing():
    camera = SimCamera("cam0", {"width": W, "height": H, "fps": 30.0})
    camera.connect()
    start = time.monotonic()
    frames = []
    while time.monotonic() - start < 0.5:
        frames += camera.read(0.2)
    camera.close()
    seqs = [r.seq for r in frames[::2]]
    assert 13 <= len(seqs) <= 17 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    host = np.array([r.t_host_ns for r in frames[::2]])
    assert np.abs(time.time_ns() - host[-1]) < 0.1e9
    assert FINGER_COLOR  # the colour the tests look for is part of the renderer's API
