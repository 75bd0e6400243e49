"""A video encoder on a thread of its own, so that colour encoding runs beside the writer's HDF5 work.

PyAV releases the GIL while swscale converts and the encoder encodes (``with nogil`` in
``av.codec.context`` and ``av.video.reformatter``), so each camera's encoding can use a core
while the recorder's writer thread writes depth and glove rows and its receiver reads the
sockets. On a busy machine the scheduler also gives each thread its share: one writer thread
encoding every camera got a fraction of what the cameras needed (benchmarks/record_throughput.py
prints the writer's CPU per recorded second beside the other processes').

Every submitted frame gets a :class:`Ticket` that receives its packet once encoded, so the
packets can go to whoever holds the ticket: an episode's own encoder hands all of them to its
writer, and the recorder's continuous encoders (:mod:`collector.storage.preparing`), which
encode every frame as it arrives, between episodes too, hand each to the episode the frame is
routed to, if any. Frames keep their order (one thread per stream, one FIFO queue).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from typing import Callable

import numpy as np

from collector.storage.video import EncodedPacket, VideoCodecError, VideoEncoder

log = logging.getLogger(__name__)

#: Seconds of frames (at the stream's rate; at least 60 frames) waiting for the encoder thread at
#: most. A caller that gets further ahead waits, or with ``block=False`` gets no ticket. Received
#: frames are queued without a copy, so this holds no more memory than their owner already did.
MAX_WAITING_S = 5.0
#: An encoder that still holds frames after its queue has been empty this long (seconds) is
#: drained and, when it can be reopened, reopened: a stream that stopped must not keep its last
#: frames' packets waiting for a frame that never comes (the software encoders hold none).
IDLE_DRAIN_S = 0.5
_CLOSE, _STOP = object(), object()


class Ticket:
    """One frame submitted to an :class:`EncoderThread`: ``packet`` is set once it is encoded.

    ``index`` counts the thread's frames from 0; ``keyframe`` is true when the frame was sure to
    become a keyframe (forced, or the first after the encoder (re)opened), known at submission.
    """

    __slots__ = ("source", "index", "keyframe", "packet")

    def __init__(self, source: "EncoderThread", index: int, keyframe: bool) -> None:
        self.source, self.index, self.keyframe = source, index, keyframe
        self.packet: EncodedPacket | None = None


class EncoderThread:
    """Runs ``encoder`` on a daemon thread: :meth:`submit` frames in order, :meth:`wait` for
    their tickets, then :meth:`close` (drain the encoder) or :meth:`stop` (abandon the queue).

    ``reopen`` makes a fresh encoder like ``encoder`` (with its settings): given, the thread
    drains an encoder left holding frames by an idle stream and goes on with a new one.
    An encoding error is raised by the next :meth:`submit` and by :meth:`wait` for any frame not
    encoded before it; frames after it are not encoded.
    """

    def __init__(self, encoder: VideoEncoder, name: str = "encoder", *,
                 reopen: Callable[[], VideoEncoder] | None = None) -> None:
        self.encoder = encoder
        self._reopen = reopen
        self._frames: queue.Queue = queue.Queue(max(60, round(MAX_WAITING_S * float(encoder.rate))))
        self._lock = threading.Condition()
        self._submitted = 0
        self._in_encoder = 0  # frames given to the current encoder (its first is a keyframe)
        self._waiting: deque[Ticket] = deque()  # in the encoder, packet not out yet (thread's own)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def failed(self) -> bool:
        """Whether encoding failed or the thread has ended: no further ticket will complete."""
        return self._error is not None or not self._thread.is_alive()

    def submit(self, rgb: np.ndarray, keyframe: bool | None = None, *,
               block: bool = True) -> Ticket | None:
        """Queue the next frame (``(H, W, 3)`` uint8 RGB; it must not change afterwards: pass a
        copy of a buffer its producer reuses). ``keyframe`` as in :meth:`VideoEncoder.encode`.
        With ``block=False`` a full queue returns ``None`` at once and the frame is not encoded."""
        self._raise()
        if not self._thread.is_alive():
            raise VideoCodecError(f"{self.encoder.encoder}: the encoder thread has stopped")
        with self._lock:
            sure = bool(keyframe) or (keyframe is None and self._in_encoder % self.encoder.gop == 0) \
                or self._in_encoder == 0
            ticket = Ticket(self, self._submitted, sure)
            try:
                self._frames.put_nowait((rgb, keyframe, ticket))
            except queue.Full:
                if not block:
                    return None
                self._lock.release()  # the thread needs the lock to make room
                try:
                    self._frames.put((rgb, keyframe, ticket))
                finally:
                    self._lock.acquire()
            self._submitted += 1
            self._in_encoder += 1
        return ticket

    def wait(self, ticket: Ticket, timeout_s: float | None = None) -> bool:
        """Wait up to ``timeout_s`` (``None``: no limit) for ``ticket``'s packet: whether it is
        there. Raises ``VideoCodecError`` when it never will be (an error, or the thread ended)."""
        with self._lock:
            self._lock.wait_for(lambda: ticket.packet is not None or self.failed, timeout_s)
        if ticket.packet is not None:
            return True
        if self.failed:
            self._raise()
            raise VideoCodecError(f"{self.encoder.encoder}: the encoder thread stopped before "
                                  f"frame {ticket.index} was encoded")
        return False

    def close(self) -> None:
        """Encode what is queued, drain the encoder and end the thread, without waiting: every
        ticket completes (or fails) by itself."""
        if self._thread.is_alive():
            self._frames.put(_CLOSE)

    def stop(self) -> None:
        """End the thread after the frame being encoded; queued frames are not encoded."""
        if self._thread.is_alive():
            self._error = self._error or VideoCodecError("stopped")
            self._frames.put(_STOP)
            self._thread.join()

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    def _raise(self) -> None:
        if self._error is not None:
            raise VideoCodecError(f"{self.encoder.encoder}: {self._error}") from self._error

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._frames.get(timeout=IDLE_DRAIN_S if self._reopen else None)
                except queue.Empty:
                    if self._waiting:
                        self._drain(reopen=True)
                    continue
                if item is _STOP:
                    return
                if item is _CLOSE:
                    self._drain(reopen=False)
                    return
                rgb, keyframe, ticket = item
                if self._error is not None:
                    continue
                self._waiting.append(ticket)
                self._deliver(self.encoder.encode(rgb, keyframe))
        except BaseException as exc:  # raised on the callers' threads
            self._error = self._error or exc
        finally:
            with self._lock:
                self._lock.notify_all()

    def _drain(self, reopen: bool) -> None:
        self._deliver(self.encoder.finish())
        if reopen and self._reopen is not None:
            self.encoder = self._reopen()
            with self._lock:
                self._in_encoder = 0 if self._frames.empty() else self._in_encoder
            log.info("%s: drained an idle encoder", self._thread.name)

    def _deliver(self, packets: list[EncodedPacket]) -> None:
        with self._lock:
            for packet in packets:
                self._waiting.popleft().packet = packet
            self._lock.notify_all()
