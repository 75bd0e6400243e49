"""Scene variations of the simulator: other lighting, table tops and cube colours, the same motion."""

from __future__ import annotations

import numpy as np
import pytest

from collector.wam.data import Clip, Normalizer, WindowSet
from collector.wire.options import ConfigError
from devices.sim_camera.clips import ACTION_DIM, ClipSpec, render_clip
from devices.sim_camera.node import SimCamera
from devices.sim_camera.render import Renderer, camera_for_view
from devices.sim_world import World
from devices.sim_world.look import TABLE_FINISHES, SceneLook, scene_look

W, H = 160, 120


def _render(variation: int | None, t_s: float = 4.0, view: int = 0):
    world = World(2)
    look = None if variation is None else scene_look(variation)
    renderer = Renderer(world, camera_for_view(view, W, H, 2), 2, view, look)
    return renderer.render(world.state_at(t_s), frame=3)


def test_variation_zero_is_the_original_look_bit_for_bit():
    assert scene_look(0) == SceneLook()
    rgb, depth = _render(None)
    rgb0, depth0 = _render(0)
    assert np.array_equal(rgb, rgb0) and np.array_equal(depth, depth0)
    # The camera's default is the original look too: what other tests and users see is unchanged.
    camera = SimCamera("cam0", {"realtime": False, "width": W, "height": H})
    assert camera.config.variation == 0
    assert camera.streams()[0].meta["variation"] == 0


def test_variations_change_the_look_not_the_geometry():
    rgb0, depth0 = _render(0)
    looks = [scene_look(v) for v in range(1, 13)]
    assert {look.table for look in looks} == set(TABLE_FINISHES)
    assert len({look.cube_colors for look in looks}) == len(looks)
    for variation in (1, 2, 3):
        rgb, depth = _render(variation)
        assert np.array_equal(depth, depth0)  # same scene, same hand, same cubes
        assert np.abs(rgb.astype(int) - rgb0).mean() > 8  # but it looks different
        again, _ = _render(variation)
        assert np.array_equal(rgb, again)  # and the same every time


def test_bad_variations_are_refused_clearly():
    with pytest.raises(ValueError, match="variation must be >= 0, got -1"):
        scene_look(-1)
    with pytest.raises(ConfigError, match="variation must be >= 0, got -2"):
        SimCamera("cam0", {"variation": -2})
    with pytest.raises(ValueError, match="table must be one of"):
        SceneLook(table="glass")


def test_rendered_clips_give_windows_with_the_hands_actions():
    clip = Clip(**vars(render_clip(ClipSpec(seed=5, view=3, variation=4, seconds=3.0, size=32,
                                            width=W, height=H))))
    assert clip.frames.shape == (24, 32, 32, 3) and clip.actions.shape == (24, ACTION_DIM)
    state = World(5).state_at(0.0)
    assert np.allclose(clip.actions[0, :3], state.wrist_pos, atol=1e-6)
    assert np.allclose(clip.actions[0, 7], state.grip, atol=1e-6)
    windows = WindowSet([clip], context=2, horizon=4, dt_s=0.125, normalizer=Normalizer.fit([clip]))
    assert len(windows) == 24 - 5
    assert clip.camera_meta["view"] == 3 and clip.camera_meta["variation"] == 4
