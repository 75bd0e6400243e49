"""World Action Model footage straight from the simulator: rendered frames and the hand's actions.

Recording an episode through nodes, the bus and HDF5 costs real time; training a preview across
every view and scene variation needs hours of footage. :class:`Footage` rendered here holds what
``collector.wam.data.load_clip`` would read from such an episode (frames squeezed to the model's
size, the glove's ``wrist_pos``, ``wrist_quat`` and ``grip`` at each frame), as plain arrays: a
``collector.wam.data.Clip(**vars(footage))`` runs through the same windows, training and
evaluation code (devices never import collector.wam, so the caller makes the clip). Frames are
rendered in simulated time at the model's step (no sleeping), with the camera's sensor noise.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from devices.sim_camera.render import Renderer, camera_for_view
from devices.sim_world import World
from devices.sim_world.look import scene_look

#: The glove fields a clip's action vector holds, in order (collector's default action fields).
ACTION_FIELDS = ("wrist_pos", "wrist_quat", "grip")
#: Their total width: 3 + 4 + 1.
ACTION_DIM = 8


@dataclass(frozen=True)
class ClipSpec:
    """Which footage: world ``seed`` from ``start_s`` for ``seconds``, seen from ``view`` in scene
    ``variation``, ``fps`` frames a second rendered at ``width`` x ``height`` and squeezed to
    ``size`` x ``size``."""

    seed: int
    view: int
    variation: int = 0
    seconds: float = 20.0
    start_s: float = 0.0
    fps: float = 8.0
    size: int = 64
    width: int = 320
    height: int = 240


@dataclass
class Footage:
    """One rendered clip: the fields of ``collector.wam.data.Clip``."""

    path: str                 # a name saying what was rendered
    frames: np.ndarray        # (N, S, S, 3) uint8
    actions: np.ndarray       # (N, ACTION_DIM) float32: wrist_pos, wrist_quat, grip
    t_ns: np.ndarray          # (N,) int64, world time
    camera_meta: dict         # intrinsics, camera_pose_in_table, view, variation


def render_clip(spec: ClipSpec) -> Footage:
    """Render one clip (deterministic in ``spec``)."""
    world = World(spec.seed)
    camera = camera_for_view(spec.view, spec.width, spec.height, spec.seed)
    renderer = Renderer(world, camera, spec.seed, 1000 + spec.view, scene_look(spec.variation))
    n = max(2, int(round(spec.seconds * spec.fps)))
    times = spec.start_s + np.arange(n) / spec.fps
    frames = np.empty((n, spec.size, spec.size, 3), np.uint8)
    actions = np.empty((n, ACTION_DIM), np.float32)
    for i, t in enumerate(times):
        state = world.state_at(float(t))
        rgb, _ = renderer.render(state, i)
        # The whole view squeezed, area-averaged: what collector.wam.data.resize_frame does to
        # a recorded frame.
        frames[i] = cv2.resize(rgb, (spec.size, spec.size), interpolation=cv2.INTER_AREA)
        actions[i] = np.concatenate([state.wrist_pos, state.wrist_quat, [state.grip]])
    meta = {"intrinsics": camera.intrinsics(), "camera_pose_in_table": camera.pose(),
            "view": spec.view, "variation": spec.variation}
    name = f"sim-seed{spec.seed}-view{spec.view}-var{spec.variation}-t{spec.start_s:g}"
    return Footage(name, frames, actions, (times * 1e9).astype(np.int64), meta)


def render_clips(specs: Iterable[ClipSpec], workers: int = 1) -> list[Footage]:
    """Render many clips, on ``workers`` processes when more than one."""
    specs = list(specs)
    if workers <= 1:
        return [render_clip(s) for s in specs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(render_clip, specs, chunksize=1))
