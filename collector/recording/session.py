"""The Qt-free model of a collection session: what the CLI drives now and the GUI drives later.

Every action an operator can take is a method here (start, stop, discard, tag); each returns
the recorder's reply or raises :class:`SessionError` with a message for the operator. Events for
views are the collect model's business (:mod:`collector.recording.collect`). It talks to the
recorder process over its control socket, so it never blocks on disk I/O longer than a request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collector.wire import protocol
from collector.config import AppConfig
from collector.recording.health import StreamStatus
from collector.recording.supervisor import Supervisor
from collector.storage.library import count_task_episodes
from collector.storage.video import VideoCodecError, check_encoder_opens
from collector.wire.options import ConfigError

#: Seconds to wait for the recorder: closing an episode writes its synchronized index.
REQUEST_TIMEOUT_S = {"status": 5.0, "start": 30.0, "stop": 120.0, "discard": 120.0, "tag": 30.0,
                     "meta": 5.0, "hands_free": 5.0}


class SessionError(RuntimeError):
    """An action the session refused; the message is meant for the operator."""


@dataclass
class Session:
    """One operator session over a running set of nodes and a recorder."""

    config: AppConfig
    supervisor: Supervisor | None = None
    episodes_recorded: int = 0
    last_episode: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.episodes_recorded:  # the counter goes on from today's episodes of the task
            self.episodes_recorded = self.episodes_on_disk()

    def episodes_on_disk(self) -> int:
        """The session task's episodes already on disk for today (what the counter starts from)."""
        rec = self.config.recording
        try:
            return count_task_episodes(rec.output, rec.path_pattern, self.config.session.task,
                                       datetime.now().astimezone())
        except (OSError, KeyError, ValueError, IndexError):  # an unreadable folder, a custom pattern
            return 0

    def open(self) -> None:
        """Start the device nodes and the recorder (``ConfigError`` first if the chosen video
        encoder cannot run on this machine)."""
        rec = self.config.recording
        try:
            check_encoder_opens([rec.color_encoding, *rec.stream_encodings.values()], rec.video_encoder)
        except VideoCodecError as exc:
            raise ConfigError(str(exc)) from None
        if self.supervisor is None:
            self.supervisor = Supervisor(self.config)
        self.supervisor.start()
        self.share_meta()

    def close(self) -> None:
        """Finish a running episode and stop every process."""
        if self.supervisor is not None:
            try:  # first, so that the glove starts no episode while everything stops
                self.set_hands_free(False)
            except SessionError:
                pass  # a recorder that does not answer starts nothing either
            if self.is_recording():
                self.stop_episode()
            self.supervisor.stop()

    def __enter__(self) -> "Session":
        try:
            self.open()
        except BaseException:
            if self.supervisor is not None:
                self.supervisor.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- actions -----------------------------------------------------------------------------
    def _request(self, cmd: str, **params: Any) -> dict[str, Any]:
        if self.supervisor is None:
            raise SessionError("the session is not open")
        recorder = self.supervisor.recorder
        with self._lock:
            try:
                if recorder is None or not recorder.alive:
                    raise TimeoutError
                reply = self.supervisor.recorder_request(cmd, timeout_s=REQUEST_TIMEOUT_S[cmd], **params)
            except TimeoutError:
                if recorder is not None and not recorder.alive:
                    error = (f"the recorder process exited with code {recorder.process.returncode}; "
                             "the episode file keeps everything up to its last flush "
                             f"(run 'collector recover'). Its log ends:\n{recorder.log_tail(5)}")
                else:
                    error = f"the recorder did not answer '{cmd}'"
                raise SessionError(error) from None
        if not reply.get("ok"):
            raise SessionError(reply.get("error") or f"{cmd} failed")
        return reply

    def episode_meta(self, **overrides: Any) -> dict[str, Any]:
        info = self.config.session
        meta = {"task": info.task, "operator": info.operator, "station": info.station,
                "prompt": info.prompt}
        meta.update({k: v for k, v in overrides.items() if v is not None})
        return meta

    def share_meta(self) -> None:
        """Tell the recorder the session's task, operator... for the episodes the glove starts
        by itself (``recording.hands_free``); again whenever they change."""
        self._request("meta", meta=self.episode_meta())

    def set_hands_free(self, enabled: bool) -> dict[str, Any]:
        """Let the glove start and stop episodes (``recording.hands_free``), or not: off before
        the session ends, so that nothing starts meanwhile. Returns the hands-free status."""
        return self._request("hands_free", enabled=enabled)

    def start_episode(self, **meta: Any) -> dict[str, Any]:
        """Start recording an episode; ``meta`` overrides the session's task, operator, notes..."""
        # The instant is taken here, when the operator asked: a busy recorder that answers
        # late still cuts the episode where it was meant to start (and stop).
        return self._request("start", meta=self.episode_meta(**meta), t_ns=protocol.now_ns())

    def stop_episode(self) -> dict[str, Any]:
        """End the running episode now; its outcome stays ``unknown`` until tagged. Returns at
        once: the episode drains and closes in the background (:meth:`wait_closed`), and the
        next one can start meanwhile."""
        reply = self._request("stop", t_ns=protocol.now_ns())
        self.episodes_recorded += 1
        self.last_episode = reply
        return reply

    def note_stopped_by_recorder(self, episode: dict[str, Any]) -> None:
        """Count an episode the recorder ended on its own (disk reserve, write error), as seen in
        its ``status``: it is kept, like one stopped by :meth:`stop_episode`."""
        self.episodes_recorded += 1
        self.last_episode = episode

    def discard_episode(self) -> dict[str, Any]:
        """Throw away the running or the last episode (moved to the trash folder, recoverable)."""
        was_recording = self.is_recording()
        reply = self._request("discard")
        if not was_recording and self.episodes_recorded:
            self.episodes_recorded -= 1
        self.last_episode = None
        return reply

    def tag_episode(self, outcome: str | None = None, *, notes: str | None = None,
                    tags: list[str] | None = None) -> dict[str, Any]:
        """Mark the last episode success/failure/unknown and set its notes and tags."""
        params = {k: v for k, v in {"outcome": outcome, "notes": notes, "tags": tags}.items()
                  if v is not None}
        return self._request("tag", **params)

    def wait_closed(self, uuid: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """Wait until episode ``uuid`` has drained and closed; its result (``path``, ``status``,
        ``problems``: what its integrity ledger says is missing, in words)."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self._request("status").get("finished", {}).get(uuid)
            if result is not None:
                return result
            if time.monotonic() >= deadline:
                raise SessionError(f"episode {uuid[:8]} did not close within {timeout_s:g} s")
            time.sleep(0.05)

    # ---- state -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The recorder's status plus the processes' states."""
        reply = self._request("status")
        reply["processes"] = self.supervisor.check(reply)
        return reply

    def is_recording(self) -> bool:
        """Whether the recorder has an episode running (asks it: a request, not an attribute);
        ``False`` when it does not answer."""
        try:
            return bool(self._request("status").get("recording"))
        except (SessionError, TimeoutError):
            return False

    def health(self) -> list[StreamStatus]:
        """Per-stream health (measured rate against nominal, gaps, latency, data age)."""
        streams = self.status()["streams"]
        return [StreamStatus(name=name, rate_hz=s["rate_hz"], nominal_hz=s["nominal_hz"],
                             received=s["received"], gaps=s["gaps"], missing=s["missing"],
                             latency_ms=s["latency_ms"], age_s=s["age_s"])
                for name, s in streams.items()]
