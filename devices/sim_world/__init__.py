"""A deterministic scripted tabletop world shared by the simulated devices.

Every simulated device builds its own :class:`World` from the same ``seed`` and ``epoch_ns`` and
evaluates ``world.state_at((host_time_ns - epoch_ns) / 1e9)``; since the world is a pure function
of time, a camera and a glove in different processes agree without talking to each other.
"""

from devices.sim_world.world import (CUBES, CYCLE_S, FINGER_LENGTH, FINGER_NAMES, FINGER_THICKNESS, FINGER_WIDTH,
                    GRASP_DEPTH, JOINT_NAMES, MAX_APERTURE, PHASES, TABLE_HALF_X, TABLE_HALF_Y,
                    Cube, World, WorldState)

__all__ = [
    "CUBES", "CYCLE_S", "FINGER_LENGTH", "FINGER_NAMES", "FINGER_THICKNESS", "FINGER_WIDTH",
    "GRASP_DEPTH", "JOINT_NAMES", "MAX_APERTURE", "PHASES", "TABLE_HALF_X", "TABLE_HALF_Y",
    "Cube", "World", "WorldState",
]
