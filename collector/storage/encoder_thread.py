"""A video encoder on a thread of its own, so that colour encoding runs beside the writer's HDF5 work.

PyAV releases the GIL while swscale converts and the encoder encodes (``with nogil`` in
``av.codec.context`` and ``av.video.reformatter``), so each camera's encoding can use a core
while the recorder's writer thread writes depth and glove rows and its receiver reads the
sockets. On a busy machine the scheduler also gives each thread its share: one writer thread
encoding every camera got a fraction of what the cameras needed (benchmarks/record_throughput.py
prints the writer's CPU per recorded second beside the other processes').

Frames keep their order (one thread per stream, one FIFO queue). :meth:`EncoderThread.packets`
waits until every frame submitted so far is encoded, or for at most ``wait_s``: a flush waits a
moment for the frames appended before it (in steady state the encoder is a frame behind), but
not for a backlog. At an episode's start the pre-roll's held frames (3 s: 90 a camera) arrive at
once; a flush that waited for all of them held every other stream's rows back with them. (The
burst itself still takes ~1.5 s to reach the disk: docs/reliability.md, "Known limits".)
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from collector.storage.video import EncodedPacket, VideoCodecError, VideoEncoder

#: Seconds of frames (at the stream's rate; at least 60 frames) waiting for the encoder thread at
#: most: room for the pre-roll's burst. A writer that gets further ahead waits (its own queue,
#: which the recorder bounds and counts, holds the rest). Received frames are queued without a
#: copy, so this holds no more memory than the pre-roll buffer already did.
MAX_WAITING_S = 5.0


class EncoderThread:
    """Runs ``encoder`` on a daemon thread: :meth:`submit` frames in order, collect
    :meth:`packets`, then :meth:`finish` (or :meth:`stop` to abandon what is queued).

    An encoding error is raised on the caller's thread by the next :meth:`submit`,
    :meth:`packets` or :meth:`finish`; frames after it are not encoded.
    """

    def __init__(self, encoder: VideoEncoder, name: str = "encoder") -> None:
        self.encoder = encoder
        self._frames: queue.Queue = queue.Queue(max(60, round(MAX_WAITING_S * float(encoder.rate))))
        self._packets: list[EncodedPacket] = []
        self._lock = threading.Condition()
        self._submitted = self._encoded = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, rgb: np.ndarray) -> None:
        """Queue the next frame (``(H, W, 3)`` uint8 RGB). The array must not change afterwards:
        pass a copy of a buffer its producer reuses."""
        self._raise()
        if not self._thread.is_alive():
            raise VideoCodecError(f"{self.encoder.encoder}: the encoder thread has stopped")
        with self._lock:
            self._submitted += 1
        self._frames.put(rgb)

    def packets(self, wait_s: float | None = None) -> list[EncodedPacket]:
        """The packets encoded since the last call: of every frame submitted so far, or of those
        encoded within ``wait_s`` seconds (``None``: wait for all of them)."""
        with self._lock:
            self._lock.wait_for(lambda: self._encoded >= self._submitted or self._error is not None
                                or not self._thread.is_alive(), wait_s)
            out, self._packets = self._packets, []
        self._raise()
        return out

    def finish(self) -> list[EncodedPacket]:
        """Encode what is queued, drain the encoder and end the thread: the remaining packets."""
        out = self.packets()
        self.stop()
        return out + self.encoder.finish()

    def stop(self) -> None:
        """End the thread after the frames already queued (none are encoded after an error)."""
        if self._thread.is_alive():
            self._frames.put(None)
            self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise VideoCodecError(f"{self.encoder.encoder}: {self._error}") from self._error

    def _run(self) -> None:
        while True:
            rgb = self._frames.get()
            try:
                if rgb is None:
                    return
                if self._error is None:
                    packets = self.encoder.encode(rgb)
                    with self._lock:
                        self._packets += packets
            except BaseException as exc:  # raised on the writer's thread, by the next call
                self._error = exc
            finally:
                with self._lock:
                    self._encoded += rgb is not None
                    self._lock.notify_all()
