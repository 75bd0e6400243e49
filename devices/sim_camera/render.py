"""A cheap rasteriser for the simulated tabletop: aligned RGB + depth from one pinhole camera.

Everything static (room, table texture, lighting, the depth of every background pixel) is
computed once, in the look of a scene variation (:mod:`devices.sim_world.look`; variation 0 is
the original). A frame then costs a copy of those buffers, shadows, and a z-buffered fill of the
visible faces of a handful of boxes (cubes, the gripper's arm, palm and two fingers), each face
rasterised only inside its bounding box. Depth is exact for the same geometry (per-pixel
ray/plane intersection), so colour and depth agree pixel for pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from devices.sim_world import (FINGER_LENGTH, FINGER_THICKNESS, FINGER_WIDTH, TABLE_HALF_X,
                               TABLE_HALF_Y, World, WorldState)
from devices.sim_world.motion import quat_matrix
from devices.sim_world.look import SceneLook
from devices.sim_world.rng import KeyedRandom, unit

#: Direction towards the (distant) key light of the original look, table frame.
LIGHT = SceneLook().light_direction
FLOOR_Z = -0.74
HFOV_DEG = 69.4  # a D435's colour field of view
COLOR_NOISE_SIGMA = 2.0
DEPTH_NOISE_MM = 2
DEPTH_HOLE_FRACTION = 0.002
_BANK_MARGIN = 32

ARM_COLOR = (70, 72, 80)
PALM_COLOR = (190, 190, 196)
FINGER_COLOR = (240, 140, 30)

# Views 0..3 are hand-placed; further views orbit the table.
_VIEWS = (((0.0, -0.64, 0.58), (0.0, 0.03, 0.06)), ((0.70, -0.32, 0.52), (0.0, 0.02, 0.06)),
          ((-0.64, -0.42, 0.55), (0.0, 0.02, 0.06)), ((0.0, -0.16, 0.95), (0.0, 0.02, 0.0)))

# Unit box: corner signs (8, 3) and faces as corner indices (counter-clockwise seen from outside)
# with their outward normals.
_CORNERS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
_FACES = np.array([[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4],
                   [1, 5, 7, 3]])
_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], float)


@dataclass
class CameraModel:
    """A pinhole camera: ``x_cam = rotation @ (x_table - position)``; OpenCV axes (x right,
    y down, z forward), pixel centres at integer coordinates."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    rotation: np.ndarray  # table -> camera, (3, 3)
    position: np.ndarray  # camera centre in the table frame, (3,)

    def intrinsics(self) -> dict:
        return {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy,
                "ppx": self.cx, "ppy": self.cy, "model": "pinhole", "coeffs": [0.0] * 5}

    def pose(self) -> dict:
        """Camera pose in the table frame (camera -> table), for consumers that want geometry."""
        return {"rotation": self.rotation.T.reshape(-1).tolist(),
                "translation": self.position.tolist()}

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (points - self.position) @ self.rotation.T

    def project(self, cam_points: np.ndarray) -> np.ndarray:
        z = cam_points[..., 2]
        return np.stack([self.fx * cam_points[..., 0] / z + self.cx,
                         self.fy * cam_points[..., 1] / z + self.cy], axis=-1)


def camera_for_view(view: int, width: int, height: int, seed: int = 0) -> CameraModel:
    """The fixed camera of viewpoint ``view`` (0 front, 1 right, 2 left, 3 overhead, 4+ orbit)."""
    if view < len(_VIEWS):
        eye, target = (np.array(v, float) for v in _VIEWS[view])
    else:
        angle = -math.pi / 2 + 2.4 * view  # golden-ish steps spread the extra views around
        eye = np.array([0.95 * math.cos(angle), 0.95 * math.sin(angle),
                        0.55 + 0.3 * unit(view, 77)])
        target = np.array([0.0, 0.02, 0.03])
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    f = (width / 2) / math.tan(math.radians(HFOV_DEG) / 2)
    rng = KeyedRandom(seed, view, 91)  # real sensors' principal points are never centred
    return CameraModel(width, height, f, f, (width - 1) / 2 + rng.signed(3.0),
                       (height - 1) / 2 + rng.signed(3.0), np.stack([right, down, forward]), eye)


def _shade(color, normal: np.ndarray, look: SceneLook) -> np.ndarray:
    light = 0.45 + 0.6 * max(0.0, float(normal @ look.light_direction))
    gain = look.gain * np.asarray(look.tint)
    return np.minimum(np.array(color, float) * light * gain, 255).astype(np.uint8)


class Renderer:
    """Renders :class:`WorldState` s as seen by one camera; arrays returned are new each call.

    ``look``: the scene's appearance (:func:`devices.sim_world.look.scene_look`); the original
    when ``None``.
    """

    def __init__(self, world: World, camera: CameraModel, seed: int = 0, tag: int = 0,
                 look: SceneLook | None = None) -> None:
        self.world = world
        self.camera = camera
        self.look = look or SceneLook()
        self._light = self.look.light_direction
        colors = self.look.cube_colors or ()
        self._cube_colors = [colors[i] if i < len(colors) else cube.color
                             for i, cube in enumerate(world.objects)]
        self._seed, self._tag = seed, tag
        self._rx = ((np.arange(camera.width) - camera.cx) / camera.fx).astype(np.float32)
        self._ry = ((np.arange(camera.height) - camera.cy) / camera.fy).astype(np.float32)
        self.background, self.background_depth = self._background()
        rng = np.random.default_rng([seed, tag, 5])
        bank = (camera.height + _BANK_MARGIN, camera.width + _BANK_MARGIN)
        noise = rng.normal(0, COLOR_NOISE_SIGMA, bank + (3,)).round()
        self._noise_up = np.clip(noise, 0, 255).astype(np.uint8)
        self._noise_down = np.clip(-noise, 0, 255).astype(np.uint8)
        dnoise = rng.integers(-DEPTH_NOISE_MM, DEPTH_NOISE_MM + 1, bank)
        self._dnoise_up = np.clip(dnoise, 0, None).astype(np.uint16)
        self._dnoise_down = np.clip(-dnoise, 0, None).astype(np.uint16)
        self._holes = np.where(rng.random(bank) < DEPTH_HOLE_FRACTION, 0, 65535).astype(np.uint16)

    # -- static scene -------------------------------------------------------------------------

    def _background(self) -> tuple[np.ndarray, np.ndarray]:
        cam = self.camera
        rays = np.stack(np.broadcast_arrays(self._rx[None, :], self._ry[:, None],
                                            np.float32(1)), axis=-1)
        dirs = rays @ cam.rotation.astype(np.float32)  # table frame, scaled so camera z = 1
        eye = cam.position
        depth = np.full(dirs.shape[:2], np.inf, np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            # The room: floor, four walls, ceiling; t along a ray is the camera-frame depth.
            for axis, value in ((2, FLOOR_Z), (2, 2.2), (0, -1.6), (0, 1.6), (1, -1.6), (1, 1.3)):
                t = (value - eye[axis]) / dirs[..., axis]
                depth = np.where((t > 0) & (t < depth), t, depth)
            t_table = -eye[2] / dirs[..., 2]
            hit = eye + dirs * t_table[..., None]
            on_table = ((t_table > 0) & (np.abs(hit[..., 0]) <= TABLE_HALF_X)
                        & (np.abs(hit[..., 1]) <= TABLE_HALF_Y))
        depth = np.where(on_table, t_table, depth)
        point = eye + dirs * depth[..., None]
        px, py, pz = point[..., 0], point[..., 1], point[..., 2]
        rng = np.random.default_rng([self._seed, 11])
        look = self.look
        wood = self._table_top(px, py)
        on_mat = look.mat & on_table & (np.abs(px) <= 0.42) & (py >= -0.26) & (py <= 0.30)
        # 5 cm grid lines with a soft 4 mm profile, so they do not alias into dashes.
        line = np.maximum(np.abs((px + 0.5) % 0.05 - 0.025), np.abs((py + 0.5) % 0.05 - 0.025))
        line = np.clip((line - 0.021) / 0.004, 0, 1)[..., None]
        mat_color = np.array(look.mat_color)
        mat = (1 - line) * mat_color + line * (mat_color + np.array([62.0, 60.0, 56.0]))
        floor = np.stack([90 + 0 * px, 88 + 0 * px, 85 + 0 * px], axis=-1)
        wall = np.stack([c - 20 * pz for c in look.wall_color], axis=-1)
        color = np.where(on_mat[..., None], mat, np.where(on_table[..., None], wood,
                         np.where((pz <= FLOOR_Z + 1e-3)[..., None], floor, wall)))
        # A key light above the table, falling off outwards, plus lens vignetting.
        spot = 0.6 + 0.45 * np.exp(-((px - look.spot[0]) ** 2 + (py - look.spot[1]) ** 2) / 0.45)
        r2 = (self._rx[None, :] ** 2 + self._ry[:, None] ** 2) / (self._rx[0] ** 2 + self._ry[0] ** 2)
        light = spot * (1 - 0.22 * r2)
        color = color * light[..., None] * (look.gain * np.asarray(look.tint)) \
            + rng.normal(0, 2.0, color.shape)
        rgb = np.clip(color, 0, 255).astype(np.uint8)
        depth_mm = np.clip(np.nan_to_num(depth * 1000, posinf=0), 0, 65535).astype(np.uint16)
        return np.ascontiguousarray(rgb), depth_mm

    def _table_top(self, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """(H, W, 3) float colour of the table top at table points ``(px, py)``."""
        look = self.look
        base = np.asarray(look.table_color)
        if look.table == "wood":
            grain = 0.5 + 0.5 * np.sin(px * look.table_scale + 4 * np.sin(py * 3.1 + px * 0.7))
            # The original's grain depth, in proportion to the base colour (the original's
            # 150/102/62 gives exactly 25/18/10).
            depth = np.array([25.0, 18.0, 10.0]) * (base / np.array([150.0, 102.0, 62.0]))
            return base + depth * grain[..., None]
        if look.table == "paint":
            return np.broadcast_to(base, px.shape + (3,)).astype(float)
        squares = (np.floor(px / look.table_scale) + np.floor(py / look.table_scale)) % 2
        return base * (1 - 0.35 * squares[..., None])

    # -- per frame ----------------------------------------------------------------------------

    def boxes(self, state: WorldState) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple]]:
        """Everything that moves, as boxes ``(centre, rotation, half_extents, colour)``."""
        out = []
        for cube, color, pos, quat in zip(self.world.objects, self._cube_colors, state.object_pos,
                                          state.object_quat):
            out.append((pos, quat_matrix(quat), np.full(3, cube.size / 2), color))
        rot = state.wrist_rotation()
        wrist = state.wrist_pos
        finger_y = state.grip / 2 + FINGER_THICKNESS / 2
        for centre, half, color in (
                ((0, 0, -0.11), (0.022, 0.022, 0.08), ARM_COLOR),
                ((0, 0, -0.015), (0.028, 0.062, 0.015), PALM_COLOR),
                ((0, finger_y, FINGER_LENGTH / 2),
                 (FINGER_WIDTH / 2, FINGER_THICKNESS / 2, FINGER_LENGTH / 2), FINGER_COLOR),
                ((0, -finger_y, FINGER_LENGTH / 2),
                 (FINGER_WIDTH / 2, FINGER_THICKNESS / 2, FINGER_LENGTH / 2), FINGER_COLOR)):
            out.append((wrist + rot @ np.array(centre), rot, np.array(half), color))
        return out

    def render(self, state: WorldState, frame: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb uint8 (H, W, 3), depth uint16 (H, W) in mm)`` of ``state``; ``frame`` seeds
        the sensor noise."""
        rgb = self.background.copy()
        depth = self.background_depth.copy()
        boxes = self.boxes(state)
        corners = [c + (_CORNERS * h) @ r.T for c, r, h, _ in boxes]
        self._shadows(rgb, corners)
        for (_, rot, _, color), pts in zip(boxes, corners):
            self._box(rgb, depth, rot, pts, color)
        return self._noisy(rgb, depth, frame)

    def _shadows(self, rgb: np.ndarray, corners: list[np.ndarray]) -> None:
        cam = self.camera
        polys = []
        for pts in corners:
            shadow = pts - np.outer(pts[:, 2] / self._light[2], self._light)  # onto z = 0
            uv = cam.project(cam.to_camera(shadow))
            polys.append(cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2))
        allpts = np.concatenate(polys)
        x0, y0 = np.maximum(np.floor(allpts.min(axis=0)).astype(int), 0)
        x1 = min(int(np.ceil(allpts[:, 0].max())) + 1, cam.width)
        y1 = min(int(np.ceil(allpts[:, 1].max())) + 1, cam.height)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for poly in polys:
            cv2.fillConvexPoly(mask, np.round((poly - (x0, y0)) * 16).astype(np.int32), 1,
                               cv2.LINE_AA, shift=4)
        roi = rgb[y0:y1, x0:x1]
        np.copyto(roi, (roi >> 1) + (roi >> 3), where=mask.view(bool)[..., None])

    def _box(self, rgb: np.ndarray, depth: np.ndarray, rot: np.ndarray, pts: np.ndarray,
             color) -> None:
        cam = self.camera
        normals = _NORMALS @ rot.T
        centres = pts[_FACES].mean(axis=1)
        visible = np.einsum("ij,ij->i", normals, cam.position - centres) > 1e-9
        if not visible.any():
            return
        cam_pts = cam.to_camera(pts)
        if cam_pts[:, 2].min() < 0.05:
            return  # behind or touching the lens: not drawn rather than drawn wrong
        uv = cam.project(cam_pts)
        cam_normals = normals @ cam.rotation.T
        for f in np.flatnonzero(visible):
            quad = uv[_FACES[f]]
            x0 = max(int(quad[:, 0].min()), 0)
            y0 = max(int(quad[:, 1].min()), 0)
            x1 = min(int(quad[:, 0].max()) + 2, cam.width)
            y1 = min(int(quad[:, 1].max()) + 2, cam.height)
            if x1 <= x0 or y1 <= y0:
                continue
            n = cam_normals[f]
            plane = float(n @ cam_pts[_FACES[f][0]]) * 1000.0  # n . x = plane (mm) on the face
            denom = (n[0] * self._rx[x0:x1])[None, :] + (n[1] * self._ry[y0:y1] + n[2])[:, None]
            with np.errstate(divide="ignore"):
                z = plane / denom
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillConvexPoly(mask, np.round((quad - (x0, y0)) * 16).astype(np.int32), 1,
                               cv2.LINE_8, shift=4)
            droi = depth[y0:y1, x0:x1]
            write = mask.view(bool) & (z < droi) & (z > 0)
            droi[write] = z[write]
            rgb[y0:y1, x0:x1][write] = _shade(color, normals[f], self.look)

    def _noisy(self, rgb: np.ndarray, depth: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
        # A fresh noise field per frame would cost more than the rest of the frame; a window
        # at a seeded offset into a precomputed bank looks just as random.
        h, w = depth.shape
        oy = int(unit(self._seed, self._tag, frame, 1) * _BANK_MARGIN)
        ox = int(unit(self._seed, self._tag, frame, 2) * _BANK_MARGIN)
        win = (slice(oy, oy + h), slice(ox, ox + w))
        rgb = cv2.subtract(cv2.add(rgb, self._noise_up[win]), self._noise_down[win])
        depth = cv2.subtract(cv2.add(depth, self._dnoise_up[win]), self._dnoise_down[win])
        hy, hx = _BANK_MARGIN - oy, _BANK_MARGIN - ox
        return rgb, cv2.min(depth, self._holes[hy:hy + h, hx:hx + w])
