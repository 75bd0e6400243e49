"""Where table-frame points fall in a camera image, from a color stream's metadata."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def project_to_image(points: np.ndarray, meta: dict[str, Any]) -> np.ndarray | None:
    """Pixel coordinates (N, 2) of table-frame points (N, 3), or ``None`` without calibration.

    ``meta`` is a color stream's metadata with ``intrinsics`` (``fx``, ``fy``, ``ppx``, ``ppy``)
    and ``camera_pose_in_table`` (``rotation``: camera -> table, row-major 3x3; ``translation``:
    the camera's position). Points behind the camera come back as NaN.
    """
    intrinsics, pose = meta.get("intrinsics"), meta.get("camera_pose_in_table")
    if not isinstance(intrinsics, dict) or not isinstance(pose, dict):
        return None
    try:
        rotation = np.asarray(pose["rotation"], np.float64).reshape(3, 3)
        position = np.asarray(pose["translation"], np.float64).reshape(3)
        fx, fy = float(intrinsics["fx"]), float(intrinsics["fy"])
        cx, cy = float(intrinsics["ppx"]), float(intrinsics["ppy"])
    except (KeyError, TypeError, ValueError):
        return None
    cam = (np.asarray(points, np.float64).reshape(-1, 3) - position) @ rotation
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([fx * cam[:, 0] / z + cx, fy * cam[:, 1] / z + cy], axis=1)
    uv[z <= 1e-6] = np.nan
    return uv.astype(np.float32)


def field_slice(field_shapes: Sequence[tuple[str, int]], name: str) -> slice | None:
    """Where field ``name`` sits in an action vector made of ``(field, size)`` parts in order."""
    start = 0
    for field, size in field_shapes:
        if field == name:
            return slice(start, start + size)
        start += size
    return None
