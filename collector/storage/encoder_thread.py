"""A video encoder on a thread of its own, so that colour encoding runs beside the writer's HDF5 work.

PyAV releases the GIL while swscale converts and the encoder encodes (``with nogil`` in
``av.codec.context`` and ``av.video.reformatter``), so each camera's encoding can use a core
while the recorder's writer thread writes depth and glove rows and its receiver reads the
sockets. On a busy machine the scheduler also gives each thread its share: one writer thread
encoding every camera got a fraction of what the cameras needed (benchmarks/record_throughput.py
prints the writer's CPU per recorded second beside the other processes').

Frames keep their order (one thread per stream, one FIFO queue). :meth:`EncoderThread.packets`
waits until every frame submitted so far is encoded, so a flush still puts on disk everything
appended before it (the promise of ``HDF5EpisodeWriter.flush``).
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from collector.storage.video import EncodedPacket, VideoCodecError, VideoEncoder

#: Frames waiting for the encoder thread at most; a writer that gets ahead waits (its own queue,
#: which the recorder bounds and counts, holds the rest).
MAX_WAITING_FRAMES = 60


class EncoderThread:
    """Runs ``encoder`` on a daemon thread: :meth:`submit` frames in order, collect
    :meth:`packets`, then :meth:`finish` (or :meth:`stop` to abandon what is queued).

    An encoding error is raised on the caller's thread by the next :meth:`submit`,
    :meth:`packets` or :meth:`finish`; frames after it are not encoded.
    """

    def __init__(self, encoder: VideoEncoder, name: str = "encoder") -> None:
        self.encoder = encoder
        self._frames: queue.Queue = queue.Queue(MAX_WAITING_FRAMES)
        self._packets: list[EncodedPacket] = []
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, rgb: np.ndarray) -> None:
        """Queue the next frame (``(H, W, 3)`` uint8 RGB). The array must not change afterwards:
        pass a copy of a buffer its producer reuses."""
        self._raise()
        if not self._thread.is_alive():
            raise VideoCodecError(f"{self.encoder.encoder}: the encoder thread has stopped")
        self._frames.put(rgb)

    def packets(self) -> list[EncodedPacket]:
        """The packets of every frame submitted so far (waits until they are encoded)."""
        self._frames.join()
        self._raise()
        with self._lock:
            out, self._packets = self._packets, []
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
                self._frames.task_done()
