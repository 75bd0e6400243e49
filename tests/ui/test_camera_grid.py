"""The camera grid picks its panes from the stream declarations, not from stream or field names."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from collector.wire.protocol import Sample
from collector.wire.streams import FieldSpec, StreamSpec


class FakeLive:
    def __init__(self) -> None:
        self.samples: dict[str, Sample] = {}

    def latest(self) -> dict[str, Sample]:
        return dict(self.samples)

    def received_ns(self, stream: str) -> int:
        return 0


def fake_model(specs: list[StreamSpec]):
    return SimpleNamespace(specs={s.name: s for s in specs}, live=FakeLive(), state="idle",
                           health=[], config=SimpleNamespace(), wam=None)


def test_a_colour_stream_named_otherwise_gets_a_pane(qtbot):
    from ui.collect.camera_grid import QtCameraGrid

    head = StreamSpec("head/image", "color", 30.0, [FieldSpec("exposure_us", "uint32", ()),
                                                    FieldSpec("pixels", "uint8", (12, 16, 3))],
                      image_field="pixels")
    ranging = StreamSpec("head/range", "depth", 30.0, [FieldSpec("mm", "uint16", (12, 16))],
                         image_field="mm")
    glove = StreamSpec("glove/hand", "state", 100.0, [FieldSpec("q", "float32", (3,))])
    model = fake_model([head, ranging, glove])
    grid = QtCameraGrid(model)
    qtbot.addWidget(grid)
    grid.build()
    assert list(grid.panes) == ["head"]
    pane = grid.panes["head"]
    assert (pane.color_stream, pane.depth_stream) == ("head/image", "head/range")
    pixels = np.full((12, 16, 3), 200, np.uint8)
    model.live.samples["head/image"] = Sample("head", "head/image", 7, 0, 1,
                                              {"exposure_us": np.uint32(5), "pixels": pixels})
    model.live.samples["head/range"] = Sample("head", "head/range", 7, 0, 1,
                                              {"mm": np.full((12, 16), 500, np.uint16)})
    grid.refresh()
    assert pane.shown_seq == {"color": 7, "depth": 7}
    assert np.array_equal(pane.color_item.image, pixels)  # the declared field, not the first
    assert [s[0] for s in grid.shown] == ["head/image"]


def test_two_colour_streams_of_one_node_get_a_pane_each(qtbot):
    from ui.collect.camera_grid import QtCameraGrid

    specs = [StreamSpec(f"stereo/{side}", "color", 30.0, [FieldSpec("rgb", "uint8", (8, 8, 3))])
             for side in ("left", "right")]
    grid = QtCameraGrid(fake_model(specs))
    qtbot.addWidget(grid)
    grid.build()
    assert sorted(grid.panes) == ["stereo/left", "stereo/right"]


def test_a_preview_draws_its_path_over_the_declared_colour_stream(qtbot):
    from ui.collect.camera_grid import QtCameraGrid

    head = StreamSpec("head/image", "color", 30.0, [FieldSpec("pixels", "uint8", (12, 16, 3))],
                      image_field="pixels")
    model = fake_model([head])
    grid = QtCameraGrid(model)
    qtbot.addWidget(grid)
    asked = []
    grid.previews = [SimpleNamespace(trajectory=lambda s: asked.append(s) or np.array([[2.0, 3.0], [4.0, 5.0]]))]
    grid.build()
    model.live.samples["head/image"] = Sample("head", "head/image", 1, 0, 1,
                                              {"pixels": np.zeros((12, 16, 3), np.uint8)})
    grid.refresh()
    assert asked == ["head/image"]
    xs, ys = grid.panes["head"].trajectory.getData()
    assert list(xs) == [2.0, 4.0] and list(ys) == [3.0, 5.0]
