"""Settings: devices, recording options and session defaults, saved to the TOML config the CLI reads."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6 import QtWidgets

from collector.config import AppConfig
from collector.storage.schema import COLOR_ENCODINGS
from collector.storage.video import VideoCodecError, check_encoder_opens
from collector.wire.options import ConfigError, from_mapping, to_mapping
from collector.recording.supervisor import check_node_options

DEFAULT_CONFIG_NAME = "collector.toml"


class QtSettingsDialog(QtWidgets.QDialog):
    """Edits a copy of the model's config; OK validates it (exact messages), applies and saves it."""

    def __init__(self, model, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.setWindowTitle("Settings")
        self.resize(760, 520)
        data = to_mapping(model.config)
        self._original_nodes = {n["name"]: n for n in data.get("nodes", [])}
        tabs = QtWidgets.QTabWidget()
        tabs.addTab(self._devices_tab(data.get("nodes", [])), "Devices")
        tabs.addTab(self._recording_tab(data["recording"]), "Recording")
        tabs.addTab(self._session_tab(data["session"]), "Session")
        self.error = QtWidgets.QLabel()
        self.error.setStyleSheet("color: #f85149;")
        self.error.setWordWrap(True)
        self.path = QtWidgets.QLineEdit(str(model.config_path or Path.cwd() / DEFAULT_CONFIG_NAME))
        path_row = QtWidgets.QHBoxLayout()
        path_row.addWidget(QtWidgets.QLabel("Save to"))
        path_row.addWidget(self.path, 1)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Save | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(tabs, 1)
        layout.addLayout(path_row)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    # ---- tabs ----------------------------------------------------------------------------------
    def _devices_tab(self, nodes: list[dict]) -> QtWidgets.QWidget:
        widget = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(widget)
        note = QtWidgets.QLabel("One row per device node. Driver: sim_camera, sim_glove, realsense, "
                                "glove… Options: a JSON object of the driver's options. "
                                "Device changes restart the devices (not while recording).")
        note.setWordWrap(True)
        note.setObjectName("dim")
        layout.addWidget(note)
        self.nodes = QtWidgets.QTableWidget(len(nodes), 4)
        self.nodes.setHorizontalHeaderLabels(["name", "driver", "endpoint", "options (JSON)"])
        self.nodes.horizontalHeader().setStretchLastSection(True)
        for row, node in enumerate(nodes):
            for col, key in enumerate(("name", "driver", "endpoint")):
                self.nodes.setItem(row, col, QtWidgets.QTableWidgetItem(str(node.get(key, "") or "")))
            self.nodes.setItem(row, 3, QtWidgets.QTableWidgetItem(json.dumps(node.get("options", {}))))
        layout.addWidget(self.nodes, 1)
        row = QtWidgets.QHBoxLayout()
        add = QtWidgets.QPushButton("Add device")
        remove = QtWidgets.QPushButton("Remove selected")
        add.clicked.connect(lambda: self.nodes.insertRow(self.nodes.rowCount()))
        remove.clicked.connect(lambda: self.nodes.removeRow(self.nodes.currentRow()))
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        layout.addLayout(row)
        return widget

    def _recording_tab(self, rec: dict) -> QtWidgets.QWidget:
        widget = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(widget)
        self.output = QtWidgets.QLineEdit(str(rec["output"]))
        self.pattern = QtWidgets.QLineEdit(rec["path_pattern"])
        self.compression = QtWidgets.QComboBox()
        self.compression.addItems(["none", "lz4", "zstd"])
        self.compression.setCurrentText(rec["compression"])
        self.color_encoding = QtWidgets.QComboBox()
        self.color_encoding.addItems(list(COLOR_ENCODINGS))
        self.color_encoding.setCurrentText(rec["color_encoding"])
        self.stream_encodings = QtWidgets.QLineEdit(", ".join(
            f"{stream}={encoding}" for stream, encoding in rec.get("stream_encodings", {}).items()))
        self.stream_encodings.setPlaceholderText("e.g. wrist/color=jpeg, cam1/color=av1")
        self.jpeg_quality = self._spin(1, 100, rec["jpeg_quality"])
        self.video_encoder = QtWidgets.QComboBox()
        self.video_encoder.setEditable(True)  # or an FFmpeg encoder name, e.g. h264_nvenc
        self.video_encoder.addItems(["", "hardware"])
        self.video_encoder.setCurrentText(rec.get("video_encoder", ""))
        self.video_encoder.lineEdit().setPlaceholderText("software (libx264, libx265, libsvtav1)")
        self.video_crf = self._dspin(0.0, 63.0, rec.get("video_crf", 0.0), 0.5)
        self.video_crf.setSpecialValueText("codec default")
        self.video_gop = self._dspin(0.1, 10.0, rec.get("video_gop_s", 1.0), 0.5)
        self.flush = self._dspin(0.05, 1.0, rec["flush_interval_s"], 0.05)
        self.min_free = self._dspin(0.0, 10000.0, rec["min_free_gb"], 1.0)
        self.reserve = self._dspin(0.0, 100000.0, rec["reserve_mb"], 64.0)
        self.master = QtWidgets.QLineEdit(rec.get("master_stream", ""))
        self.master.setPlaceholderText("first colour stream")
        for label, field in (("Output folder", self.output), ("File pattern", self.pattern),
                             ("Compression", self.compression), ("Colour storage", self.color_encoding),
                             ("Colour storage per stream", self.stream_encodings),
                             ("JPEG quality", self.jpeg_quality), ("Video encoder", self.video_encoder),
                             ("Video quality (CRF)", self.video_crf),
                             ("Video keyframe every (s)", self.video_gop), ("Flush every (s)", self.flush),
                             ("Refuse to start below (GB free)", self.min_free),
                             ("Stop below (MB free)", self.reserve), ("Master stream", self.master)):
            form.addRow(label, field)
        return widget

    def _session_tab(self, info: dict) -> QtWidgets.QWidget:
        widget = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(widget)
        self.reset = self._dspin(0.0, 600.0, info["reset_countdown_s"], 1.0)
        self.auto_start = QtWidgets.QCheckBox("start the next episode when the countdown ends")
        self.auto_start.setChecked(info["auto_start_after_reset"])
        self.glove_button = QtWidgets.QCheckBox("the glove's record button starts and stops episodes")
        self.glove_button.setChecked(info["glove_record_button"])
        self.sounds = QtWidgets.QCheckBox("play a sound at start and stop")
        self.sounds.setChecked(info["sounds"])
        self.known = {}
        for key in ("known_tasks", "known_operators", "known_stations"):
            self.known[key] = QtWidgets.QLineEdit(", ".join(info.get(key, [])))
        form.addRow("Reset countdown (s)", self.reset)
        form.addRow("", self.auto_start)
        form.addRow("", self.glove_button)
        form.addRow("", self.sounds)
        form.addRow("Tasks offered", self.known["known_tasks"])
        form.addRow("Operators offered", self.known["known_operators"])
        form.addRow("Stations offered", self.known["known_stations"])
        return widget

    @staticmethod
    def _spin(low: int, high: int, value: int) -> QtWidgets.QSpinBox:
        box = QtWidgets.QSpinBox()
        box.setRange(low, high)
        box.setValue(value)
        return box

    @staticmethod
    def _dspin(low: float, high: float, value: float, step: float) -> QtWidgets.QDoubleSpinBox:
        box = QtWidgets.QDoubleSpinBox()
        box.setRange(low, high)
        box.setDecimals(2)
        box.setSingleStep(step)
        box.setValue(value)
        return box

    # ---- result --------------------------------------------------------------------------------
    def config_data(self) -> dict:
        """The edited config as plain data (raises ConfigError on unreadable options)."""
        nodes = []
        for row in range(self.nodes.rowCount()):
            cells = [(self.nodes.item(row, col).text().strip() if self.nodes.item(row, col) else "")
                     for col in range(4)]
            if not any(cells):
                continue
            try:
                options = json.loads(cells[3] or "{}")
            except json.JSONDecodeError as exc:
                raise ConfigError(f"device row {row + 1} ({cells[0] or 'unnamed'}): options are not "
                                  f"valid JSON: {exc}") from None
            # Keys the table does not show (remote, server_key...) stay as they were.
            node = {**self._original_nodes.get(cells[0], {}), "name": cells[0], "driver": cells[1],
                    "options": options}
            node.pop("endpoint", None)
            if cells[2]:
                node["endpoint"] = cells[2]
            nodes.append(node)
        session = {**to_mapping(self.model.config)["session"],
                   "reset_countdown_s": self.reset.value(),
                   "auto_start_after_reset": self.auto_start.isChecked(),
                   "glove_record_button": self.glove_button.isChecked(),
                   "sounds": self.sounds.isChecked()}
        for key, edit in self.known.items():
            session[key] = [v.strip() for v in edit.text().split(",") if v.strip()]
        recording = {"output": self.output.text(), "path_pattern": self.pattern.text(),
                     "compression": self.compression.currentText(),
                     "color_encoding": self.color_encoding.currentText(),
                     "stream_encodings": self._stream_encodings(),
                     "video_encoder": self.video_encoder.currentText().strip(),
                     "video_crf": self.video_crf.value(), "video_gop_s": self.video_gop.value(),
                     "jpeg_quality": self.jpeg_quality.value(), "flush_interval_s": self.flush.value(),
                     "min_free_gb": self.min_free.value(), "reserve_mb": self.reserve.value(),
                     "master_stream": self.master.text().strip()}
        # Sections this dialog does not edit ([[services]], [security]...) are kept as they are.
        return {**to_mapping(self.model.config), "nodes": nodes,
                "recording": {**to_mapping(self.model.config)["recording"], **recording},
                "session": session}

    def _stream_encodings(self) -> dict[str, str]:
        """``"wrist/color=jpeg, cam1/color=av1"`` as a mapping (ConfigError naming a bad item)."""
        found = {}
        for item in (v.strip() for v in self.stream_encodings.text().split(",")):
            if not item:
                continue
            stream, sep, encoding = (part.strip() for part in item.partition("="))
            if not sep or not stream or not encoding:
                raise ConfigError(f"colour storage per stream: {item!r} is not stream=encoding "
                                  "(e.g. wrist/color=jpeg)")
            found[stream] = encoding
        return found

    def accept(self) -> None:
        try:
            config = from_mapping(AppConfig, self.config_data(), where="settings")
        except ConfigError as exc:
            self.error.setText(str(exc))
            return
        problems = check_node_options(config.nodes)
        rec = config.recording
        try:  # a named hardware encoder this machine lacks: said here, not at the next start
            check_encoder_opens([rec.color_encoding, *rec.stream_encodings.values()], rec.video_encoder)
        except VideoCodecError as exc:
            problems.append(str(exc))
        if problems:
            self.error.setText("\n".join(problems))
            return
        path = Path(self.path.text()).expanduser()
        future = self.model.apply_config(config, save_to=path)
        future.add_done_callback(lambda f: None)
        parent = self.parent()
        if hasattr(parent, "cues"):
            parent.cues.enabled = config.session.sounds
        super().accept()
