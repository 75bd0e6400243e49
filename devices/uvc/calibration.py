"""Camera intrinsics and distortion from a calibration file, as the stream metadata holds them.

Three formats are read, told apart by content:

* JSON written for collector: ``{"width", "height", "fx", "fy", "ppx", "ppy", "model", "coeffs"}``
  (``model``: ``brown_conrady`` (OpenCV's k1 k2 p1 p2 k3) or ``fisheye`` (OpenCV's / Kannala-Brandt
  k1..k4)), the same dict the RealSense driver writes;
* UMI's camera JSON (OpenImuCameraCalibrator: ``image_width``, ``intrinsic_type``: ``FISHEYE``,
  ``intrinsics``: ``focal_length``, ``principal_pt_x``, ``radial_distortion_1..4`` ...);
* OpenCV's ``FileStorage`` YAML/XML from ``calibrateCamera`` tools: ``camera_matrix``,
  ``distortion_coefficients``, ``image_width``/``image_height``, optional
  ``distortion_model`` (``fisheye``).

A calibration made at another resolution of the same aspect ratio is scaled to the stream's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collector.wire.options import ConfigError

MODELS = ("brown_conrady", "fisheye")


def _from_collector(data: dict) -> dict[str, Any]:
    model = str(data.get("model", "brown_conrady")).lower()
    if model in ("kannala_brandt4", "equidistant"):
        model = "fisheye"
    return {"width": int(data["width"]), "height": int(data["height"]), "fx": float(data["fx"]),
            "fy": float(data["fy"]), "ppx": float(data["ppx"]), "ppy": float(data["ppy"]),
            "model": model, "coeffs": [float(c) for c in data.get("coeffs", [])]}


def _from_umi(data: dict) -> dict[str, Any]:
    intr = data["intrinsics"]
    f = float(intr["focal_length"])
    aspect = float(intr.get("aspect_ratio", 1.0))
    fisheye = str(data.get("intrinsic_type", "")).upper() == "FISHEYE"
    coeffs = [float(intr.get(f"radial_distortion_{i}", 0.0)) for i in range(1, 5 if fisheye else 4)]
    return {"width": int(data["image_width"]), "height": int(data["image_height"]), "fx": f,
            "fy": f * aspect, "ppx": float(intr["principal_pt_x"]), "ppy": float(intr["principal_pt_y"]),
            "model": "fisheye" if fisheye else "brown_conrady", "coeffs": coeffs}


def _from_opencv(path: Path) -> dict[str, Any]:
    import cv2

    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    try:
        if not fs.isOpened():
            raise ConfigError(f"calibration {path}: not JSON and not an OpenCV YAML/XML file")
        k = fs.getNode("camera_matrix").mat()
        d = fs.getNode("distortion_coefficients").mat()
        if k is None or k.shape != (3, 3):
            raise ConfigError(f"calibration {path}: no 3x3 'camera_matrix'")
        model_node = fs.getNode("distortion_model")
        model = model_node.string() if not model_node.empty() else ""
        width, height = fs.getNode("image_width").real(), fs.getNode("image_height").real()
    finally:
        fs.release()
    return {"width": int(width), "height": int(height), "fx": float(k[0, 0]), "fy": float(k[1, 1]),
            "ppx": float(k[0, 2]), "ppy": float(k[1, 2]),
            "model": "fisheye" if model.lower() in ("fisheye", "equidistant") else "brown_conrady",
            "coeffs": [] if d is None else [float(c) for c in d.ravel()]}


def load_calibration(path: str | Path, width: int, height: int) -> dict[str, Any]:
    """The intrinsics dict of ``path`` for a ``width`` x ``height`` stream.

    Raises:
        ConfigError: naming the file and what is wrong (missing, unreadable, another aspect ratio).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"calibration file {path} does not exist")
    text = path.read_text(errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    try:
        if isinstance(data, dict) and "intrinsics" in data and "image_width" in data:
            intr = _from_umi(data)
        elif isinstance(data, dict):
            intr = _from_collector(data)
        else:
            intr = _from_opencv(path)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"calibration {path}: missing or bad value ({type(exc).__name__}: {exc})") from None
    want = 4 if intr["model"] == "fisheye" else 5
    if intr["model"] == "fisheye" and len(intr["coeffs"]) != 4:
        raise ConfigError(f"calibration {path}: a fisheye model has 4 coefficients, got {len(intr['coeffs'])}")
    intr["coeffs"] = (intr["coeffs"] + [0.0] * want)[:max(want, len(intr["coeffs"]))]
    if intr["width"] <= 0 or intr["height"] <= 0:  # OpenCV files without image size: take it as is
        intr["width"], intr["height"] = width, height
    if (intr["width"], intr["height"]) != (width, height):
        sx, sy = width / intr["width"], height / intr["height"]
        if abs(sx - sy) > 0.01 * sx:
            raise ConfigError(f"calibration {path} is for {intr['width']}x{intr['height']}, the stream "
                              f"is {width}x{height} (another aspect ratio: calibrate this mode)")
        intr.update(width=width, height=height, fx=intr["fx"] * sx, fy=intr["fy"] * sy,
                    ppx=(intr["ppx"] + 0.5) * sx - 0.5, ppy=(intr["ppy"] + 0.5) * sy - 0.5,
                    scaled_from=[intr["width"], intr["height"]])
    intr["source"] = str(path)
    return intr
