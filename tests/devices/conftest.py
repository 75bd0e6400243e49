import pytest


@pytest.fixture(scope="session")
def rs_recording(tmp_path_factory):
    """A 12-frame 64x48 colour + depth recording written by pyrealsense2's recorder (~0.8 s),
    and its ground truth (:class:`devices.realsense.synthetic.SyntheticRecording`)."""
    from devices.realsense.synthetic import write_synthetic_recording

    path = tmp_path_factory.mktemp("realsense") / "synthetic.db3"
    return write_synthetic_recording(path, frames=12, width=64, height=48, fps=30,
                                     depth_scale=0.00025)
