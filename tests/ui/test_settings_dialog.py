"""The settings dialog validates with the config's exact messages and saves TOML the CLI reads."""

from collector.recording.collect import CollectModel
from collector.config import load_config, sim_config
from collector.wam.node import service_config
from tests.collector.storage.test_video import encoder_opens
from ui.settings_dialog import QtSettingsDialog


def test_settings_dialog_rejects_typos_and_saves(qtbot, tmp_path):
    config = sim_config(cameras=1)
    config.services.append(service_config(rate_hz=5.0, enabled=False))
    config.nodes[1].remote, config.nodes[1].endpoint = True, "tcp://10.0.0.5:5550"
    model = CollectModel(config, config_path=tmp_path / "station.toml")
    dialog = QtSettingsDialog(model)
    qtbot.addWidget(dialog)
    dialog.nodes.item(0, 3).setText('{"fsp": 30}')
    dialog.accept()
    assert dialog.isVisible() or dialog.result() == 0
    assert "cam0.options: unknown option 'fsp'" in dialog.error.text()
    assert not (tmp_path / "station.toml").exists()

    dialog.nodes.item(0, 3).setText('{"fps": 15.0, "width": 320, "height": 240}')
    dialog.compression.setCurrentText("lz4")
    dialog.reset.setValue(3.0)
    dialog.accept()
    qtbot.waitUntil(lambda: (tmp_path / "station.toml").exists())
    saved = load_config(tmp_path / "station.toml")
    assert saved.nodes[0].options["fps"] == 15.0
    assert saved.recording.compression == "lz4"
    assert saved.session.reset_countdown_s == 3.0
    # What the dialog does not show is kept.
    assert saved.services == [service_config(rate_hz=5.0, enabled=False)]
    assert saved.nodes[1].remote
    model.close()


def test_settings_dialog_chooses_colour_storage_per_stream(qtbot, tmp_path):
    config = sim_config(cameras=2)
    model = CollectModel(config, config_path=tmp_path / "station.toml")
    dialog = QtSettingsDialog(model)
    qtbot.addWidget(dialog)
    dialog.color_encoding.setCurrentText("h264")
    dialog.stream_encodings.setText("cam1/color jpeg")
    dialog.accept()
    assert "is not stream=encoding" in dialog.error.text()
    dialog.stream_encodings.setText("wrist/color=jpeg")
    dialog.accept()
    assert "'wrist/color' names no node" in dialog.error.text()
    dialog.stream_encodings.setText("cam1/color=jpeg")
    dialog.video_crf.setValue(99)  # clamped by the spin box to 63, which h264 refuses
    dialog.accept()
    assert "video_crf for h264" in dialog.error.text()
    assert not (tmp_path / "station.toml").exists()

    dialog.video_crf.setValue(0)
    if not encoder_opens("h264_qsv"):  # Quick Sync: absent on the CI runners
        dialog.video_encoder.setCurrentText("h264_qsv")
        dialog.accept()
        assert "'h264_qsv' cannot encode h264 on this machine" in dialog.error.text()
        assert not (tmp_path / "station.toml").exists()
    dialog.video_encoder.setCurrentText("")
    dialog.video_gop.setValue(2.0)
    dialog.accept()
    qtbot.waitUntil(lambda: (tmp_path / "station.toml").exists())
    saved = load_config(tmp_path / "station.toml").recording
    assert (saved.color_encoding, saved.stream_encodings, saved.video_gop_s) == \
        ("h264", {"cam1/color": "jpeg"}, 2.0)
    model.close()
