"""Typed configuration: dataclasses filled from TOML tables, with exact error messages.

The app config (``collector.toml``) names the device nodes, the services started beside them
(``[[services]]``, e.g. the WAM preview) and the recording options; the CLI, the supervisor and
the GUI all read it through :func:`load_config`.
"""

from __future__ import annotations

import importlib
import os
import time
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.recording.triggers import HandsFreeConfig
from collector.wire.options import ConfigError, from_mapping, to_mapping

@dataclass
class NodeConfig:
    """One device node: ``driver`` names a module under ``devices`` (``sim_camera``, ...)."""

    name: str
    driver: str
    endpoint: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: Started on another host (``python -m devices ...`` there): the app connects, never starts it.
    remote: bool = False
    #: The node's CurveZMQ public key file (``collector keys``): connect encrypted and
    #: authenticated; needs ``[security] client_secret``. See collector/security.py.
    server_key: str | None = None
    #: Liveness watchdog: a node that is alive but has published no sample for this many
    #: seconds while its streams are expected is restarted by the supervisor (0: off).
    liveness_timeout_s: float = 5.0
    #: How the node publishes (:class:`collector.wire.node.NodeOptions`), e.g.
    #: ``{ batch_window_ms = 2 }``: a 1 kHz glove's samples go out in batches of at most this
    #: many ms (default 5; 0: one message per sample), latency its live readers (teleop) see.
    publish: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        from collector.wire.node import NodeOptions  # the node runtime owns these settings

        from_mapping(NodeOptions, self.publish, where="publish")
        if self.liveness_timeout_s != 0 and not 1.0 <= self.liveness_timeout_s <= 3600:
            raise ConfigError("liveness_timeout_s must be 0 (off) or 1..3600 s: a node that "
                              "publishes no sample for this long is restarted, got "
                              f"{self.liveness_timeout_s}")
        if not self.name or "/" in self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"name {self.name!r} must be letters, digits, '-' or '_'")
        if (self.remote or self.server_key) and not (self.endpoint or "").startswith("tcp://"):
            raise ConfigError("a remote node or one with server_key needs a tcp:// endpoint, "
                              "e.g. 'tcp://glovepi.local:5550'")


@dataclass
class RecordingConfig:
    output: Path = Path("recordings")
    #: Fields: task, date (YYYY-MM-DD), time (HHMMSS), operator, station, uuid (8 hex digits).
    path_pattern: str = "{task}/{date}/{task}_{date}_{time}_{uuid}.h5"
    #: Lossless chunk compression of raw arrays through hdf5plugin.
    compression: typing.Literal["none", "lz4", "zstd"] = "none"
    #: How color frames are stored: raw pixels, one JPEG per frame, or video (h264, hevc, av1:
    #: encoded while recording, decoded by every reader; docs/episode-format.md). Configs written
    #: by `collector config` get NEW_CONFIG_RECORDING's choice (measured in benchmarks/video_storage.py).
    color_encoding: typing.Literal["raw", "jpeg", "h264", "hevc", "av1"] = "raw"
    jpeg_quality: int = 90
    #: Per-stream choice that overrides color_encoding, e.g. {"wrist/color" = "jpeg"}.
    stream_encodings: dict[str, str] = field(default_factory=dict)
    #: Video encoder: "" the codec's software encoder (libx264, libx265, libsvtav1), "hardware"
    #: the first of NVENC / Quick Sync that opens (else software), or an FFmpeg encoder name.
    video_encoder: str = ""
    #: Video quality (constant rate factor; lower is better and bigger); 0 = the codec's default.
    video_crf: float = 0.0
    #: Seconds between video keyframes: the most a reader decodes to reach any frame.
    video_gop_s: float = 1.0
    #: Seconds between the recorder's flushes: what a killed recorder loses is about this plus
    #: one flush (0.25 against 0.5 s: kills lost 0.2-0.3 s against 0.3-1.2 s, for +0.01 CPU s/s).
    flush_interval_s: float = 0.25
    #: Stream whose samples define the synchronized index ("" = the first color stream).
    master_stream: str = ""
    #: Refuse to start an episode with less free disk space than this.
    min_free_gb: float = 1.0
    #: Stop a running episode (closing it cleanly) when free space falls below this.
    reserve_mb: float = 256.0
    #: After Stop, how long an episode keeps receiving samples captured before its stop instant
    #: (a backlog in the queues, a paused recorder); what is still missing then is recorded as
    #: "tail not drained" in the episode's ledger. The next episode can start meanwhile.
    drain_timeout_s: float = 10.0
    #: Fletcher-32 on every chunk and a CRC per sample and per JPEG frame (collector.storage.checksums),
    #: so `collector validate --deep` names damaged samples. Off only to measure their cost.
    checksums: bool = True
    #: Seconds of every stream kept in memory while not recording: an episode begins this long
    #: before its trigger (never before the previous episode's stop), so a late press loses nothing;
    #: with video colour, from the keyframe instant at or before that (up to a GOP more).
    pre_roll_s: float = 3.0
    #: Memory the pre-roll may hold (MiB); past it the oldest samples go and the pre-roll is
    #: shorter (the status says how long it is).
    pre_roll_max_mb: float = 1024.0
    #: Episodes started and stopped by the glove: a held gesture, or cut from activity
    #: (collector.recording.triggers; ``[recording.hands_free]``).
    hands_free: HandsFreeConfig = field(default_factory=HandsFreeConfig)
    #: The latency calibration applied to every episode (`collector calibrate latency`): "" the
    #: station's own file ($XDG_DATA_HOME/collector/calibration/<station>.json), else a path.
    latency_calibration: str = ""

    def validate(self) -> None:
        self.hands_free.validate()
        if not 0 <= self.pre_roll_s <= 60:
            raise ConfigError(f"pre_roll_s must be in [0, 60] s, got {self.pre_roll_s}")
        if not 16 <= self.pre_roll_max_mb <= 65536:
            raise ConfigError(f"pre_roll_max_mb must be in [16, 65536] MiB, got {self.pre_roll_max_mb}")
        if not 0 < self.drain_timeout_s <= 300:
            raise ConfigError(f"drain_timeout_s must be in (0, 300] s, got {self.drain_timeout_s}")
        if not 0 < self.flush_interval_s <= 1.0:
            raise ConfigError("flush_interval_s must be in (0, 1] s: a killed recorder "
                              f"may lose at most the last second, got {self.flush_interval_s}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        from collector.storage.schema import check_options
        from collector.storage.video import check_video_options, is_video

        try:
            check_options(self.compression, self.color_encoding, self.jpeg_quality,
                          self.stream_encodings)
            for codec in {self.color_encoding, *self.stream_encodings.values()}:
                if is_video(codec):
                    check_video_options(codec, self.video_encoder, self.video_crf, self.video_gop_s)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


@dataclass
class SessionInfo:
    task: str = "demo"
    operator: str = ""
    station: str = ""
    prompt: str = ""
    goal_episodes: int = 50
    #: Seconds to reset the scene after an episode (0: wait for the operator).
    reset_countdown_s: float = 5.0
    #: Start the next episode when the reset countdown ends (until the goal is reached).
    auto_start_after_reset: bool = False
    #: The glove's record button starts and stops episodes, like Space.
    glove_record_button: bool = True
    #: Audible cues at start and stop.
    sounds: bool = True
    #: Names offered in the session panel's lists.
    known_tasks: list[str] = field(default_factory=list)
    known_operators: list[str] = field(default_factory=list)
    known_stations: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.goal_episodes < 0:
            raise ConfigError(f"goal_episodes must be >= 0, got {self.goal_episodes}")
        if self.reset_countdown_s < 0:
            raise ConfigError(f"reset_countdown_s must be >= 0, got {self.reset_countdown_s}")


@dataclass
class ServiceConfig:
    """A service the supervisor starts beside the device nodes (``[[services]]``), e.g. the live
    World Action Model preview. The core knows it only by these strings:

    * ``module`` is run as ``python -m MODULE --name NAME --endpoint BASE --nodes JSON
      --options JSON`` and serves the node protocol at ``BASE`` (ping, describe; its declared
      streams are recorded like any node's);
    * ``preview``, if set, is ``"package.module:Class"``, a preview provider the GUI loads and
      shows beside the live view (``Class(endpoint, name=..., options=...,
      unavailable_reason=...)`` with ``state()`` and ``close()``).

    A service that does not come up is reported (the preview says why); recording goes on
    without it.
    """

    name: str
    module: str
    #: Passed to the service as ``--options JSON``; the service validates them.
    options: dict[str, Any] = field(default_factory=dict)
    preview: str = ""
    #: Off: kept in the config (and its options with it), not started.
    enabled: bool = True
    #: Runs on another host (e.g. the WAM node on a GPU machine, started there with its own
    #: options): the app connects to ``endpoint`` (``tcp://``), never starts it.
    remote: bool = False
    endpoint: str = ""
    #: The remote service's CurveZMQ public key file, as for nodes (needs [security]).
    server_key: str | None = None

    def validate(self) -> None:
        if not self.name or "/" in self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"name {self.name!r} must be letters, digits, '-' or '_'")
        if (self.remote or self.server_key or self.endpoint) and not \
                (self.remote and self.endpoint.startswith("tcp://")):
            raise ConfigError("a service on another host needs remote = true and a tcp:// endpoint "
                              "(e.g. 'tcp://gpu-box.local:5560'); server_key is for those only")
        if not all(part.isidentifier() for part in self.module.split(".")):
            raise ConfigError(f"module {self.module!r} must be a Python module path, "
                              "e.g. 'collector.wam.node'")
        if self.preview and not _is_entry_point(self.preview):
            raise ConfigError(f"preview {self.preview!r} must be 'package.module:Class', "
                              "e.g. 'collector.wam.preview:WamPreview'")


def _is_entry_point(spec: str) -> bool:
    module, _, attr = spec.partition(":")
    return bool(attr) and all(p.isidentifier() for p in module.split(".")) and \
        all(p.isidentifier() for p in attr.split("."))


def load_entry_point(spec: str) -> Any:
    """The object ``"package.module:Name"`` names (imported on demand, so the caller never
    imports the module by name).

    Raises:
        ConfigError: the module cannot be imported or has no such name; the message says which.
    """
    if not _is_entry_point(spec):
        raise ConfigError(f"{spec!r} is not 'package.module:Name'")
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # a broken optional package disables only what names it
        raise ConfigError(f"cannot import {module_name} ({type(exc).__name__}: {exc})") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{module_name} has no {attr}") from None
    return obj


def _legacy_wam_service(table: Any, where: str) -> dict[str, Any]:
    """An old ``[wam]`` table as the ``[[services]]`` entry it means.

    Old configs keep working: ``[wam] enabled = true, checkpoint, rate_hz, camera, name`` became
    ``[[services]] name = "wam", module = "collector.wam.node", preview =
    "collector.wam.preview:WamPreview"`` with the other keys as its options.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: wam: expected a table, got {type(table).__name__}")
    table = dict(table)
    known = {"enabled", "checkpoint", "rate_hz", "camera", "name"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: wam: unknown option{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(u) for u in unknown)} (known: {', '.join(sorted(known))})")
    enabled = table.pop("enabled", False)
    name = table.pop("name", "wam")
    return {"name": name, "module": "collector.wam.node", "options": table,
            "preview": "collector.wam.preview:WamPreview", "enabled": enabled}


@dataclass
class SecurityConfig:
    """``[security]``: this app's CurveZMQ keypair, used for nodes that have a ``server_key``."""

    client_secret: str = ""
    #: Folder of the public keys a node started by this app admits (default: the folder of
    #: ``client_secret``, i.e. this app's own key).
    authorized_keys: str = ""


@dataclass
class AppConfig:
    nodes: list[NodeConfig] = field(default_factory=list)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    session: SessionInfo = field(default_factory=SessionInfo)
    services: list[ServiceConfig] = field(default_factory=list)
    security: SecurityConfig = field(default_factory=SecurityConfig)

    def validate(self) -> None:
        names = [n.name for n in self.nodes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"node names must be unique: {', '.join(duplicates)} repeated")
        services = [s.name for s in self.services if s.enabled]
        taken = sorted({n for n in services if n in names or services.count(n) > 1})
        if taken:
            raise ConfigError(f"service names must be unique and differ from the nodes': "
                              f"{', '.join(taken)} repeated")
        strangers = [s for s in self.recording.stream_encodings if s.split("/")[0] not in names]
        if strangers:
            raise ConfigError(f"recording.stream_encodings: {', '.join(map(repr, strangers))} "
                              f"names no node (nodes: {', '.join(names) or 'none'}); write "
                              "'<node>/<stream>', e.g. 'cam0/color'")
        keyed = [n.name for n in [*self.nodes, *self.services] if n.server_key]
        if keyed and not self.security.client_secret:
            raise ConfigError(f"nodes {', '.join(keyed)} have server_key but [security] "
                              "client_secret is empty (create a keypair with 'collector keys')")


#: Recording settings of a config written by `collector config`: the colour encoding that keeps
#: 2 cameras + a 1 kHz glove at 0 drops on 2 cores with the smallest files, and lossless depth
#: compression (measured: benchmarks/video_storage.py, benchmarks/record_throughput.py).
#: The dataclass defaults stay raw, so existing config files record as before.
NEW_CONFIG_RECORDING = {"color_encoding": "h264", "compression": "lz4"}


def sim_config(seed: int = 0, cameras: int = 1, glove_rate_hz: float = 200.0,
               epoch_ns: int | None = None) -> AppConfig:
    """The built-in ``--sim`` setup: simulated camera(s) and a simulated glove sharing one world.

    The simulated world is a function of time since ``epoch_ns`` (default: now), which every
    simulated node is given so that the camera renders exactly what the glove reports.
    """
    epoch_ns = time.time_ns() if epoch_ns is None else epoch_ns
    nodes = [NodeConfig(name=f"cam{i}", driver="sim_camera",
                        options={"seed": seed, "view": i, "epoch_ns": epoch_ns})
             for i in range(cameras)]
    nodes.append(NodeConfig(name="glove", driver="sim_glove",
                            options={"seed": seed, "rate_hz": glove_rate_hz, "epoch_ns": epoch_ns}))
    # The scripted operator presses the glove's record button around every demonstration;
    # opening the app on the simulator should not start recording by itself.
    return AppConfig(nodes=nodes, session=SessionInfo(glove_record_button=False))


def station_sim_config(seed: int = 0, cameras: int = 1, glove_rate_hz: float = 200.0,
                       epoch_ns: int | None = None) -> AppConfig:
    """The simulator as the app and ``collector record`` (without ``--config``) start it:
    :func:`sim_config` recording as a new config does (:data:`NEW_CONFIG_RECORDING`: H.264 colour,
    lossless depth). :func:`sim_config` itself keeps the dataclass defaults (raw) for the tests
    and benchmarks built on it. ``collector config`` writes it (``epoch_ns=0``) as a starting point."""
    config = sim_config(seed=seed, cameras=cameras, glove_rate_hz=glove_rate_hz, epoch_ns=epoch_ns)
    for key, value in NEW_CONFIG_RECORDING.items():
        setattr(config.recording, key, value)
    return config


#: Node options that name a file or folder (``from_file``, ``*_file``, ``*_dir``, ``*_path``): a
#: relative one is relative to the config file, not to wherever the app was started.
PATH_OPTION_SUFFIXES = ("_file", "_dir", "_path")


def load_config(path: str | Path) -> AppConfig:
    """Read a config file (``ConfigError`` with one line saying what is wrong, a missing file too)."""
    try:
        with open(path, "rb") as fh:
            try:
                data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"{path}: no such config file (write one to edit with "
                          f"'collector config {path}')") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if "wam" in data:  # the table before [[services]]: old configs keep working
        data["services"] = [*data.get("services", []), _legacy_wam_service(data.pop("wam"), str(path))]
    config = from_mapping(AppConfig, data, where=str(path))
    base = Path(path).resolve().parent
    for node in config.nodes:
        for key, value in node.options.items():
            if (key.endswith(PATH_OPTION_SUFFIXES) and isinstance(value, str) and value
                    and not value.startswith("~") and not Path(value).is_absolute()):
                node.options[key] = str(base / value)
    return config


def save_config(config: AppConfig, path: str | Path) -> None:
    """Write ``config`` as TOML; atomically, so a reader never sees half a file."""
    import tomli_w

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(tomli_w.dumps(to_mapping(config)))
    os.replace(partial, path)
