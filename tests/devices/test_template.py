"""The template driver works as the guide says: declared before connect, validated options,
frames that match the declaration, paced at ``fps``, and closed cleanly."""

from __future__ import annotations

import time

import numpy as np
import pytest

from collector.wire.device import DeviceError
from collector.wire.options import ConfigError
from devices.registry import driver_class
from devices.template.node import TemplateCamera


def test_streams_are_declared_before_connect():
    camera = TemplateCamera("cam9", {"width": 32, "height": 16, "fps": 50})
    (spec,) = camera.streams()
    assert spec.name == "cam9/color" and spec.kind == "color" and spec.rate_hz == 50
    assert spec.image() == "rgb" and spec.field("rgb").shape == (16, 32, 3)
    with pytest.raises(DeviceError, match="before connect"):
        camera.read(0.1)


@pytest.mark.parametrize("options, message", [
    ({"fsp": 30}, "cam9.options: unknown option 'fsp'"),
    ({"fps": "30"}, "cam9.options.fps"),
    ({"fps": 0}, "fps must be in \\(0, 1000\\], got 0"),
    ({"width": 8}, "width and height must be 16..4096, got 8x48"),
])
def test_bad_options_say_what_is_wrong(options, message):
    with pytest.raises(ConfigError, match=message):
        TemplateCamera("cam9", options)


def test_frames_match_the_declaration_at_the_declared_rate():
    camera = driver_class("template")("cam9", {"fps": 100})
    (spec,) = camera.streams()
    camera.connect()
    try:
        start = time.monotonic()
        readings = []
        while len(readings) < 20:
            readings += camera.read(1.0)
        elapsed = time.monotonic() - start
    finally:
        camera.close()
    assert [r.seq for r in readings] == list(range(20))
    assert elapsed >= 0.18  # paced: 20 frames at 100 fps take 0.19 s
    for reading in readings:
        assert reading.stream == spec.name
        for field in spec.fields:
            value = np.asarray(reading.fields[field.name])
            assert value.dtype == np.dtype(field.dtype) and value.shape == field.shape
    t_device = [r.t_device_ns for r in readings]
    assert np.all(np.diff(t_device) == 10_000_000)
    assert not np.array_equal(readings[0].fields["rgb"], readings[1].fields["rgb"])  # it moves
    with pytest.raises(DeviceError):
        camera.read(0.01)  # closed
