"""The collect workflow, Qt-free: what the operator's window shows and every action it offers.

:class:`CollectModel` wraps a :class:`~collector.recording.session.Session` (device nodes + recorder) with
the things an operator needs between episodes: a state (idle, recording, reset countdown), the
episode counter against the session goal, outcome tagging, disk space and hours left, per-device
health, and the glove's record button. Actions run on a worker thread and return futures, so a
GUI never blocks on the recorder; observers get ``(event, data)`` calls from background threads
(a Qt view forwards them through a queued signal).

Stop returns at once: the episode drains (samples captured before the stop still arrive) and
closes in the background. Once the recorder reports it closed, the model emits
``episode_closed`` with its ``status`` and ``problems`` (what its integrity ledger says is
missing, in words: "cam0/color: last 5.5 s missing"), then a ``warning`` naming the problems or,
for a failed recording, an ``error``. ``last_episode["closed"]`` is false until then; tagging
works meanwhile (the recorder applies the tag at close).

    model = CollectModel(sim_config())
    model.open()                       # starts the nodes and the recorder (blocking)
    model.start_episode().result()     # same as pressing Space
    model.stop_episode().result()
    model.mark("success").result()     # S
    model.close()
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from collector.wire.bus import fetch_describe, node_endpoints
from collector.config import AppConfig, save_config
from collector.recording.health import DeviceHealth, HealthBoard
from collector.recording.live import LiveFeed, RecordButtonWatcher
from collector.storage.recovery import recover_interrupted
from collector.recording.session import Session, SessionError
from collector.wire.streams import StreamSpec
from collector.recording.disk import free_bytes, start_refusal

log = logging.getLogger("collector.recording.collect")

Listener = Callable[[str, dict[str, Any]], None]

IDLE, STARTING, RECORDING, STOPPING, RESET = "idle", "starting", "recording", "stopping", "reset"
OUTCOMES = ("success", "failure", "unknown")
STATUS_INTERVAL_S = 0.5
TICK_S = 0.05
#: A glove button press closer than this to the previous one is contact bounce.
BUTTON_DEBOUNCE_S = 0.5
#: Integrity sentences a closed episode's warning or error names; the rest are counted.
PROBLEMS_IN_MESSAGE = 2


class CollectModel:
    """The operator's session: see the module docstring. Thread-safe; events from any thread."""

    def __init__(self, config: AppConfig, *, config_path: str | Path | None = None,
                 session: Session | None = None) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self.session = session or Session(config)
        self.live: LiveFeed | None = None
        self.specs: dict[str, StreamSpec] = {}
        self.state = IDLE
        self.episode: dict[str, Any] | None = None      # the running episode's reply
        self.episode_started_at: float | None = None    # monotonic
        self.last_episode: dict[str, Any] | None = None  # the last finished one, with "outcome"
        self._closing: dict[str, dict[str, Any]] = {}    # stopped, not yet closed: uuid -> episode
        self._closing_lock = threading.Lock()
        self.notes = ""
        self.countdown_until: float | None = None
        self.health: list[DeviceHealth] = []
        self.status: dict[str, Any] = {}
        self.disk_free_bytes: int | None = None
        self.data_rate_bps = 0.0
        self.opened = False
        self._listeners: list[Listener] = []
        self._actions = ThreadPoolExecutor(1, thread_name_prefix="collect-action")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._buttons: RecordButtonWatcher | None = None
        self._health_board: HealthBoard | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Start the nodes and the recorder, then the live feed and the health poller (blocking)."""
        for result in recover_interrupted(self.config.recording.output):  # left by a crash
            self._emit("warning", {"message": result.message, "recovery": result.action})
        self.session.open()
        bases = self.session.supervisor.node_bases
        for node, base in bases.items():
            try:
                describe = fetch_describe(node_endpoints(base).ctl)
            except TimeoutError:
                log.warning("node %s did not describe its streams", node)
                continue
            for stream in describe.streams:
                spec = StreamSpec.from_dict(stream)
                self.specs[spec.name] = spec
        self.live = LiveFeed([node_endpoints(b).live for b in bases.values()],
                             rates_hz={s.name: s.rate_hz for s in self.specs.values()})
        self._buttons = RecordButtonWatcher(self.live, self.specs, debounce_s=BUTTON_DEBOUNCE_S)
        # A service (the WAM preview) is not a device: its own preview says how it does.
        self._health_board = HealthBoard(
            self.specs, list(self.session.supervisor.node_bases),
            master_stream=self.config.recording.master_stream,
            ignore_nodes=[s.name for s in self.config.services])
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="collect-poller", daemon=True)
        self._poller.start()
        self.opened = True
        self._emit("opened", {"streams": sorted(self.specs)})

    def open_async(self) -> Future:
        return self._actions.submit(self._guard, "open", self.open)

    def close(self) -> None:
        """Finish a running episode (it is kept, not lost), then stop every process."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(5)
        self._actions.shutdown(wait=True)
        try:
            if self.state in (RECORDING, STARTING, STOPPING) and self.opened:
                self._stop_now()
        except SessionError as exc:
            log.error("could not finish the episode on close: %s", exc)
        finally:
            if self.live is not None:
                self.live.close()
            self.session.close()
            self.opened = False

    # ---- observers ---------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event, data)`` on every model event (from background threads)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, event: str, data: dict[str, Any] | None = None) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, data or {})
            except Exception:
                log.exception("collect listener failed on %s", event)

    def _set_state(self, state: str) -> None:
        self.state = state
        self._emit("state", {"state": state})

    def _guard(self, action: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except SessionError as exc:
            self._emit("error", {"action": action, "message": str(exc)})
            raise
        except Exception as exc:
            log.exception("%s failed", action)
            self._emit("error", {"action": action, "message": f"{action} failed: {exc}"})
            raise

    # ---- actions (each returns a Future; the GUI never waits on it) ------------------------
    def start_episode(self) -> Future:
        """Start recording (Space). Refused below the disk threshold; warns on unhealthy streams."""
        return self._actions.submit(self._guard, "start", self._start_now)

    def stop_episode(self) -> Future:
        """Finish the running episode (Space); its outcome is ``unknown`` until marked."""
        return self._actions.submit(self._guard, "stop", self._stop_now)

    def toggle_recording(self) -> Future:
        """Start when idle or counting down, stop when recording: Space and the glove button."""
        return self._actions.submit(self._guard, "toggle", self._toggle_now)

    def discard_episode(self) -> Future:
        """Throw away the running or the last episode (Backspace) and get ready to re-record."""
        return self._actions.submit(self._guard, "discard", self._discard_now)

    def mark(self, outcome: str) -> Future:
        """Tag the last episode ``success`` / ``failure`` / ``unknown`` (S / F)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        return self._actions.submit(self._guard, "mark", lambda: self._mark_now(outcome))

    def skip_reset(self) -> None:
        """End the reset countdown now (the next episode starts if auto-start is on)."""
        if self.state == RESET:
            self.countdown_until = time.monotonic()

    def set_notes(self, notes: str) -> None:
        """Notes written into the next episode (and the last one, when it is marked)."""
        self.notes = notes

    def set_session_info(self, **info: Any) -> None:
        """Change task, operator, station, prompt or goal_episodes for the next episodes."""
        unknown = set(info) - {"task", "operator", "station", "prompt", "goal_episodes"}
        if unknown:
            raise ValueError(f"unknown session fields: {', '.join(sorted(unknown))}")
        task_changed = info.get("task", self.config.session.task) != self.config.session.task
        self.config.session = replace(self.config.session, **info)
        self.session.config = self.config
        if task_changed and self.state != RECORDING:  # count the new task's episodes of the day
            self.session.episodes_recorded = self.session.episodes_on_disk()
        if self.opened:  # for the episodes the glove starts (hands-free)
            self.session.share_meta()
        self._emit("session_info", dict(vars(self.config.session)))

    def save_config(self, path: str | Path | None = None) -> Path:
        """Write the config (devices, recording options, session) as TOML the CLI reads too."""
        target = Path(path) if path else self.config_path
        if target is None:
            raise ValueError("no config file to save to: choose a path")
        save_config(self.config, target)
        self.config_path = target
        return target

    def apply_config(self, config: AppConfig, save_to: str | Path | None = None) -> Future:
        """Use ``config`` from now on (and save it); changed devices or recording options restart
        the nodes and the recorder, which is refused while an episode records."""
        return self._actions.submit(self._guard, "settings", lambda: self._apply_now(config, save_to))

    def _apply_now(self, config: AppConfig, save_to: str | Path | None) -> None:
        restart = (config.nodes != self.config.nodes or config.recording != self.config.recording
                   or config.services != self.config.services)
        if restart and self.state in (RECORDING, STARTING, STOPPING):
            raise SessionError("stop recording before changing devices, services or recording options")
        self.config = config
        self.session.config = config
        if save_to is not None or self.config_path is not None:
            self.save_config(save_to)
        self._emit("session_info", dict(vars(config.session)))
        if restart and self.opened:
            self._stop.set()
            if self._poller is not None:
                self._poller.join(5)
            if self.live is not None:
                self.live.close()
            recorded = self.session.episodes_recorded
            self.session.close()
            self.session = Session(config, episodes_recorded=recorded)
            self.specs, self.health, self.opened = {}, [], False
            self.open()

    # ---- action bodies (on the action thread) -----------------------------------------------
    def _toggle_now(self) -> Any:
        if self.state in (RECORDING,):
            return self._stop_now()
        if self.state in (IDLE, RESET):
            return self._start_now()
        return None

    def _start_now(self) -> dict[str, Any]:
        if self.state == RECORDING:
            raise SessionError("already recording")
        refusal = start_refusal(self.config.recording)
        if refusal:
            raise SessionError(refusal)
        unhealthy = [d for d in self.health if d.level != "ok"]
        if unhealthy:
            self._emit("warning", {"message": "recording with unhealthy devices: " +
                                   "; ".join(d.summary for d in unhealthy)})
        self.countdown_until = None
        self._set_state(STARTING)
        try:
            reply = self.session.start_episode(notes=self.notes)
        except SessionError:
            self._set_state(IDLE)
            raise
        self.episode, self.episode_started_at = reply, time.monotonic()
        self._set_state(RECORDING)
        self._emit("cue", {"kind": "start"})
        self._emit("episode_started", reply)
        return reply

    def _stop_now(self) -> dict[str, Any]:
        if self.state != RECORDING:
            raise SessionError("not recording")
        self._set_state(STOPPING)
        try:
            reply = self.session.stop_episode()
        except SessionError:
            self._set_state(IDLE)
            raise
        self.episode, self.episode_started_at = None, None
        self.last_episode = {**reply, "outcome": "unknown", "closed": False, "problems": []}
        self._await_close(self.last_episode)
        self._emit("cue", {"kind": "stop"})
        self._emit("episode_stopped", self.last_episode)
        if reply.get("error"):
            self._emit("error", {"action": "record", "message": reply["error"]})
        self._begin_reset()
        return reply

    def _begin_reset(self) -> None:
        seconds = self.config.session.reset_countdown_s
        if seconds > 0:
            self.countdown_until = time.monotonic() + seconds
            self._set_state(RESET)
        else:
            self._set_state(IDLE)

    def _discard_now(self) -> dict[str, Any]:
        was = self.state
        if was == RECORDING:
            self._set_state(STOPPING)
        try:
            reply = self.session.discard_episode()
        except SessionError:
            self._set_state(IDLE if was != RECORDING else RECORDING)
            raise
        self.episode = self.episode_started_at = None
        if self.last_episode is not None and was != RECORDING:
            with self._closing_lock:  # a draining episode is thrown away when it closes
                self._closing.pop(self.last_episode.get("uuid", ""), None)
        self.last_episode = None
        self.countdown_until = None
        self._emit("episode_discarded", reply)
        self._set_state(IDLE)
        return reply

    def _mark_now(self, outcome: str) -> dict[str, Any]:
        if self.last_episode is None:
            raise SessionError("no finished episode to mark")
        reply = self.session.tag_episode(outcome, notes=self.notes or None)
        self.last_episode["outcome"] = outcome
        self._emit("episode_tagged", {**self.last_episode})
        return reply

    # ---- what views read ---------------------------------------------------------------------
    def service_endpoint(self, name: str) -> tuple[str | None, str]:
        """``(base endpoint, "")`` of a running service (``[[services]]``), or ``(None, why)``:
        what a preview provider needs to follow it."""
        supervisor = self.session.supervisor
        if supervisor is None or not self.opened:
            return None, "the devices are not started yet"
        endpoint = supervisor.service_endpoints.get(name)
        if endpoint:
            return endpoint, ""
        return None, supervisor.service_errors.get(name) or f"the {name} service is not running"

    @property
    def pre_roll(self) -> dict[str, Any]:
        """What the next episode's pre-roll holds now (``held_s``, ``held_mb``, ``limit_mb``,
        ``configured_s``), from the last status; empty before the first."""
        return dict(self.status.get("pre_roll") or {})

    @property
    def episodes_recorded(self) -> int:
        return self.session.episodes_recorded

    @property
    def goal(self) -> int:
        return self.config.session.goal_episodes

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.episode_started_at if self.episode_started_at else 0.0

    @property
    def countdown_left_s(self) -> float:
        if self.state != RESET or self.countdown_until is None:
            return 0.0
        return max(0.0, self.countdown_until - time.monotonic())

    @property
    def hours_left(self) -> float | None:
        """Hours of recording the free disk space holds at the current data rate."""
        if self.disk_free_bytes is None or self.data_rate_bps <= 0:
            return None
        usable = self.disk_free_bytes - self.config.recording.reserve_mb * 2**20
        return max(0.0, usable) / self.data_rate_bps / 3600

    # ---- background work ---------------------------------------------------------------------
    def _poll(self) -> None:
        next_status = 0.0
        while not self._stop.wait(TICK_S):
            try:
                self._tick_countdown()
                self._watch_buttons()
                self._forward_device_events()
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_INTERVAL_S
                    self._refresh_status()
            except Exception:
                log.exception("collect poller")

    def _tick_countdown(self) -> None:
        if self.state == RESET and self.countdown_until is not None and time.monotonic() >= self.countdown_until:
            self.countdown_until = None
            goal_reached = self.goal and self.episodes_recorded >= self.goal
            if self.config.session.auto_start_after_reset and not goal_reached:
                self._actions.submit(self._guard, "start", self._start_if_reset)
            else:
                self._set_state(IDLE)

    def _start_if_reset(self) -> Any:
        # The operator may have discarded or started by hand while this was queued.
        if self.state == RESET:
            return self._start_now()
        return None

    def _watch_buttons(self) -> None:
        """A press of the glove's record button toggles recording, like Space."""
        if not self.config.session.glove_record_button or self._buttons is None:
            return
        for stream in self._buttons.new_presses():
            self._emit("glove_button", {"stream": stream, "button": "record"})
            self.toggle_recording()

    def _forward_device_events(self) -> None:
        if self.live is None:
            return
        for event in self.live.take_events():
            self._emit("device_event", {"node": event.node, "kind": event.kind,
                                        "stream": event.stream, "detail": event.detail})

    def _refresh_status(self) -> None:
        self.disk_free_bytes = free_bytes(self.config.recording.output)
        asked_at = time.monotonic()
        try:
            status = self.session.status()
        except SessionError as exc:
            self.status = {}
            self._emit("health", {"devices": [], "error": str(exc)})
            return
        self.status = status
        self._follow_hands_free(status)
        started = self.episode_started_at
        if (not status.get("recording") and self.state == RECORDING and started is not None
                and asked_at > started):
            # The recorder ended the episode on its own (disk reserve, write error).
            self.episode = self.episode_started_at = None
            self.last_episode = {"path": status.get("last_path"), "uuid": status.get("last_uuid"),
                                 "outcome": "unknown", "closed": False, "problems": []}
            self._await_close(self.last_episode)
            self.session.note_stopped_by_recorder(self.last_episode)
            self._emit("error", {"action": "record", "message": status.get("error") or
                                 "the recorder stopped the episode"})
            self._emit("episode_stopped", self.last_episode)
            self._set_state(IDLE)
        self._note_closed(status)
        self.health = self._health_board.assess(status, self.live)
        self.data_rate_bps = sum(
            s["rate_hz"] * self.specs[name].bytes_per_sample
            for name, s in status["streams"].items() if name in self.specs)
        self._emit("health", {"devices": self.health})

    def _follow_hands_free(self, status: dict[str, Any]) -> None:
        """Show the episodes the glove starts and stops by itself (``recording.hands_free``)
        as if Space had: they are counted, taggable and discardable like any other."""
        episode = status.get("episode")
        running = self.episode.get("uuid") if self.episode else None
        if self.state == RECORDING and running and (episode or {}).get("uuid") != running:
            ended = status.get("last_uuid") == running and status.get("last_end_trigger") not in (None, "manual")
            if ended:  # the glove ended it (a gesture, the end of an activity), not an error
                self.last_episode = {"path": status.get("last_path"), "uuid": running,
                                     "outcome": "unknown", "closed": False, "problems": []}
                self.episode = self.episode_started_at = None
                self._await_close(self.last_episode)
                self.session.note_stopped_by_recorder(self.last_episode)
                self._emit("cue", {"kind": "stop"})
                self._emit("episode_stopped", self.last_episode)
                self._set_state(IDLE)
        if episode and episode.get("trigger", "manual") != "manual" and self.state in (IDLE, RESET):
            self.countdown_until = None
            self.episode, self.episode_started_at = dict(episode), time.monotonic()
            self._set_state(RECORDING)
            self._emit("cue", {"kind": "start"})
            self._emit("episode_started", dict(episode))

    def _await_close(self, episode: dict[str, Any]) -> None:
        if episode.get("uuid"):
            with self._closing_lock:
                self._closing[episode["uuid"]] = episode

    def _note_closed(self, status: dict[str, Any]) -> None:
        """Say, for each stopped episode the recorder now reports closed, whether it is whole."""
        finished = status.get("finished") or {}
        with self._closing_lock:
            closed = [(self._closing.pop(uuid), finished[uuid]) for uuid in list(self._closing)
                      if uuid in finished]
        for episode, result in closed:
            if result.get("discarded"):
                continue
            failed = result.get("status") == "failed" or not result.get("ok", True)
            problems = [str(p) for p in result.get("problems") or []]
            if failed:
                reason = result.get("error") or status.get("error") or "see the recorder log"
                problems.insert(0, f"the recording failed: {reason}")
            episode.update(closed=True, status="failed" if failed else result.get("status", "complete"),
                           problems=problems, path=result.get("path") or episode.get("path"))
            self._emit("episode_closed", dict(episode))
            name = Path(episode.get("path") or "episode").name
            # A banner line, not a report: the first sentences, the rest counted.
            said = "; ".join(problems[:PROBLEMS_IN_MESSAGE])
            if len(problems) > PROBLEMS_IN_MESSAGE:
                said += f" (and {len(problems) - PROBLEMS_IN_MESSAGE} more: collector info {name})"
            if failed:
                self._emit("error", {"action": "record", "message": f"{name}: {said}"})
            elif problems:
                self._emit("warning", {"message": f"{name} is incomplete: {said}"})
