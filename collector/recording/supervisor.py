"""Starts the device nodes and the recorder as processes, watches them, and stops them cleanly.

Nodes are started by driver name (``python -m devices DRIVER``), so the core never imports a
driver; services (``[[services]]``, e.g. the WAM preview) by module name (``python -m MODULE
--name --endpoint --nodes --options``), so it never imports a service either. A node that dies is restarted (the recorder sees the restart from ``seq`` and marks it in
the episode); the recorder is asked to finish its episode before anything is stopped.

Liveness watchdog: a node that is alive but has published no sample for its
``liveness_timeout_s`` (default 5 s; 0: off) while its streams are expected is restarted too
(stopped with SIGTERM, SIGKILL if it does not go within 2 s), once two checks at least
:data:`CONFIRM_SILENCE_S` apart have seen it silent; a (re)started node that has not published
yet gets at least :data:`STARTUP_GRACE_S`. The recorder's ``status`` says how
old each stream's last sample is; a node whose last event says it is ``disconnected`` or in
``error`` is reconnecting to its device and reporting it, so it is left alone. The restarted node
announces itself (``connected``) and its ``seq`` restarts, which the episode records.
:meth:`Supervisor.check` runs it; :attr:`Supervisor.restart_reasons` says why each node was last
restarted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.wire import security
from collector.wire.bus import default_endpoint, new_runtime_dir, node_endpoints, request
from collector.config import AppConfig, NodeConfig, ServiceConfig
from collector.wire.options import ConfigError, to_mapping

log = logging.getLogger("collector.recording.supervisor")

#: A node must be seen silent by two checks at least this far apart before it is restarted.
CONFIRM_SILENCE_S = 0.5
#: A (re)started node that has not published yet is given at least this long.
STARTUP_GRACE_S = 15.0
#: Environment variable that gives the processes started here the recorder's control endpoint.
RECORDER_CTL_ENV = "COLLECTOR_RECORDER_CTL"


class StartupError(RuntimeError):
    """A process did not come up; the message carries the end of its log."""


@dataclass
class Child:
    name: str
    argv: list[str]
    ctl: str
    log_path: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    #: Runs on another host: never started, restarted or stopped here.
    remote: bool = False
    #: Restart the node when it publishes no sample for this long (0: never).
    liveness_timeout_s: float = 0.0
    #: ``time.monotonic()`` of the last start.
    started_at: float = 0.0
    #: When the watchdog first saw it silent (None: it was not, at the last check).
    silent_since: float | None = None

    def start(self, env: dict[str, str]) -> None:
        self.started_at = time.monotonic()
        self.silent_since = None
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.argv, stdout=log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env,
                                        # A terminal's Ctrl-C goes to the app alone, which then
                                        # stops the children in order (recorder first).
                                        start_new_session=True)
        log_file.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Supervisor:
    """Owns the processes of one session; use as a context manager."""

    def __init__(self, config: AppConfig, *, runtime_dir: str | None = None,
                 restart_nodes: bool = True) -> None:
        self.config = config
        self._own_runtime_dir = runtime_dir is None
        self.runtime_dir = runtime_dir or new_runtime_dir()
        self.restart_nodes = restart_nodes
        #: Why each node was last restarted (``"exited with code -9"``, ``"no sample for 5.2 s
        #: (liveness_timeout_s = 5)"``).
        self.restart_reasons: dict[str, str] = {}
        self.node_bases: dict[str, str] = {}
        self.nodes: dict[str, Child] = {}
        self.recorder: Child | None = None
        #: Each enabled service's base endpoint once it answers, or why it is absent
        #: (``service_errors``); a started service is in :attr:`nodes` too.
        self.service_endpoints: dict[str, str] = {}
        self.service_errors: dict[str, str] = {
            s.name: f"the {s.name} service is off (enabled = false)"
            for s in config.services if not s.enabled}
        self.recorder_ctl = f"ipc://{os.path.join(self.runtime_dir, 'recorder.ctl')}"
        self._env = dict(os.environ)
        # Services learn of saved episodes from the recorder's status (its ``finished``
        # results), as the session does: e.g. the WAM trainer (collector.wam.trainer_service).
        self._env[RECORDER_CTL_ENV] = self.recorder_ctl
        # Children must import this checkout's packages however the app was started.
        root = str(Path(__file__).resolve().parents[2])
        self._env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, self._env.get("PYTHONPATH")]))
        # Nodes with a server_key are reached over CurveZMQ, from this process and its children.
        servers = {n.endpoint: n.server_key for n in [*config.nodes, *config.services]
                   if n.server_key and getattr(n, "enabled", True)}
        curve = security.configure_client(config.security.client_secret or None, servers)
        if curve:
            self._env[security.CURVE_ENV] = curve

    def _node_child(self, node: NodeConfig) -> Child:
        base = node.endpoint or default_endpoint(self.runtime_dir, node.name)
        self.node_bases[node.name] = base
        argv = [sys.executable, "-m", "devices", node.driver, "--name", node.name,
                "--endpoint", base, "--options", json.dumps(node.options)]
        if node.publish:
            argv += ["--node-options", json.dumps(node.publish)]
        if node.server_key and not node.remote:  # a local node that must speak CURVE
            sec = self.config.security
            authorized = sec.authorized_keys or str(Path(sec.client_secret).parent)
            argv += ["--curve-secret", f"{node.server_key}_secret", "--curve-authorized", authorized]
        return Child(node.name, argv, node_endpoints(base).ctl,
                     Path(self.runtime_dir) / f"{node.name}.log", remote=node.remote,
                     liveness_timeout_s=node.liveness_timeout_s)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start every node, wait until each answers, then start the recorder."""
        if not self.config.nodes:
            raise StartupError("the config names no device nodes")
        for node in self.config.nodes:
            child = self.nodes[node.name] = self._node_child(node)
            if not child.remote:
                child.start(self._env)
        for child in self.nodes.values():
            self._wait_ready(child, timeout_s)
        for service in self.config.services:
            if service.enabled:
                self._start_service(service, timeout_s)
        argv = [sys.executable, "-m", "collector.recording.recorder", "--ctl", self.recorder_ctl,
                "--nodes", json.dumps(self.node_bases),
                "--recording", json.dumps(to_mapping(self.config.recording))]
        self.recorder = Child("recorder", argv, self.recorder_ctl,
                              Path(self.runtime_dir) / "recorder.log")
        self.recorder.start(self._env)
        self._wait_ready(self.recorder, timeout_s)

    def _start_service(self, service: ServiceConfig, timeout_s: float) -> None:
        """Start one service (a remote one: reach it); if it fails, record without it (its
        preview says why)."""
        base = service.endpoint if service.remote else default_endpoint(self.runtime_dir, service.name)
        argv = [sys.executable, "-m", service.module, "--name", service.name, "--endpoint", base,
                "--nodes", json.dumps(self.node_bases), "--options", json.dumps(service.options)]
        child = Child(service.name, argv, node_endpoints(base).ctl,
                      Path(self.runtime_dir) / f"{service.name}.log", remote=service.remote)
        if not service.remote:
            child.start(self._env)
        try:
            self._wait_ready(child, timeout_s)
        except StartupError as exc:
            log.warning("service %s unavailable: %s", service.name, exc)
            self.service_errors[service.name] = str(exc)
            if child.alive:
                child.process.send_signal(signal.SIGTERM)
                _wait_or_kill(child.process, 5)
            return
        # Registered like a device node: restarted if it dies, its declared streams recorded.
        self.nodes[service.name] = child
        self.node_bases[service.name] = base
        self.service_endpoints[service.name] = base
        self.service_errors.pop(service.name, None)

    def _wait_ready(self, child: Child, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if child.remote:
                pass  # nothing to watch but the answer
            elif not child.alive:
                raise StartupError(f"{child.name} exited with code {child.process.returncode}:\n"
                                   f"{child.log_tail()}")
            try:
                if request(child.ctl, "ping", timeout_s=0.5).get("ok"):
                    return
            except TimeoutError:
                continue
        if child.remote:
            raise StartupError(f"remote node {child.name} did not answer at {child.ctl} within "
                               f"{timeout_s} s (is it running there, with matching keys?)")
        raise StartupError(f"{child.name} did not answer within {timeout_s} s:\n{child.log_tail()}")

    def recorder_request(self, cmd: str, timeout_s: float = 30.0, **params: Any) -> dict[str, Any]:
        return request(self.recorder_ctl, cmd, timeout_s=timeout_s, **params)

    def check(self, status: dict[str, Any] | None = None) -> dict[str, str]:
        """Process states (``running``, ``restarted``, ``exited N``, ``silent``); restarts dead
        nodes, and live nodes silent past their ``liveness_timeout_s`` (see the module
        docstring). ``status`` is a recorder ``status`` reply if the caller has one; otherwise
        it is asked for when a node's liveness needs judging."""
        states = {}
        silent = self._silent_nodes(status)
        for name, child in self.nodes.items():
            if child.remote:
                states[name] = "remote"
            elif child.alive and name not in silent:
                states[name] = "running"
            elif not self.restart_nodes:
                states[name] = "silent" if child.alive else f"exited {child.process.returncode}"
            else:
                if child.alive:
                    reason = silent[name]
                    log.warning("node %s is alive but %s; restarting it", name, reason)
                    _stop_process(child.process)
                else:
                    reason = f"exited with code {child.process.returncode}"
                    log.warning("node %s %s; restarting:\n%s", name, reason, child.log_tail(5))
                child.restarts += 1
                self.restart_reasons[name] = reason
                # The node announces why in a ``restarted`` event (collector/wire/node.py).
                child.start({**self._env, "COLLECTOR_RESTART_REASON": reason})
                states[name] = "restarted"
        if self.recorder is not None:
            states["recorder"] = "running" if self.recorder.alive else f"exited {self.recorder.process.returncode}"
        return states

    def _silent_nodes(self, status: dict[str, Any] | None) -> dict[str, str]:
        """Live local nodes that published no sample for their liveness timeout, with why."""
        now = time.monotonic()
        judged = [c for c in self.nodes.values() if c.liveness_timeout_s > 0 and not c.remote
                  and c.alive and now - c.started_at > c.liveness_timeout_s]  # else: too early
        if not judged or self.recorder is None or not self.recorder.alive:
            return {}
        if status is None:
            try:
                status = self.recorder_request("status", timeout_s=2.0)
            except (TimeoutError, OSError, ValueError) as exc:
                log.warning("liveness check skipped: the recorder did not answer (%s)", exc)
                return {}
        streams = status.get("streams") or {}
        node_states = status.get("nodes") or {}
        silent = {}
        for child in judged:
            if node_states.get(child.name) in ("disconnected", "error"):
                continue  # reconnecting to its device, and saying so every second
            ages = [s.get("age_s") for name, s in streams.items()
                    if name.startswith(f"{child.name}/") and isinstance(s, dict)]
            if not ages:
                continue  # no streams declared (yet): nothing is expected of it
            since_start = now - child.started_at
            # A stream not heard of since this process started is as old as the process.
            idle = min(since_start if a is None else min(float(a), since_start) for a in ages)
            # Until its first sample, a (re)started node may take longer: opening a device or
            # importing an SDK takes seconds, and restarting it for that would loop.
            limit = child.liveness_timeout_s if idle < since_start else \
                max(child.liveness_timeout_s, STARTUP_GRACE_S)
            if idle <= limit:
                child.silent_since = None
            elif child.silent_since is None:
                # Seen once: confirm at a later check. A recorder that was itself paused answers
                # its first status with every stream stale, before it has read its backlog.
                child.silent_since = now
            elif now - child.silent_since >= CONFIRM_SILENCE_S:
                silent[child.name] = (f"published no sample for {idle:.1f} s "
                                      f"(liveness_timeout_s = {child.liveness_timeout_s:g})")
        return silent

    def stop(self, timeout_s: float = 60.0) -> None:
        """Let the recorder finish its episode and exit, then stop the nodes."""
        if self.recorder is not None and self.recorder.alive:
            try:
                self.recorder_request("shutdown", timeout_s=5)
            except TimeoutError:
                self.recorder.process.send_signal(signal.SIGTERM)
            _wait_or_kill(self.recorder.process, timeout_s)
        for child in self.nodes.values():
            if child.alive:
                child.process.send_signal(signal.SIGTERM)
        for child in self.nodes.values():
            if child.process is not None:
                _wait_or_kill(child.process, 5)
        if self._own_runtime_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def __enter__(self) -> "Supervisor":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _stop_process(process: subprocess.Popen, timeout_s: float = 2.0) -> None:
    """Stop a live but unresponsive process: SIGTERM (and SIGCONT, in case it was stopped, so
    that it can exit cleanly), then SIGKILL if it is still there after ``timeout_s``."""
    for sig in (signal.SIGTERM, signal.SIGCONT):
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            break
    _wait_or_kill(process, timeout_s)


def _wait_or_kill(process: subprocess.Popen, timeout_s: float) -> None:
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        log.error("%s (pid %d) did not stop within %s s; killing it", _process_name(process),
                  process.pid, timeout_s)
        process.kill()
        process.wait()


def _process_name(process: subprocess.Popen) -> str:
    """Which child ``process`` is, from its command line (``-m module --name name``)."""
    args = [str(a) for a in process.args] if isinstance(process.args, (list, tuple)) else [str(process.args)]
    module = args[args.index("-m") + 1] if "-m" in args[:-1] else args[0]
    name = args[args.index("--name") + 1] if "--name" in args[:-1] else ""
    return f"{module} {name}".strip()


def check_node_options(nodes: list[NodeConfig], timeout_s: float = 30.0) -> list[str]:
    """The drivers' exact messages for invalid node options (empty list: all valid).

    Runs the drivers' own config validation in a child process, as the core imports no driver.
    """
    payload = json.dumps([{"name": n.name, "driver": n.driver, "options": n.options} for n in nodes])
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "devices.check", payload], capture_output=True,
                          text=True, timeout=timeout_s, env=env)
    if proc.returncode != 0:
        return [f"could not check the device options: {proc.stderr.strip()[-500:]}"]
    return json.loads(proc.stdout)


def check_drivers(config: AppConfig) -> None:
    """Refuse a config whose local nodes name an unknown driver or options their driver does not
    take, before any process starts (the CLI and the GUI call it right after loading a config).

    Raises:
        ConfigError: one line, the drivers' exact messages joined by ``"; "``.
    """
    problems = check_node_options([n for n in config.nodes if not n.remote])
    if problems:
        raise ConfigError("; ".join(problems))
