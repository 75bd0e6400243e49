"""docs/adding-a-device.md, followed step by step: copy the template under a new name, rename its
classes, register it with the line the guide gives, run it as a node, record an episode from it
and check that the file validates."""

from __future__ import annotations

import re
import shutil
import sys
import threading
from pathlib import Path

import pytest

import devices
from collector.config import RecordingConfig
from collector.recording.recorder import Recorder
from collector.storage.reader import open_episode, validate_episode
from collector.wire.node import Node
from devices import registry
from devices.registry import Driver  # noqa: F401 (the guide's registry line names it)
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "adding-a-device.md"


@pytest.fixture
def my_camera(tmp_path, monkeypatch):
    """The template copied to ``devices.my_camera`` (in a temporary folder added to the
    ``devices`` package's path, so the checkout is untouched) and registered."""
    guide = GUIDE.read_text()
    assert "cp -r devices/template devices/my_camera" in guide
    folder = tmp_path / "drivers"
    shutil.copytree(REPO / "devices" / "template", folder / "my_camera",
                    ignore=shutil.ignore_patterns("__pycache__"))
    node_py = folder / "my_camera" / "node.py"
    # The renames the guide asks for.
    assert "`TemplateCamera` → `MyCamera`" in guide and "`TemplateCameraConfig` → `MyCameraConfig`" in guide
    node_py.write_text(node_py.read_text().replace("TemplateCamera", "MyCamera"))
    monkeypatch.setattr(devices, "__path__", [*devices.__path__, str(folder)])
    # The registry line, exactly as the guide gives it.
    (line,) = re.findall(r'^\s*"my_camera": Driver\("devices\.my_camera\.node:MyCamera"\),$', guide, re.M)
    name, entry = eval("{" + line.strip() + "}").popitem()
    monkeypatch.setitem(registry.DRIVERS, name, entry)
    yield name
    for module in [m for m in sys.modules if m.startswith("devices.my_camera")]:
        del sys.modules[module]


def test_a_copied_template_records_an_episode_that_validates(my_camera, tmp_path):
    cls = registry.driver_class(my_camera)
    assert cls.__name__ == "MyCamera" and cls.__module__ == "devices.my_camera.node"
    device = cls("cam9", {"fps": 60, "width": 32, "height": 24})
    assert device.info()["driver"] == "my_camera"
    endpoint = f"ipc://{tmp_path}/cam9"
    node = Node(device, endpoint)
    thread = threading.Thread(target=node.run, daemon=True)
    thread.start()
    recorder = Recorder({"cam9": endpoint}, RecordingConfig(output=tmp_path / "rec", min_free_gb=0.0))
    try:
        assert list(recorder.specs) == ["cam9/color"]
        wait_for(lambda: "cam9/color" in recorder.health, message="frames reach the recorder")
        started = recorder.start({"task": "guide"})
        assert started["ok"], started
        wait_for(lambda: recorder.status()["streams"]["cam9/color"]["received"] > 40)
        result = recorder.stop()
        assert result.get("error") is None, result
        path = result["path"]
    finally:
        node.stop()
        thread.join(5)
        node.close()
        recorder.close()
    assert validate_episode(path) == []
    with open_episode(path) as episode:
        assert set(episode.streams) == {"cam9/color"}
        spec = episode.streams["cam9/color"]
        assert spec.image() == "rgb" and spec.image_field == "rgb"
        frames = episode.frames("cam9/color", "rgb")
        assert frames.shape[1:] == (24, 32, 3) and len(frames) >= 10
