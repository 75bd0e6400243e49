"""Stream declarations: what a node publishes, announced before its first sample.

A :class:`StreamSpec` travels in the node's ``describe`` message and becomes the attributes of
the stream's group in an episode file, so the recorder creates every dataset before data arrives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Names the recorder uses for per-sample bookkeeping; a field may not take them.
RESERVED_FIELD_NAMES = ("seq", "t_device_ns", "t_host_ns", "t_recv_ns")

#: Stream kinds: ``color`` (H, W, 3) uint8 RGB, ``depth`` (H, W) uint16, ``state`` vectors.
STREAM_KINDS = ("color", "depth", "state", "command", "prediction")


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
        self.shape = tuple(int(n) for n in self.shape)
        self.dtype = np.dtype(self.dtype).str
        if self.name in RESERVED_FIELD_NAMES:
            raise ValueError(f"field name '{self.name}' is reserved ({', '.join(RESERVED_FIELD_NAMES)})")
        if self.channel_names and self.shape and len(self.channel_names) != self.shape[-1]:
            raise ValueError(f"field '{self.name}': {len(self.channel_names)} channel names for "
                             f"a last axis of {self.shape[-1]}")

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class StreamSpec:
    """A stream a node publishes: ``name`` is ``"<node>/<stream>"``, e.g. ``"cam0/color"``."""

    name: str
    kind: str
    rate_hz: float
    fields: list[FieldSpec]
    #: Free metadata written to the episode: intrinsics, depth_scale, serial, clock model...
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name.count("/") != 1 or not all(self.name.split("/")):
            raise ValueError(f"stream name '{self.name}' must be '<node>/<stream>'")
        if self.kind not in STREAM_KINDS:
            raise ValueError(f"stream '{self.name}': kind '{self.kind}' is not one of {STREAM_KINDS}")
        if self.rate_hz <= 0:
            raise ValueError(f"stream '{self.name}': rate_hz must be > 0, got {self.rate_hz}")
        self.fields = [f if isinstance(f, FieldSpec) else FieldSpec(**f) for f in self.fields]
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"stream '{self.name}': field names must be unique and non-empty")

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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for f in data["fields"]:
            f["shape"] = list(f["shape"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StreamSpec":
        try:
            return cls(name=data["name"], kind=data["kind"], rate_hz=float(data["rate_hz"]),
                       fields=[FieldSpec(**f) for f in data["fields"]], meta=data.get("meta") or {})
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed stream declaration: {exc}") from None
