"""Which episodes, and which signals become observations and actions: shared by every export
and by :class:`collector.dataset.EpisodeDataset`.

An episode becomes a table of *steps* on one timeline: by default the frames of the first chosen
camera, paired with the other streams through the episode's synchronized index (``/sync``); at
another ``rate_hz`` a uniform grid, paired the same way (nearest sample on the fitted device
clocks, none beyond the stream pair's ``max_skew_ns``). Per step:

* ``frames[camera]``: the index of that camera's frame (images are read lazily),
* ``state``: chosen fields of state streams, concatenated (default: every floating-point field
  of every ``state`` stream that is not a model's output, see :func:`is_derived`),
* ``action``: ``auto`` (default) = the teleop command when the episode has a ``command`` stream,
  else the *next* step's glove state (its position-like fields: unit ``m``, ``rad`` or none).

Steps where a chosen stream has no sample within the skew bound (a dropout) are left out and
counted; so is the last step when the action is the next state. An episode attribute ``trim`` =
``[start_s, end_s]`` (seconds from ``start_time_ns``, written by review tools) keeps only steps
inside it; the file itself is never changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from collector.storage import EpisodeError, EpisodeReader, open_episode
from collector.storage.library import split_by_episode  # noqa: F401  (the one split rule, re-exported)
from collector.storage.sync import (build_sync_index, default_max_skew_ns, episode_latencies_ms,
                                    stream_sync_time_ns)

#: Node names whose streams are a model's output (the WAM preview records ``wam/surprise``).
DERIVED_NODES = ("wam",)

#: Units of fields that describe where things are (what a robot can be commanded to), as opposed
#: to forces, rates and raw sensor readings; ``next``-state actions default to these.
POSITION_UNITS = ("m", "rad", "")


class SelectionError(ValueError):
    """A mapping that does not fit an episode (unknown stream or field, no camera...)."""


@dataclass(frozen=True)
class FieldRef:
    """One field of one stream, e.g. ``FieldRef("glove/hand", "wrist_pos")``."""

    stream: str
    field: str

    def __str__(self) -> str:
        return f"{self.stream}:{self.field}"


def is_derived(name: str, spec) -> bool:
    """Whether stream ``name`` is a model's output rather than a measurement: kind
    ``prediction``, a ``derived`` flag in its metadata, or a node in :data:`DERIVED_NODES`
    (``wam/*``). Such streams are never default state or action (they exist only in episodes
    where the model ran, so a default including them would differ between GUI and headless
    episodes, and a policy must not learn from another model's guesses); name them with
    ``--state`` to use them anyway."""
    meta = getattr(spec, "meta", None) or {}
    return (spec.kind == "prediction" or bool(meta.get("derived"))
            or name.split("/")[0] in DERIVED_NODES)


def measured_state_streams(ep: EpisodeReader) -> list[str]:
    """The ``state`` streams of ``ep`` that are measurements (not :func:`is_derived`)."""
    return [name for name, spec in ep.streams.items()
            if spec.kind == "state" and not is_derived(name, spec)]


def parse_signals(specs: Iterable[str]) -> list[tuple[str, list[str] | None]]:
    """``["glove/hand:wrist_pos,grip", "teleop/command"]`` -> ``[(stream, fields or None)]``."""
    parsed = []
    for spec in specs:
        stream, _, fields = spec.partition(":")
        if stream.count("/") != 1:
            raise SelectionError(f"signal '{spec}' must be '<node>/<stream>[:field,field...]'")
        parsed.append((stream, [f for f in fields.split(",") if f] or None))
    return parsed


@dataclass
class SignalMapping:
    """Which streams become observations and actions (see the module docstring).

    Attributes:
        cameras: color streams to keep as images, in order; ``None``: every color stream.
        state: ``"<node>/<stream>[:field,...]"`` signals concatenated into the state vector;
            ``None``: every floating-point field of every ``state`` stream.
        action: ``"auto"``, ``"next"`` (next step's state, position-like fields),
            ``"next:<node>/<stream>[:fields]"`` (next step of those fields) or
            ``"<node>/<stream>[:fields]"`` (that stream at the same step, e.g. a command).
        rate_hz: step rate; ``None``: the first camera's own frames.
        image_size: ``(width, height)`` to resize images to; ``None``: as recorded.
        depth: also pair each camera's depth stream (the ``depth`` stream of the same node):
            ``EpisodeSteps.depth_frames``; a step without a depth frame is left out.
    """

    cameras: list[str] | None = None
    state: list[str] | None = None
    action: str = "auto"
    rate_hz: float | None = None
    image_size: tuple[int, int] | None = None
    depth: bool = False

    def to_dict(self) -> dict:
        return {"cameras": self.cameras, "state": self.state, "action": self.action,
                "rate_hz": self.rate_hz, "image_size": list(self.image_size) if self.image_size else None,
                "depth": self.depth}


@dataclass
class EpisodeFilter:
    """Which episodes to use; every given condition must hold.

    Attributes:
        tasks: keep episodes whose ``task`` is one of these.
        outcomes: keep episodes whose ``outcome`` is one of these (``success``, ``failure``...).
        tags: keep episodes carrying every one of these tags.
        exclude_tags: drop episodes carrying any of these tags.
        allow_recovered: keep episodes finished by ``collector recover`` (their end may be lost).
        allow_gaps: keep episodes whose streams lost samples (``missing`` or ``overflow`` > 0).
    """

    tasks: Sequence[str] | None = None
    outcomes: Sequence[str] | None = None
    tags: Sequence[str] = ()
    exclude_tags: Sequence[str] = ()
    allow_recovered: bool = True
    allow_gaps: bool = True

    def rejects(self, ep: EpisodeReader) -> str | None:
        """Why ``ep`` is left out, or ``None`` when it is kept."""
        a = ep.attrs
        if ep.interrupted or a.get("status") == "recording":
            return "interrupted recording (run collector recover first)"
        if a.get("status") == "recovered" and not self.allow_recovered:
            return "recovered episode"
        if self.tasks is not None and a.get("task") not in self.tasks:
            return f"task {a.get('task')!r}"
        if self.outcomes is not None and a.get("outcome") not in self.outcomes:
            return f"outcome {a.get('outcome')!r}"
        tags = episode_tags(ep)
        if missing := [t for t in self.tags if t not in tags]:
            return f"missing tag(s) {', '.join(missing)}"
        if banned := [t for t in self.exclude_tags if t in tags]:
            return f"tagged {', '.join(banned)}"
        if not self.allow_gaps:
            for name in ep.streams:
                g = ep.stream_attrs(name)
                if int(g.get("missing", 0)) or int(g.get("overflow", 0)):
                    return f"stream {name} lost samples"
        return None


def episode_tags(ep: EpisodeReader) -> list[str]:
    try:
        tags = json.loads(ep.attrs.get("tags") or "[]")
    except ValueError:
        return []
    return [str(t) for t in tags] if isinstance(tags, list) else []


def find_episode_files(paths: Iterable[str | Path]) -> list[Path]:
    """Episode files named by ``paths`` (files, or folders searched recursively; ``.trash``
    skipped), sorted, without duplicates."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found.update(f for f in p.rglob("*.h5") if ".trash" not in f.parts
                         and not f.name.startswith("."))
        elif p.exists():
            found.add(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return sorted(found)


def select_episodes(paths: Iterable[str | Path], episode_filter: EpisodeFilter | None = None
                    ) -> tuple[list[Path], dict[Path, str]]:
    """Split episode files into ``(kept, {path: why skipped})``; unreadable files are skipped."""
    episode_filter = episode_filter or EpisodeFilter()
    kept, skipped = [], {}
    for path in find_episode_files(paths):
        try:
            with open_episode(path) as ep:
                reason = episode_filter.rejects(ep)
        except EpisodeError as exc:
            reason = str(exc)
        if reason:
            skipped[path] = reason
        else:
            kept.append(path)
    return kept, skipped


@dataclass
class EpisodeSteps:
    """One episode as steps: see the module docstring."""

    path: Path
    uuid: str
    task: str
    outcome: str
    t_s: np.ndarray                          # (T,) seconds since the episode's start_time_ns
    frames: dict[str, np.ndarray]            # camera -> (T,) frame index in that stream
    image_fields: dict[str, str]             # camera -> its RGB field
    image_shapes: dict[str, tuple[int, int, int]]  # camera -> (H, W, 3) as recorded
    state: np.ndarray                        # (T, D) float32
    action: np.ndarray                       # (T, A) float32
    state_names: list[str]
    action_names: list[str]
    action_source: str
    dropped: int = 0                         # steps left out: dropouts and the last step
    rate_hz: float = 0.0                     # nominal step rate
    attrs: dict = field(default_factory=dict)
    # With SignalMapping.depth, per color camera: its depth stream's frame index per step, the
    # stream, its field, (H, W) and metres per depth unit.
    depth_frames: dict[str, np.ndarray] = field(default_factory=dict)
    depth_streams: dict[str, str] = field(default_factory=dict)
    depth_fields: dict[str, str] = field(default_factory=dict)
    depth_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    depth_scales: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.t_s.size)


def _float_fields(ep: EpisodeReader, stream: str, wanted: list[str] | None) -> list[FieldRef]:
    if stream not in ep.streams:
        raise SelectionError(f"{ep.path}: no stream '{stream}' (streams: {', '.join(ep.streams)})")
    spec = ep.streams[stream]
    if wanted is not None:
        for name in wanted:
            spec.field(name)  # KeyError names the field
        return [FieldRef(stream, name) for name in wanted]
    return [FieldRef(stream, f.name) for f in spec.fields if np.dtype(f.dtype).kind == "f"]


def _resolve(ep: EpisodeReader, mapping: SignalMapping):
    cameras = mapping.cameras if mapping.cameras is not None else [
        name for name, spec in ep.streams.items() if spec.kind == "color"]
    image_fields = {}
    for cam in cameras:
        if cam not in ep.streams or ep.streams[cam].kind != "color":
            raise SelectionError(f"{ep.path}: '{cam}' is not a color stream of this episode")
        rgb = [f for f in ep.streams[cam].fields if f.dtype == "|u1" and len(f.shape) == 3]
        if not rgb:
            raise SelectionError(f"{ep.path}: color stream '{cam}' has no uint8 (H, W, 3) field")
        image_fields[cam] = rgb[0].name
    if mapping.state is None:
        state = [ref for name in measured_state_streams(ep) for ref in _float_fields(ep, name, None)]
    else:
        state = [ref for stream, fields in parse_signals(mapping.state)
                 for ref in _float_fields(ep, stream, fields)]
    action, next_step = mapping.action, False
    if action == "auto":
        commands = [n for n, s in ep.streams.items() if s.kind == "command" and not is_derived(n, s)]
        action = commands[0] if commands else "next"
    if action == "next" or action.startswith("next:"):
        next_step = True
        if action == "next":
            measured = [r for r in state if not is_derived(r.stream, ep.streams[r.stream])] \
                or [ref for name in measured_state_streams(ep) for ref in _float_fields(ep, name, None)]
            refs = [r for r in measured if ep.streams[r.stream].field(r.field).unit in POSITION_UNITS]
        else:
            (stream, fields), = parse_signals([action[len("next:"):]])
            refs = _float_fields(ep, stream, fields)
    else:
        (stream, fields), = parse_signals([action])
        refs = _float_fields(ep, stream, fields)
    if not refs:
        raise SelectionError(f"{ep.path}: action '{mapping.action}' selects no fields")
    return cameras, image_fields, state, refs, next_step, action


def depth_stream(ep: EpisodeReader, camera: str) -> tuple[str, str, float]:
    """``(stream, field, depth_scale)`` of the depth stream beside color ``camera`` (same node);
    :class:`SelectionError` when there is none or its scale is unknown."""
    node = camera.split("/")[0]
    for name, spec in ep.streams.items():
        if spec.kind != "depth" or name.split("/")[0] != node:
            continue
        fields = [f for f in spec.fields if f.name == spec.image_field] or \
            [f for f in spec.fields if len(f.shape) == 2 and np.dtype(f.dtype).kind == "u"]
        if not fields:
            raise SelectionError(f"{ep.path}: depth stream '{name}' has no (H, W) unsigned field")
        scale = spec.meta.get("depth_scale")
        if scale is None and fields[0].unit == "mm":
            scale = 0.001
        if scale is None:
            raise SelectionError(f"{ep.path}: depth stream '{name}' declares no depth_scale")
        return name, fields[0].name, float(scale)
    raise SelectionError(f"{ep.path}: camera '{camera}' has no depth stream (--depth)")


def _names(ep: EpisodeReader, refs: list[FieldRef]) -> list[str]:
    names = []
    for ref in refs:
        fs = ep.streams[ref.stream].field(ref.field)
        size = int(np.prod(fs.shape, dtype=np.int64))
        channels = fs.channel_names if len(fs.channel_names) == size else [str(i) for i in range(size)]
        names += [f"{ref.stream}/{ref.field}.{c}" for c in channels]
    return names


def _sync_times(ep: EpisodeReader, stream: str) -> np.ndarray:
    """The times the episode's own ``/sync`` was built from: fitted clock less the stream's
    calibrated latency (``latency_calibration``), so a rebuilt index pairs the same samples."""
    t = ep.timestamps(stream)
    fit = ep.stream_attrs(stream).get("clock_fit")
    return stream_sync_time_ns(t["t_device_ns"], t["t_host_ns"], fit,
                               episode_latencies_ms(ep.attrs).get(stream))


def _timeline(ep: EpisodeReader, master: str, streams: set[str], rate_hz: float | None
              ) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """Step times (ns) and, per stream, the sample index of each step (-1: none)."""
    sync = ep.sync
    if rate_hz is None and sync is not None and sync["master"] == master and all(
            s == master or s in sync["streams"] for s in streams):
        t = sync["t_ns"]
        index = {s: (np.arange(t.size) if s == master else sync["streams"][s]["index"])
                 for s in streams}
        return t, index, ep.streams[master].rate_hz
    t_master = _sync_times(ep, master)
    if rate_hz is None:
        t, rate = t_master, ep.streams[master].rate_hz
    else:
        step = 1e9 / rate_hz
        count = int((t_master[-1] - t_master[0]) // step) + 1 if t_master.size else 0
        t, rate = t_master[0] + np.round(np.arange(count) * step).astype(np.int64), rate_hz
    index = {}
    for s in streams:
        bound = default_max_skew_ns(rate, ep.streams[s].rate_hz)
        index[s] = build_sync_index(t, _sync_times(ep, s), bound)[0]
    return t, index, rate


def _gather(ep: EpisodeReader, refs: list[FieldRef], index: dict[str, np.ndarray], steps: int
            ) -> np.ndarray:
    columns, cache = [], {}
    for ref in refs:
        if ref not in cache:
            cache[ref] = ep.frames(ref.stream, ref.field).reshape(ep.count(ref.stream), -1)
        values, rows = cache[ref], index[ref.stream]
        columns.append(values[np.clip(rows, 0, None)].astype(np.float32))
    return np.concatenate(columns, axis=1) if columns else np.zeros((steps, 0), np.float32)


def episode_steps(ep: EpisodeReader, mapping: SignalMapping | None = None) -> EpisodeSteps:
    """The steps of an open episode under ``mapping`` (see the module docstring)."""
    mapping = mapping or SignalMapping()
    cameras, image_fields, state_refs, action_refs, next_step, action_source = _resolve(ep, mapping)
    master = cameras[0] if cameras else str(ep.attrs.get("master_stream") or next(iter(ep.streams)))
    depth = {cam: depth_stream(ep, cam) for cam in cameras} if mapping.depth else {}
    streams = {master, *cameras, *(d[0] for d in depth.values()),
               *(r.stream for r in state_refs + action_refs)}
    t, index, rate = _timeline(ep, master, streams, mapping.rate_hz)
    n = t.size
    valid = np.ones(n, bool)
    for s in streams:
        valid &= index[s] >= 0
    state = _gather(ep, state_refs, index, n)
    action = _gather(ep, action_refs, index, n)
    if next_step:
        action = np.concatenate([action[1:], action[-1:]]) if n else action
        valid &= np.concatenate([valid[1:], [False]]) if n else valid
    start_ns = int(ep.attrs.get("start_time_ns") or (t[0] if n else 0))
    t_s = (t - start_ns) / 1e9
    trim = ep.attrs.get("trim")
    if trim not in (None, ""):
        lo, hi = json.loads(trim) if isinstance(trim, str) else trim
        valid &= (t_s >= float(lo)) & (t_s <= float(hi))
    rows = np.flatnonzero(valid)
    return EpisodeSteps(
        path=ep.path, uuid=str(ep.attrs.get("uuid", "")), task=str(ep.attrs.get("task", "")),
        outcome=str(ep.attrs.get("outcome", "unknown")), t_s=t_s[rows],
        frames={c: index[c][rows] for c in cameras}, image_fields=image_fields,
        image_shapes={c: ep.streams[c].field(image_fields[c]).shape for c in cameras},
        state=state[rows], action=action[rows], state_names=_names(ep, state_refs),
        action_names=_names(ep, action_refs),
        action_source=("next:" if next_step else "") + ",".join(map(str, action_refs)),
        dropped=int(n - rows.size), rate_hz=float(rate), attrs=dict(ep.attrs),
        depth_frames={c: index[d[0]][rows] for c, d in depth.items()},
        depth_streams={c: d[0] for c, d in depth.items()},
        depth_fields={c: d[1] for c, d in depth.items()},
        depth_shapes={c: ep.streams[d[0]].field(d[1]).shape for c, d in depth.items()},
        depth_scales={c: d[2] for c, d in depth.items()})


def load_steps(path: str | Path, mapping: SignalMapping | None = None) -> EpisodeSteps:
    """:func:`episode_steps` of the episode file at ``path``."""
    with open_episode(path) as ep:
        return episode_steps(ep, mapping)


def frame_damage(ep: EpisodeReader, camera: str, field: str, frames: np.ndarray, *,
                 thorough: bool) -> dict[int, str]:
    """Damaged frames among ``frames`` of one camera field: ``{frame: why}``.

    JPEG frames are checked against their CRC32 (files without CRCs: decoded when ``thorough``,
    else their header and end marker checked); raw frames, only when ``thorough``, by reading
    their chunks (Fletcher-32); see :meth:`collector.storage.EpisodeReader.frame_problems`."""
    return ep.frame_problems(camera, field, frames, thorough=thorough)


def drop_damaged_steps(steps: EpisodeSteps, *, thorough: bool = True) -> tuple[EpisodeSteps, list[str]]:
    """``steps`` without the steps whose camera frame is damaged, and one reason per damaged
    frame (``"cam0/color frame 10: CRC mismatch"``); the steps object is returned as it is
    when nothing is damaged. Raises :class:`EpisodeError` when the file cannot be read."""
    reasons, keep = [], np.ones(len(steps), bool)
    with open_episode(steps.path) as ep:
        try:
            for cam, frames in steps.frames.items():
                damaged = frame_damage(ep, cam, steps.image_fields[cam], frames, thorough=thorough)
                for frame, why in sorted(damaged.items()):
                    reasons.append(f"{cam} frame {frame}: {why}")
                    keep &= frames != frame
        except (OSError, KeyError, ValueError) as exc:
            raise EpisodeError(f"{steps.path}: unreadable, truncated or corrupt episode ({exc})") from None
    if keep.all():
        return steps, reasons
    rows = np.flatnonzero(keep)
    return replace(steps, t_s=steps.t_s[rows], frames={c: f[rows] for c, f in steps.frames.items()},
                   depth_frames={c: f[rows] for c, f in steps.depth_frames.items()},
                   state=steps.state[rows], action=steps.action[rows],
                   dropped=steps.dropped + int(keep.size - rows.size)), reasons


def camera_key(stream: str) -> str:
    """A camera's short name in exports: the node (``"cam0/color"`` -> ``"cam0"``); a color
    stream not named ``color`` keeps it (``"cam0/infra"`` -> ``"cam0_infra"``)."""
    node, name = stream.split("/")
    return node if name == "color" else f"{node}_{name}"
