"""The predictor interface: what the WAM node runs, and how a lab plugs in a model of its own.

    [[services]]
    name = "wam"
    module = "collector.wam.node"
    options = { predictor = "mylab.wam:load", predictor_options = { weights = "/models/big.pt" } }

A predictor is any object with

* ``spec``, a :class:`PredictorSpec`: the frame size it takes, how many past frames at what
  spacing, the future horizons it predicts, the action fields (and so the glove stream) and the
  camera it expects;
* ``predict(frames, actions, future_actions=None) -> (future frames, future actions)`` (see
  :class:`WorldActionPredictor`).

``predictor`` names a factory, as ``"package.module:attr"`` or as the name of a Python entry
point in the group :data:`ENTRY_POINT_GROUP` (``[project.entry-points."collector.wam_predictors"]``
in the lab's package); the node calls it with ``predictor_options`` as keyword arguments. The
built-in model (:func:`collector.wam.checkpoint.checkpoint_predictor`) is one such factory.
The node checks every prediction's shapes against the spec: a predictor that returns something
else is reported (``status`` ``error`` with the reason, counted), never published.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from collector.config import load_entry_point
from collector.wire.options import ConfigError

#: Python entry point group that names predictor factories (``predictor = "NAME"``).
ENTRY_POINT_GROUP = "collector.wam_predictors"
#: The factory of the model shipped with collector (a checkpoint file).
BUILTIN = "collector.wam.checkpoint:checkpoint_predictor"
#: The checkpoint shipped with collector, trained on simulated episodes.
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "sim.pt"


@dataclass(frozen=True)
class PredictorSpec:
    """What a predictor takes and returns; the node builds its inputs and streams from it."""

    #: Frames are resized to ``image_size`` x ``image_size`` RGB (uint8).
    image_size: int
    #: Past frames per prediction, ``dt_s`` apart, the last one "now".
    context: int
    dt_s: float
    #: Seconds ahead of "now" of each predicted frame and action, ascending.
    horizons_s: tuple[float, ...]
    #: Glove/state fields concatenated, in this order, into the action vector.
    action_fields: tuple[str, ...]
    #: Length of the action vector (the fields' sizes summed).
    action_dim: int
    #: Color stream to predict; ``None``: the first one.
    camera: str | None = None

    @property
    def horizon(self) -> int:
        return len(self.horizons_s)

    def check_inputs(self, frames: np.ndarray, actions: np.ndarray) -> None:
        """Raise ``ValueError`` saying what is wrong with a window of inputs."""
        want = (self.context, self.image_size, self.image_size, 3)
        if np.shape(frames) != want:
            raise ValueError(f"frames must be {want}, got {np.shape(frames)}")
        if np.shape(actions) != (self.context, self.action_dim):
            raise ValueError(f"actions must be {(self.context, self.action_dim)} "
                             f"({', '.join(self.action_fields)}), got {np.shape(actions)}")

    def check_outputs(self, frames: Any, actions: Any) -> None:
        """Raise ``ValueError`` saying what is wrong with a predictor's answer."""
        want = (self.horizon, self.image_size, self.image_size, 3)
        if not isinstance(frames, np.ndarray) or frames.shape != want or frames.dtype != np.uint8:
            raise ValueError(f"predictor returned frames {_describe(frames)}; the spec says "
                             f"uint8 {want}")
        if not isinstance(actions, np.ndarray) or actions.shape != (self.horizon, self.action_dim):
            raise ValueError(f"predictor returned actions {_describe(actions)}; the spec says "
                             f"{(self.horizon, self.action_dim)}")
        if not np.isfinite(actions).all():
            raise ValueError("predictor returned non-finite actions")

    def compatible_with(self, other: "PredictorSpec") -> str:
        """Why a predictor with ``other`` cannot replace one with this spec ("" if it can): the
        node's streams and history are shaped by the spec."""
        for name in ("image_size", "context", "dt_s", "horizons_s", "action_fields", "action_dim"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                return f"{name} differs ({theirs} instead of {mine})"
        return ""


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    return type(value).__name__


@runtime_checkable
class WorldActionPredictor(Protocol):
    """A world action model as the node runs it: one window in, one future out, numpy only."""

    spec: PredictorSpec

    def predict(self, frames: np.ndarray, actions: np.ndarray,
                future_actions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predict the future of one window.

        Args:
            frames: (context, S, S, 3) uint8, oldest first, ``dt_s`` apart; the last is "now".
            actions: (context, A) float32, raw units, the action vector at each frame's time.
            future_actions: (horizon, A) planned actions to condition on (a teleoperation
                plan), or ``None``: predict them too (the live preview).

        Returns:
            ``(frames (horizon, S, S, 3) uint8, actions (horizon, A) float32 raw units)`` at
            ``spec.horizons_s``.
        """
        ...


def resolve_factory(name: str) -> Any:
    """The factory ``name`` refers to: ``"package.module:attr"`` or an entry point's name in
    :data:`ENTRY_POINT_GROUP`. Raises :class:`ConfigError` saying what was looked for."""
    if ":" in name:
        return load_entry_point(name)
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        known = sorted(e.name for e in entry_points(group=ENTRY_POINT_GROUP))
        raise ConfigError(f"predictor {name!r} is neither 'package.module:attr' nor an entry point "
                          f"in {ENTRY_POINT_GROUP} (installed: {', '.join(known) or 'none'})")
    try:
        return next(iter(found)).load()
    except Exception as exc:  # a broken plugin package: say which, never crash the caller
        raise ConfigError(f"cannot load predictor entry point {name!r} "
                          f"({type(exc).__name__}: {exc})") from None


def load_predictor(name: str = "", options: dict[str, Any] | None = None) -> WorldActionPredictor:
    """Build the predictor ``name`` (empty: the built-in model) with ``options`` as keyword
    arguments, and check that it has a :class:`PredictorSpec` and a ``predict`` method."""
    factory = resolve_factory(name or BUILTIN)
    try:
        predictor = factory(**(options or {}))
    except TypeError as exc:  # options the factory does not take
        raise ConfigError(f"predictor {name or BUILTIN}: {exc}") from None
    spec = getattr(predictor, "spec", None)
    if not isinstance(spec, PredictorSpec) or not callable(getattr(predictor, "predict", None)):
        raise ConfigError(f"predictor {name or BUILTIN} built a {type(predictor).__name__}, which "
                          "has no PredictorSpec 'spec' and 'predict' method "
                          "(collector.wam.predictor.WorldActionPredictor)")
    return predictor
