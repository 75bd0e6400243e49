"""Remote device nodes over tcp:// with CurveZMQ: keys, encryption, unknown peers rejected,
plain binds beyond loopback refused, and a whole session recording through secured nodes."""

import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth

from collector.wire import security
from collector.wire.bus import NodePublisher, Subscriber, node_endpoints, request
from collector.cli import main as cli_main
from collector.config import NodeConfig, AppConfig, sim_config
from collector.wire.options import ConfigError, from_mapping
from collector.storage.reader import open_episode
from collector.wire.protocol import Describe, Event, Sample
from collector.recording.session import Session

ROOT = Path(__file__).resolve().parents[3]


def free_base_port() -> int:
    """A port P with P, P+1 and P+2 free on loopback (a node's data, live and ctl)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base > 65000:
            continue
        socks = []
        try:
            for port in range(base, base + 3):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


@pytest.fixture
def keys(tmp_path):
    """station (the app) and node keypairs; authorized/ holds the station's public key."""
    folder = tmp_path / "keys"
    assert cli_main(["keys", str(folder), "--name", "station"]) == 0
    assert cli_main(["keys", str(folder), "--name", "glove"]) == 0
    assert cli_main(["keys", str(folder), "--name", "cam0"]) == 0
    assert cli_main(["keys", str(folder), "--name", "intruder"]) == 0
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    (authorized / "station.key").write_bytes((folder / "station.key").read_bytes())
    yield folder, authorized
    security.configure_client(None, {})


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def test_keys_command_writes_a_keypair_and_never_overwrites(tmp_path, capsys):
    assert cli_main(["keys", str(tmp_path), "--name", "pi"]) == 0
    assert (tmp_path / "pi.key").exists() and oct((tmp_path / "pi.key_secret").stat().st_mode)[-3:] == "600"
    public, secret = security.load_secret(tmp_path / "pi.key_secret")
    assert len(public) == len(secret) == 40
    assert cli_main(["keys", str(tmp_path), "--name", "pi"]) == 1
    assert "not overwriting" in capsys.readouterr().err


def test_plain_tcp_beyond_loopback_is_refused(context):
    describe = Describe(node="n", streams=[], info={})
    with pytest.raises(security.SecurityError, match="refusing to bind tcp://0.0.0.0"):
        NodePublisher("tcp://0.0.0.0:5999", describe, context=context)
    port = free_base_port()
    NodePublisher(f"tcp://127.0.0.1:{port}", describe, context=context).close()  # loopback: fine
    NodePublisher(f"tcp://0.0.0.0:{free_base_port()}", describe, context=context, insecure=True).close()


def _publish(node: NodePublisher, n: int) -> None:
    for i in range(n):
        node.send(Sample("glove", "glove/hand", i, i, time.time_ns(), {"q": np.full(3, i, np.float32)}))
        time.sleep(0.002)


def _received(sub: Subscriber, seconds: float) -> list[int]:
    seqs, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = sub.receive(50)
        if isinstance(message, Sample):
            seqs.append(message.seq)
    return seqs


def test_curve_node_serves_authorized_clients_only(keys, context, tmp_path):
    folder, authorized = keys
    base = f"tcp://127.0.0.1:{free_base_port()}"
    curve = security.CurveServer(folder / "glove.key_secret", authorized, context=context)
    node = NodePublisher(base, Describe(node="glove", streams=[], info={}), curve=curve,
                         context=context)
    ipc_node = NodePublisher(f"ipc://{tmp_path}/plain", Describe(node="plain", streams=[], info={}),
                             context=context)
    try:
        # An unknown peer: its handshake is refused, so requests go unanswered.
        security.configure_client(folder / "intruder.key_secret", {base: folder / "glove.key"})
        with pytest.raises(TimeoutError):
            request(_ctl(base), "ping", 0.5, context)
        intruder = Subscriber([_data(base)], context=context)
        # A client that does not speak CURVE at all.
        security.configure_client(None, {})
        with pytest.raises(TimeoutError):
            request(_ctl(base), "ping", 0.5, context)
        plain = Subscriber([_data(base)], context=context)

        security.configure_client(folder / "station.key_secret", {base: folder / "glove.key"})
        assert request(_ctl(base), "ping", 2.0, context)["ok"]
        # One SUB socket, a secured tcp node and a plain ipc node side by side.
        station = Subscriber([_data(base), f"ipc://{tmp_path}/plain.data"], context=context)
        time.sleep(0.5)  # handshakes
        _publish(node, 50)
        ipc_node.send(Sample("plain", "plain/x", 0, 0, 0, {"q": np.zeros(3, np.float32)}))
        seqs = _received(station, 1.0)
        assert sorted(s for s in seqs if s > 0) == list(range(1, 50)) and seqs.count(0) == 2
        assert _received(intruder, 0.3) == [] and _received(plain, 0.3) == []
    finally:
        node.close()
        ipc_node.close()
        curve.stop()


def _data(base: str) -> str:
    return node_endpoints(base).data


def _ctl(base: str) -> str:
    return node_endpoints(base).ctl


def test_config_checks_remote_nodes():
    with pytest.raises(ConfigError, match="needs a tcp:// endpoint"):
        from_mapping(NodeConfig, {"name": "glove", "driver": "glove", "remote": True})
    with pytest.raises(ConfigError, match="client_secret is empty"):
        from_mapping(AppConfig, {"nodes": [{"name": "g", "driver": "sim_glove",
                                            "endpoint": "tcp://10.0.0.2:5550",
                                            "server_key": "keys/g.key"}]})


def test_session_records_from_a_secured_local_node_and_a_remote_one(keys, tmp_path):
    """The glove runs on 'another host' (a process the app does not start, bound beyond
    loopback with keys); the camera is a local node that the supervisor starts with keys."""
    folder, authorized = keys
    glove_base = f"tcp://0.0.0.0:{free_base_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    remote = subprocess.Popen([sys.executable, "-m", "devices", "sim_glove", "--name", "glove",
                               "--endpoint", glove_base, "--options", '{"rate_hz": 200.0}',
                               "--curve-secret", str(folder / "glove.key_secret"),
                               "--curve-authorized", str(authorized)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        config = sim_config(seed=3)
        config.recording.output = tmp_path / "rec"
        config.recording.min_free_gb = 0.01
        config.security.client_secret = str(folder / "station.key_secret")
        config.security.authorized_keys = str(authorized)
        cam, glove = config.nodes
        cam.endpoint, cam.server_key = f"tcp://127.0.0.1:{free_base_port()}", str(folder / "cam0.key")
        glove.endpoint = glove_base.replace("0.0.0.0", "127.0.0.1")
        glove.remote, glove.server_key = True, str(folder / "glove.key")
        with Session(config) as session:
            assert session.status()["processes"]["glove"] == "remote"
            session.start_episode()
            time.sleep(1.5)
            result = session.stop_episode()
        with open_episode(result["path"]) as ep:
            assert ep.count("glove/hand") >= 200 and ep.count("cam0/color") >= 30
            assert ep.h5["streams/glove/hand"].attrs["gaps"] == 0
        assert remote.poll() is None, "the app must not stop a remote node"
    finally:
        remote.terminate()
        out = remote.communicate(timeout=10)[0].decode(errors="replace")
    assert "Traceback" not in out, out


def test_secret_key_is_created_0600_never_chmodded_afterwards(tmp_path, monkeypatch):
    """The secret file is born 0600 (os.open with O_EXCL and mode 0600), whatever the umask:
    there is no window in which another user could open it, so no chmod is needed afterwards."""
    created: dict[str, int] = {}
    real_open = os.open

    def spying_open(path, flags, mode=0o777, *args, **kwargs):
        fd = real_open(path, flags, mode, *args, **kwargs)
        if flags & os.O_CREAT:
            created[os.path.basename(path)] = stat.S_IMODE(os.fstat(fd).st_mode)
        return fd

    def no_chmod(*_args, **_kwargs):
        raise AssertionError("the secret key must not need a chmod after creation")

    monkeypatch.setattr(os, "open", spying_open)
    monkeypatch.setattr(os, "chmod", no_chmod)
    old_umask = os.umask(0)  # the most permissive umask: only the mode given at creation counts
    try:
        public, secret = security.generate_keys(tmp_path, "pi")
    finally:
        os.umask(old_umask)
    assert created["pi.key_secret"] == 0o600, oct(created["pi.key_secret"])
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    # the files are what pyzmq writes and reads
    assert security.load_secret(secret)[0] == security.load_public(public)
    assert zmq.auth.load_certificate(str(public))[1] is None


def test_key_creation_race_finds_no_readable_secret(tmp_path):
    """A watcher stats every new file in the folder while keys are created: no secret key file
    is ever seen with permissions wider than 0600 (measured: 53 of 300 were, with pyzmq's 0644)."""
    stop = threading.Event()
    widest: dict[str, int] = {}

    def watch() -> None:
        while not stop.is_set():
            for entry in os.scandir(tmp_path):
                if entry.name.endswith(".key_secret"):
                    try:
                        mode = stat.S_IMODE(os.stat(entry.path).st_mode)
                    except FileNotFoundError:
                        continue
                    widest[entry.name] = widest.get(entry.name, 0) | mode

    watcher = threading.Thread(target=watch, daemon=True)
    old_umask = os.umask(0o022)
    watcher.start()
    try:
        for i in range(150):
            security.generate_keys(tmp_path, f"k{i}")
    finally:
        stop.set()
        watcher.join(5)
        os.umask(old_umask)
    assert widest and all(mode == 0o600 for mode in widest.values()), {
        name: oct(mode) for name, mode in widest.items() if mode != 0o600}


def test_configure_client_refuses_a_server_key_shared_by_two_nodes(keys):
    folder, _ = keys
    with pytest.raises(security.SecurityError, match="have the same server key"):
        security.configure_client(folder / "station.key_secret",
                                  {"tcp://10.0.0.2:5550": folder / "glove.key",
                                   "tcp://10.0.0.3:5550": folder / "glove.key"})


def test_another_key_holder_can_neither_serve_as_nor_speak_for_a_node(keys, context):
    """The app reaches node X only with X's own server key: a host holding cam0's secret (an
    authorized node) that serves at the glove's endpoint never completes a handshake, and what
    cam0 publishes in the glove's name on its own socket is rejected as forged."""
    from tests.waiting import wait_for

    folder, authorized = keys
    glove_base = f"tcp://127.0.0.1:{free_base_port()}"
    cam_base = f"tcp://127.0.0.1:{free_base_port()}"
    cam_curve = security.CurveServer(folder / "cam0.key_secret", authorized, context=context)
    impostor_context = zmq.Context()  # another host: its own context and authenticator
    impostor_curve = security.CurveServer(folder / "cam0.key_secret", authorized,
                                          context=impostor_context)
    cam = NodePublisher(cam_base, Describe(node="cam0", streams=[], info={}), curve=cam_curve,
                        context=context)
    impostor = NodePublisher(glove_base, Describe(node="glove", streams=[], info={}),
                             curve=impostor_curve, context=impostor_context)
    security.configure_client(folder / "station.key_secret",
                              {glove_base: folder / "glove.key", cam_base: folder / "cam0.key"})
    station = Subscriber({"glove": _data(glove_base), "cam0": _data(cam_base)}, context=context)
    received: list = []

    def cam_probe_seen() -> bool:
        cam.send(Event(node="cam0", kind="probe", t_host_ns=time.time_ns()))
        impostor.send(Sample("glove", "glove/hand", 0, 0, time.time_ns(), {"q": np.zeros(3, np.float32)}))
        message = station.receive(50)
        if message is not None:
            received.append(message)
        return any(isinstance(m, Event) and m.node == "cam0" for m in received)

    try:
        assert request(_ctl(cam_base), "ping", 2.0, context)["ok"]
        with pytest.raises(TimeoutError):
            request(_ctl(glove_base), "ping", 0.5, context)
        wait_for(cam_probe_seen, 20, message="the station never heard cam0")
        for _ in range(20):  # the impostor has had every chance to be heard
            impostor.send(Sample("glove", "glove/hand", 1, 1, time.time_ns(), {"q": np.zeros(3, np.float32)}))
        cam.send(Event(node="glove", kind="disconnected", t_host_ns=time.time_ns()))
        cam.send(Event(node="cam0", kind="done", t_host_ns=time.time_ns()))

        def done() -> bool:
            message = station.receive(50)
            if message is not None:
                received.append(message)
            return any(isinstance(m, Event) and m.kind == "done" for m in received)
        wait_for(done, 20, message="cam0's last event")
    finally:
        station.close()
        cam.close()
        impostor.close()
        cam_curve.stop()
        impostor_curve.stop()
        impostor_context.destroy(linger=0)
    assert not any(m.node == "glove" for m in received), received
    assert station.malformed == {"forged_sender": 1}
    assert station.malformed_from == {("cam0", "forged_sender"): 1}
