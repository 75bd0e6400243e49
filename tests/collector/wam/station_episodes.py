"""Episodes of a simulated station the shipped WAM checkpoint never saw, for the fine-tune's slow
test and ``benchmarks/wam.py --station``."""

from __future__ import annotations

from pathlib import Path

from tests.collector.sim_episodes import write_sim_episode

#: The station scene: view 3 (overhead), which scripts/train_sim_wam.py holds out of the shipped
#: checkpoint's training (``--held-out-views 3 7``), in the original look (variation 0).
STATION_VIEW, STATION_VARIATION = 3, 0


def write_station_episodes(folder: Path, count: int, seconds: float, view: int = STATION_VIEW,
                           variation: int = STATION_VARIATION) -> list[Path]:
    """``count`` episodes as a recording leaves them: the real camera and glove drivers in
    simulated time (no sleeping) through the real HDF5 writer, 320x240 at 30 fps, each from
    another moment of the world's script."""
    return [write_sim_episode(Path(folder) / f"station-{i:02d}.h5", seed=300 + i, seconds=seconds, width=320,
                              height=240, epoch_offset_s=5.0 + 17.0 * i,
                              camera_options={"view": view, "variation": variation})
            for i in range(count)]
