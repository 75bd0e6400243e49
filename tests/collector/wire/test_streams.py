"""Stream declarations say which field is the picture; declarations written before that read as before."""

from __future__ import annotations

import pytest

from collector.wire.streams import FieldSpec, StreamSpec


def test_declared_image_field_survives_the_wire():
    spec = StreamSpec("head/image", "color", 30.0, [FieldSpec("pixels", "uint8", (4, 6, 3)),
                                                    FieldSpec("exposure_us", "uint32", ())],
                      image_field="pixels")
    again = StreamSpec.from_dict(spec.to_dict())
    assert again.image_field == "pixels" and again.image() == "pixels"


def test_old_declarations_infer_the_image_as_before():
    old = StreamSpec("cam0/color", "color", 30.0, [FieldSpec("rgb", "uint8", (4, 6, 3))]).to_dict()
    assert "image_field" not in old  # describes and files without a declaration are unchanged
    assert StreamSpec.from_dict(old).image() == "rgb"
    depth = StreamSpec("cam0/depth", "depth", 30.0, [FieldSpec("frame_number", "uint64", ()),
                                                     FieldSpec("depth", "uint16", (4, 6))])
    assert depth.image() == "depth"
    first = StreamSpec("cam1/color", "color", 30.0, [FieldSpec("img", "uint8", (4, 6, 3))])
    assert first.image() == "img"
    state = StreamSpec("glove/hand", "state", 100.0, [FieldSpec("q", "float32", (3,))])
    assert state.image() is None


@pytest.mark.parametrize("kind, image_field, message", [
    ("color", "nope", "is not one of its fields"),
    ("state", "pixels", "image_field is for kinds"),
])
def test_bad_image_field_is_refused(kind, image_field, message):
    with pytest.raises(ValueError, match=message):
        StreamSpec("head/image", kind, 30.0, [FieldSpec("pixels", "uint8", (4, 6, 3))],
                   image_field=image_field)
    with pytest.raises(ValueError, match="image_field"):
        StreamSpec.from_dict({"name": "a/b", "kind": "color", "rate_hz": 1.0, "image_field": 3,
                              "fields": [{"name": "x", "dtype": "uint8", "shape": [1]}]})
