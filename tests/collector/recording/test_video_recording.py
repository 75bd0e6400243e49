"""The recorder's writer thread encodes colour as video with the config's per-stream choices;
`collector config` writes the measured default for new configs."""

from pathlib import Path

import numpy as np

from collector.cli import main
from collector.config import NEW_CONFIG_RECORDING, RecordingConfig, load_config, sim_config, station_sim_config
from collector.recording.episode_sink import EpisodeSink
from collector.recording.episode_window import EpisodeWindow
from collector.storage import open_episode
from collector.wire.protocol import Sample
from collector.wire.streams import FieldSpec, StreamSpec

T0 = 1_700_000_000_000_000_000
H, W = 24, 32
STREAMS = [StreamSpec(f"{node}/color", "color", 10, [FieldSpec("rgb", "|u1", (H, W, 3))])
           for node in ("cam0", "wrist")]


def frame(i):
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 6 + i, y * 8, np.full_like(x, 100)], axis=-1).astype(np.uint8)


def test_the_sink_encodes_each_stream_as_the_config_chooses(tmp_path):
    config = RecordingConfig(output=str(tmp_path), color_encoding="av1", video_gop_s=0.5,
                             stream_encodings={"wrist/color": "h264"}, video_crf=30)
    config.validate()
    failures = []
    sink = EpisodeSink(config, {}, failures.append)
    try:
        window = EpisodeWindow(uuid="u1", path=Path(tmp_path / "ep.h5"),
                               streams=[s.name for s in STREAMS], master="cam0/color", start_ns=T0,
                               node_of={s.name: s.name.split("/")[0] for s in STREAMS}, baseline={})
        sink.open(window, STREAMS, {"uuid": "u1" * 16, "task": "pick", "start_time_ns": T0})
        for i in range(8):
            t = T0 + i * 100_000_000
            for spec in STREAMS:
                node = spec.name.split("/")[0]
                sink.put(("sample", "u1", Sample(node, "color", i, t, t, {"rgb": frame(i)}), t + 1, None))
        window.stop_ns = T0 + 10**9
        result = sink.call("close", window=window, malformed={})
    finally:
        sink.stop()
    assert not failures and sink.error is None and result["status"] == "complete"
    with open_episode(window.path) as ep:
        assert ep.encodings("cam0/color") == {"rgb": "av1"}
        assert ep.encodings("wrist/color") == {"rgb": "h264"}
        assert ep.count("cam0/color") == ep.count("wrist/color") == 8
        assert np.abs(ep.frames("wrist/color", "rgb", 7).astype(int) - frame(7)).mean() < 4
        assert ep.h5["streams/cam0/color/rgb.video"].attrs["gop"] == 5


def test_collector_config_writes_the_new_config_default(tmp_path):
    path = tmp_path / "station.toml"
    assert main(["config", str(path)]) == 0
    recording = load_config(path).recording
    assert {key: getattr(recording, key) for key in NEW_CONFIG_RECORDING} == NEW_CONFIG_RECORDING
    assert recording.color_encoding in ("h264", "hevc", "av1")


def test_the_app_s_simulator_records_as_a_new_config_and_sim_config_stays_raw():
    station = station_sim_config(cameras=2, glove_rate_hz=1000.0).recording
    assert {key: getattr(station, key) for key in NEW_CONFIG_RECORDING} == NEW_CONFIG_RECORDING
    assert (sim_config().recording.color_encoding, sim_config().recording.compression) == ("raw", "none")
    assert [n.name for n in station_sim_config(cameras=2).nodes] == ["cam0", "cam1", "glove"]
