"""Stream declarations: what a node publishes, announced before its first sample.

A :class:`StreamSpec` travels in the node's ``describe`` message and becomes the attributes of
the stream's group in an episode file, so the recorder creates every dataset before data arrives.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Names the recorder uses for per-sample bookkeeping; a field may not take them.
RESERVED_FIELD_NAMES = ("seq", "t_device_ns", "t_host_ns", "t_recv_ns")

#: Stream kinds: ``color`` (H, W, 3) uint8 RGB, ``depth`` (H, W) uint16, ``state`` vectors.
STREAM_KINDS = ("color", "depth", "state", "command", "prediction")

#: Most dimensions a field may have (as on the wire, :data:`collector.wire.protocol.MAX_NDIM`).
MAX_NDIM = 32
#: Largest field a declaration may promise, in bytes (4 GiB: far beyond any camera frame).
MAX_FIELD_BYTES = 2**32

_FIELD_KEYS = ("name", "dtype", "shape", "unit", "channel_names")
_STREAM_KEYS = ("name", "kind", "rate_hz", "fields")
#: Kinds whose samples are pictures, and the field a declaration without ``image_field`` shows
#: (declarations written before ``image_field`` existed: the field of that name, else the first).
IMAGE_KINDS = {"color": "rgb", "depth": "depth"}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass
class FieldSpec:
    """One named array in every sample of a stream."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    unit: str = ""
    #: One name per element of the last axis (e.g. joint names), or empty.
    channel_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Declarations arrive from other processes: every check raises ValueError saying what
        # is wrong, never KeyError or TypeError from deep inside.
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"field name must be a string, got {self.name!r:.60}")
        if self.name in RESERVED_FIELD_NAMES:
            raise ValueError(f"field name '{self.name}' is reserved ({', '.join(RESERVED_FIELD_NAMES)})")
        if not isinstance(self.dtype, (str, np.dtype, type)):
            raise ValueError(f"field '{self.name}': bad dtype {self.dtype!r:.60}: not a dtype string")
        try:
            dtype = np.dtype(self.dtype)
        except (TypeError, ValueError, SyntaxError) as exc:
            raise ValueError(f"field '{self.name}': bad dtype {self.dtype!r:.60}: {exc}") from None
        if dtype.hasobject:
            raise ValueError(f"field '{self.name}': object dtypes are not allowed")
        if dtype.names is not None or dtype.subdtype is not None:
            raise ValueError(f"field '{self.name}': dtype {dtype} is not a plain array dtype")
        if dtype.itemsize == 0:
            raise ValueError(f"field '{self.name}': dtype {dtype.str} has no item size")
        self.dtype = dtype.str
        if not isinstance(self.shape, (list, tuple)) or not all(_is_int(n) and n >= 0 for n in self.shape):
            raise ValueError(f"field '{self.name}': shape must be a list of non-negative integers, "
                             f"got {self.shape!r:.60}")
        if len(self.shape) > MAX_NDIM:
            raise ValueError(f"field '{self.name}': {len(self.shape)} dimensions, at most {MAX_NDIM}")
        self.shape = tuple(int(n) for n in self.shape)
        if self.nbytes > MAX_FIELD_BYTES:
            raise ValueError(f"field '{self.name}': shape {self.shape} of {self.dtype} is "
                             f"{self.nbytes} bytes, at most {MAX_FIELD_BYTES}")
        if not isinstance(self.unit, str):
            raise ValueError(f"field '{self.name}': unit must be a string, got {self.unit!r:.60}")
        if not isinstance(self.channel_names, (list, tuple)) or not all(
                isinstance(n, str) for n in self.channel_names):
            raise ValueError(f"field '{self.name}': channel_names must be a list of strings, "
                             f"got {self.channel_names!r:.60}")
        self.channel_names = list(self.channel_names)
        if self.channel_names and self.shape and len(self.channel_names) != self.shape[-1]:
            raise ValueError(f"field '{self.name}': {len(self.channel_names)} channel names for "
                             f"a last axis of {self.shape[-1]}")

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @classmethod
    def from_dict(cls, data: Any, where: str = "field") -> "FieldSpec":
        """A field from its JSON object; ``ValueError`` saying what is wrong (``where`` names it)."""
        if not isinstance(data, dict):
            raise ValueError(f"{where} must be an object, got {type(data).__name__}")
        for key in data:
            if key not in _FIELD_KEYS:
                raise ValueError(f"{where} has an unknown key {key!r:.60} (expected {', '.join(_FIELD_KEYS)})")
        for key in _FIELD_KEYS[:3]:
            if key not in data:
                raise ValueError(f"{where} lacks '{key}'")
        return cls(**data)


@dataclass
class StreamSpec:
    """A stream a node publishes: ``name`` is ``"<node>/<stream>"``, e.g. ``"cam0/color"``."""

    name: str
    kind: str
    rate_hz: float
    fields: list[FieldSpec]
    #: Free metadata written to the episode: intrinsics, depth_scale, serial, clock model...
    meta: dict[str, Any] = field(default_factory=dict)
    #: The field that is the picture (``(H, W, 3)`` uint8 RGB for ``color``, ``(H, W)`` for
    #: ``depth``), declared by camera drivers; ``None`` leaves it to :meth:`image`'s inference.
    image_field: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ValueError(f"stream 'name' must be a string, got {self.name!r:.60}")
        if self.name.count("/") != 1 or not all(self.name.split("/")):
            raise ValueError(f"stream name '{self.name:.100}' must be '<node>/<stream>'")
        if not isinstance(self.kind, str) or self.kind not in STREAM_KINDS:
            raise ValueError(f"stream '{self.name}': kind {self.kind!r:.60} is not one of {STREAM_KINDS}")
        if not isinstance(self.rate_hz, (int, float, np.number)) or isinstance(self.rate_hz, (bool, np.bool_)):
            raise ValueError(f"stream '{self.name}': rate_hz must be a number, got {self.rate_hz!r:.60}")
        self.rate_hz = float(self.rate_hz)
        if not math.isfinite(self.rate_hz) or self.rate_hz <= 0:
            raise ValueError(f"stream '{self.name}': rate_hz must be a finite number > 0, got {self.rate_hz}")
        if not isinstance(self.fields, (list, tuple)):
            raise ValueError(f"stream '{self.name}': 'fields' must be a list, got {type(self.fields).__name__}")
        self.fields = [f if isinstance(f, FieldSpec) else FieldSpec.from_dict(f, f"stream '{self.name}': field {i}")
                       for i, f in enumerate(self.fields)]
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"stream '{self.name}': field names must be unique and non-empty")
        if not isinstance(self.meta, dict):
            raise ValueError(f"stream '{self.name}': 'meta' must be an object, got {type(self.meta).__name__}")
        if self.image_field is not None:
            if self.kind not in IMAGE_KINDS:
                raise ValueError(f"stream '{self.name}': image_field is for kinds "
                                 f"{', '.join(IMAGE_KINDS)}, not {self.kind!r}")
            if self.image_field not in names:
                raise ValueError(f"stream '{self.name}': image_field {self.image_field!r:.60} "
                                 f"is not one of its fields ({', '.join(names)})")

    @property
    def node(self) -> str:
        return self.name.split("/")[0]

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(f"stream '{self.name}' has no field '{name}'")

    @property
    def bytes_per_sample(self) -> int:
        return sum(f.nbytes for f in self.fields)

    def image(self) -> str | None:
        """The name of the field to show as a picture, or ``None`` for a stream that is no picture.

        The declared :attr:`image_field`; for older declarations of kind ``color``/``depth``,
        the field named ``rgb``/``depth`` if there is one, else the first field.
        """
        if self.image_field is not None:
            return self.image_field
        if self.kind not in IMAGE_KINDS:
            return None
        names = [f.name for f in self.fields]
        return IMAGE_KINDS[self.kind] if IMAGE_KINDS[self.kind] in names else names[0]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for f in data["fields"]:
            f["shape"] = list(f["shape"])
        if data["image_field"] is None:
            del data["image_field"]  # an undeclared image reads as before (see image())
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "StreamSpec":
        """A declaration from its JSON object (``describe``, an episode's ``spec`` attribute).

        Raises:
            ValueError: saying which stream and what is wrong, for any malformed declaration.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a stream declaration must be an object, got {type(data).__name__}")
        name = data.get("name")
        where = f"stream '{name:.100}'" if isinstance(name, str) else "stream declaration"
        for key in _STREAM_KEYS:
            if key not in data:
                raise ValueError(f"{where} lacks '{key}'")
        if not isinstance(data["fields"], list):
            raise ValueError(f"{where}: 'fields' must be a list, got {type(data['fields']).__name__}")
        fields = [FieldSpec.from_dict(f, f"{where}: field {i}") for i, f in enumerate(data["fields"])]
        meta = data.get("meta")
        image_field = data.get("image_field")
        if image_field is not None and not isinstance(image_field, str):
            raise ValueError(f"{where}: 'image_field' must be a field name, got {image_field!r:.60}")
        return cls(name=name, kind=data["kind"], rate_hz=data["rate_hz"], fields=fields,
                   meta={} if meta is None else meta, image_field=image_field)
