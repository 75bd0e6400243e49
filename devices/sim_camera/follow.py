"""Teleop on: the simulated camera draws the gripper where the robot commands put it.

A real robot's gripper goes where the teleop commands send it, not where the operator's hand is;
with ``follow_commands`` set, the simulated camera shows exactly that: the newest command from
the teleop node (pose and opening) replaces the scripted hand in the rendered state. The cubes
still follow the script.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from collector.wire.bus import LatestSubscriber, node_endpoints
from devices.sim_world import WorldState
from devices.sim_world.motion import quat_matrix


def wrist_euler_of(quat_wxyz) -> tuple[float, float, float]:
    """Inverse of :func:`devices.sim_world.motion.wrist_quat`: yaw, pitch, roll of a wrist pose."""
    m = quat_matrix(np.asarray(quat_wxyz, np.float64)) @ np.diag([1.0, -1.0, -1.0])
    return (math.atan2(m[1, 0], m[0, 0]), -math.asin(max(-1.0, min(1.0, m[2, 0]))),
            math.atan2(m[2, 1], m[2, 2]))


class CommandFollower:
    """Keeps the newest teleop command (from the node's ``live`` endpoint, latest only)."""

    def __init__(self, teleop_endpoint: str) -> None:
        self._latest = LatestSubscriber([node_endpoints(teleop_endpoint).live])
        self.commands_seen = 0

    def command(self):
        for sample in self._latest.latest().values():
            if sample.stream.endswith("/command") and "ee_pos" in sample.fields:
                return sample
        return None

    def apply(self, state: WorldState) -> WorldState:
        """``state`` with the gripper at the newest commanded pose (unchanged before any)."""
        sample = self.command()
        if sample is None:
            return state
        self.commands_seen += 1
        f = sample.fields
        return dataclasses.replace(state, wrist_pos=np.asarray(f["ee_pos"], np.float64),
                                   wrist_quat=np.asarray(f["ee_quat"], np.float64),
                                   wrist_euler=wrist_euler_of(f["ee_quat"]),
                                   grip=float(np.asarray(f["gripper"]).reshape(-1)[0]))

    def close(self) -> None:
        self._latest.close()
