"""Simulated episodes written in simulated time (no sleeping) for the dataset and export tests.

The real simulated drivers (devices/sim_camera, devices/sim_glove) run with ``realtime=False``
and their readings go through the real :class:`HDF5EpisodeWriter`, so files carry the same device
clocks, latency jitter and synchronized index as a recording; the world (devices/sim_world) is
the ground truth.
"""

from __future__ import annotations

import numpy as np

from collector.storage.writer import HDF5EpisodeWriter
from collector.wire.protocol import Sample
from collector.wire.streams import FieldSpec, StreamSpec
from devices.sim_camera.node import SimCamera
from devices.sim_glove.node import SimGlove

#: Teleop command = glove wrist position shifted into a robot base frame by this offset.
COMMAND_OFFSET = np.array([0.25, 0.0, 0.05], np.float32)
COMMAND_SPEC = StreamSpec("teleop/command", "command", 200.0, [
    FieldSpec("target_pos", "float32", (3,), "m", ["x", "y", "z"]),
    FieldSpec("gripper", "float32", (1,), "m", ["aperture"])])
#: What the GUI's WAM preview adds to an episode: a model's output, declared as collector/wam
#: declares it (kind ``state``, node ``wam``).
SURPRISE_SPEC = StreamSpec("wam/surprise", "state", 10.0, [
    FieldSpec("score", "float32", ()), FieldSpec("baseline", "float32", ()),
    FieldSpec("horizon_s", "float32", (), "s"), FieldSpec("source_seq", "int64", ()),
    FieldSpec("frame_seq", "int64", ())])


def devices(seed: int, epoch_ns: int, cameras: int, width: int, height: int, glove_rate: float,
            camera_options: dict | None = None, gloves: dict[str, str] | None = None,
            glove_options: dict | None = None):
    timing = {"epoch_ns": epoch_ns, "realtime": False}
    cams = [SimCamera(f"cam{i}", {"seed": seed, "view": i, "width": width, "height": height,
                                  "clock_offset_ns": 5_000_000_000 + i, "clock_drift_ppm": 80.0,
                                  **timing, **(camera_options or {})}) for i in range(cameras)]
    gloves = gloves or {"glove": "right"}
    glove = [SimGlove(name, {"seed": seed, "rate_hz": glove_rate, "hand": hand,
                             "clock_offset_ns": -3_000_000_000, "clock_drift_ppm": -50.0, **timing,
                             **(glove_options or {})})
             for name, hand in gloves.items()]
    return cams, glove


def write_sim_episode(path, *, seed: int = 0, seconds: float = 2.0, cameras: int = 1,
                      width: int = 64, height: int = 48, glove_rate: float = 200.0,
                      command: bool = False, attrs: dict | None = None, outcome: str = "success",
                      color_encoding: str = "raw", epoch_offset_s: float = 1.0,
                      surprise: bool = False, camera_options: dict | None = None,
                      gloves: dict[str, str] | None = None, glove_options: dict | None = None):
    """Write one finished episode; returns its path. The world starts ``epoch_offset_s`` before
    the recording, so different offsets show different motion. ``surprise`` adds the WAM
    preview's ``wam/surprise`` stream (as a GUI session records it); ``camera_options`` go to
    every camera (e.g. ``drop_fraction``); ``gloves``: node name -> hand (default one right
    glove named ``glove``); ``glove_options`` go to every glove (e.g. ``scene``)."""
    import time

    epoch_ns = time.time_ns() - int(epoch_offset_s * 1e9)
    cams, glove_list = devices(seed, epoch_ns, cameras, width, height, glove_rate, camera_options,
                               gloves, glove_options)
    specs = [s for c in [*cams, *glove_list] for s in c.streams()]
    if command:
        specs.append(COMMAND_SPEC)
    if surprise:
        specs.append(SURPRISE_SPEC)
    samples = []
    for device in [*cams, *glove_list]:
        device.connect()  # all at once: each one's simulated time starts at its connect
    for device in [*cams, *glove_list]:
        start = None
        while True:
            readings = device.read(1.0)
            if not readings:
                continue
            start = start or readings[0].t_host_ns
            if readings[0].t_host_ns - start > seconds * 1e9:
                break
            for r in readings:
                node = r.stream.split("/")[0]
                samples.append(Sample(node, r.stream, r.seq, r.t_device_ns, r.t_host_ns, r.fields))
                if command and r.stream == "glove/hand":
                    samples.append(Sample("teleop", "teleop/command", r.seq, r.t_device_ns,
                                          r.t_host_ns + 300_000, {
                                              "target_pos": r.fields["wrist_pos"] + COMMAND_OFFSET,
                                              "gripper": r.fields["grip"].copy()}))
                if surprise and r.stream == glove_list[0].stream_name and r.seq % 20 == 0:
                    k = r.seq // 20
                    samples.append(Sample("wam", "wam/surprise", k, r.t_host_ns, r.t_host_ns + 400_000, {
                        "score": np.float32(0.1 + 0.05 * np.sin(k)), "baseline": np.float32(0.05),
                        "horizon_s": np.float32(0.5), "source_seq": np.int64(k),
                        "frame_seq": np.int64(k)}))
        device.close()
    samples.sort(key=lambda s: s.t_host_ns)
    start_ns = samples[0].t_host_ns - 1_000_000
    writer = HDF5EpisodeWriter(path, specs, {"task": "pick-cube", "operator": "sim", "start_time_ns": start_ns,
                                         **(attrs or {})}, color_encoding=color_encoding)
    for i, s in enumerate(samples):
        writer.append(s, s.t_host_ns + 200_000)
        if i % 500 == 499:
            writer.flush()
    writer.close(end_attrs={"outcome": outcome, "end_time_ns": samples[-1].t_host_ns + 1_000_000})
    return path


def glove_world(path):
    """The glove's world and device clock of an episode written by :func:`write_sim_episode`."""
    from collector.storage.reader import open_episode
    from devices.sim_clock import DeviceClock
    from devices.sim_world import World

    with open_episode(path) as ep:
        glove_meta = ep.streams["glove/hand"].meta
        cam_meta = ep.streams["cam0/color"].meta
    clock = DeviceClock.from_meta(glove_meta["clock"])
    return World(int(glove_meta["serial"].split("-")[1]), clock.epoch_ns), clock, \
        DeviceClock.from_meta(cam_meta["clock"])


def write_library(folder):
    """Four short episodes with different metadata, as a recordings folder would hold:
    ``{"plain", "command", "failure", "jpeg"}`` -> path."""
    return {
        "plain": write_sim_episode(folder / "a" / "plain.h5", seed=1, attrs={"tags": ["clean"]}),
        "command": write_sim_episode(folder / "a" / "command.h5", seed=2, command=True,
                                     attrs={"tags": ["clean", "teleop"]}),
        "failure": write_sim_episode(folder / "b" / "failure.h5", seed=3, outcome="failure",
                                     attrs={"task": "stack", "tags": ["occluded"]}),
        "jpeg": write_sim_episode(folder / "b" / "jpeg.h5", seed=4, color_encoding="jpeg",
                                  attrs={"tags": ["clean"]}, epoch_offset_s=5.0),
    }
