"""The WAM node on another host: its own process serving the node protocol over tcp with
CurveZMQ, reading the station's nodes over CurveZMQ too, running a predictor named in its options;
the app follows it with the preview it always uses and sees the prediction's round trip."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collector.cli import main as cli_main
from collector.wam.preview import WamPreview
from collector.wire import security
from collector.wire.bus import node_endpoints, request
from tests.collector.wam.live_inputs import StandInStation
from tests.collector.wire.test_remote_nodes import free_base_port
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def keys(tmp_path):
    """Keypairs of the app (station), the station's node (cam) and the WAM host (wam); each
    server's authorized/ folder holds the public keys of its clients."""
    folder = tmp_path / "keys"
    for name in ("station", "cam", "wam"):
        assert cli_main(["keys", str(folder), "--name", name]) == 0
    for server, clients in {"cam": ["wam"], "wam": ["station"]}.items():
        (tmp_path / f"{server}-authorized").mkdir()
        for client in clients:
            (tmp_path / f"{server}-authorized" / f"{client}.key").write_bytes((folder / f"{client}.key").read_bytes())
    yield folder
    security.configure_client(None, {})


def test_a_remote_wam_node_over_curve_serves_predictions_to_the_app_only(keys, tmp_path):
    station_base = f"tcp://127.0.0.1:{free_base_port()}"
    station = StandInStation(station_base, security.CurveServer(keys / "cam.key_secret",
                                                                 tmp_path / "cam-authorized"))
    wam_base = f"tcp://127.0.0.1:{free_base_port()}"
    node = subprocess.Popen(
        [sys.executable, "-m", "collector.wam.node", "--name", "wam", "--endpoint", wam_base,
         "--nodes", json.dumps({"station": station_base}),
         "--node-keys", json.dumps({"station": str(keys / "cam.key")}),
         "--curve-secret", str(keys / "wam.key_secret"), "--curve-authorized", str(tmp_path / "wam-authorized"),
         "--options", json.dumps({"predictor": "tests.collector.wam.live_inputs:make_toy",
                                  "predictor_options": {"shift": 5}, "nice": 0})],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    preview = None
    try:
        security.configure_client(keys / "station.key_secret", {wam_base: keys / "wam.key"})
        wait_for(lambda: node.poll() is None and _answers(wam_base), timeout_s=60,
                 message="the remote WAM node answers over CurveZMQ")
        preview = WamPreview(wam_base)
        state = wait_for(lambda: (s := preview.state()).available and s, timeout_s=60)
        p = state.prediction
        assert p.frames.shape == (3, 16, 16, 3) and p.frames.min() == 5  # the toy's dark scene + 5
        # Capture to arrival back at the app: at least the time the prediction took, and recent.
        assert p.inference_ms / 1e3 <= state.round_trip_s <= state.age_s < 5.0
        status = request(node_endpoints(wam_base).ctl, "status")
        assert status["predictor"].endswith("ToyPredictor") and status["frames_received"] > 0
        # A client without the app's keys gets no answer at all.
        security.configure_client(keys / "cam.key_secret", {wam_base: keys / "wam.key"})
        assert not _answers(wam_base)
    finally:
        if preview is not None:
            preview.close()
        node.terminate()
        _, err = node.communicate(timeout=30)
        station.publisher.curve.stop()
        station.close()
    assert node.returncode == 0, err


def _answers(base: str) -> bool:
    try:
        return bool(request(node_endpoints(base).ctl, "ping", timeout_s=0.5).get("ok"))
    except TimeoutError:
        return False


def test_a_remote_service_is_configured_by_endpoint_and_key(tmp_path):
    from collector.config import ServiceConfig, sim_config
    from collector.wire.options import ConfigError

    config = sim_config(seed=1)
    config.services.append(ServiceConfig("wam", "collector.wam.node", remote=True,
                                         endpoint="tcp://gpu-box.local:5560", server_key="keys/wam.key"))
    with pytest.raises(ConfigError, match="server_key but \\[security\\] client_secret is empty"):
        config.validate()
    config.security.client_secret = "keys/station.key_secret"
    config.validate()
    for wrong in (dict(remote=True, endpoint="ipc:///tmp/wam"), dict(endpoint="tcp://gpu-box.local:5560"),
                  dict(server_key="keys/wam.key")):
        with pytest.raises(ConfigError, match="remote = true and a tcp:// endpoint"):
            ServiceConfig("wam", "collector.wam.node", **wrong).validate()
