import pytest

from collector.recording.collect import CollectModel
from collector.config import sim_config


@pytest.fixture
def small_sim_config():
    return _small_sim_config


def _small_sim_config(out, *, cameras=1, epoch_ns=None, **camera_options):
    """Simulated devices small enough for tests: 160x120 camera(s), 100 Hz glove."""
    config = sim_config(seed=3, cameras=cameras, glove_rate_hz=100.0, epoch_ns=epoch_ns)
    for node in config.nodes[:cameras]:
        node.options.update(width=160, height=120, **camera_options)
    config.recording.output = out
    config.recording.min_free_gb = 0.0
    config.session.sounds = False
    config.session.reset_countdown_s = 0.0
    config.session.task, config.session.operator, config.session.station = "pick-cube", "ana", "bench-1"
    return config


@pytest.fixture
def window_factory(qtbot):
    """Build a collect window over a fresh model; closes it (and the processes) after the test."""
    from ui import theme
    from ui.collect.window import QtCollectWindow

    windows = []

    def make(config):
        theme.configure_pyqtgraph()
        model = CollectModel(config)
        window = QtCollectWindow(model)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        qtbot.waitUntil(lambda: model.opened, timeout=30_000)
        return window, model

    yield make
    for window in windows:
        window.close()


@pytest.fixture
def wait_state(qtbot):
    def wait(model, *states, timeout=20_000):
        qtbot.waitUntil(lambda: model.state in states, timeout=timeout)
    return wait
