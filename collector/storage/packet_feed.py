"""The packets of one video-stored field of one episode, in frame order, wherever they were encoded.

An episode's frames are encoded by the recorder's continuous encoder of their stream
(:mod:`collector.storage.preparing`: as they arrived, between episodes too, so that the
pre-roll reaches the disk without an encoding burst at the Start) or by the episode's own
encoder. Packets of one encoder can follow another's only from a keyframe on, so the feed takes
an already-encoded frame when its packet is sure to be a keyframe or continues the run of
packets it took before from the same encoder; every other frame goes to the episode's own
encoder, a fresh one (its first frame a keyframe) whenever a run of its own begins. Typically:
own packets for the pre-roll's frames up to the first keyframe (less than a GOP), continuous
packets after. A continuous encoder that fails does not cost frames: the feed keeps each frame
until its packet is out and re-encodes what is missing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable

import numpy as np

from collector.storage.encoder_thread import EncoderThread, Ticket
from collector.storage.video import EncodedPacket, VideoCodecError, VideoEncoder

log = logging.getLogger(__name__)


class PacketFeed:
    """Orders the packets of one field: :meth:`add` each frame (with its continuous encoder's
    ticket, if any), collect :meth:`ready` packets, then :meth:`finish` (or :meth:`stop`).

    ``open_own()`` starts a fresh :class:`EncoderThread` for the episode's own encoding; ``like``
    is an encoder with the episode's settings: a ticket from an encoder of another codec, size
    or quality is not used. Packets come out with ``pts`` renumbered from 0 (frame ``i`` of the
    episode has pts ``i``).
    """

    def __init__(self, open_own: Callable[[], EncoderThread], like: VideoEncoder,
                 name: str = "") -> None:
        self._open_own = open_own
        self._settings = _settings(like)
        self.name = name
        self._own: EncoderThread | None = None
        self._pending: deque[tuple[Ticket, np.ndarray]] = deque()
        self._last: Ticket | None = None
        self._opened: list[EncoderThread] = []  # every own encoder this feed started
        self._failed: list[EncoderThread] = []  # continuous encoders whose tickets are refused
        self.taken = 0  # packets handed out
        self.reused = 0  # of them encoded before the episode needed them (continuous)
        self._finishing = False

    def add(self, rgb: np.ndarray, ticket: Ticket | None = None) -> None:
        """The episode's next frame, and the ticket of its packet from a continuous encoder."""
        if not isinstance(ticket, Ticket) or _among(ticket.source, self._failed) \
                or _settings(ticket.source.encoder) != self._settings:
            ticket = None
        last = self._last
        continues = ticket is not None and last is not None and ticket.source is last.source \
            and ticket.index == last.index + 1
        if ticket is not None and (ticket.keyframe or continues):
            if self._own is not None and last is not None and last.source is self._own:
                self._own.close()  # its run ends here: drained, its thread ends by itself
                self._own = None
        else:
            ticket = self._own_ticket(rgb)
        self._pending.append((ticket, rgb))
        self._last = ticket

    def _own_ticket(self, rgb: np.ndarray) -> Ticket:
        if self._own is None or self._last is None or self._last.source is not self._own:
            if self._own is not None:
                self._own.close()
            self._own = self._open_own()
            self._opened.append(self._own)
        ticket = self._own.submit(rgb)
        assert ticket is not None  # a blocking submit always queues
        return ticket

    def ready(self, wait_s: float | None = None) -> list[EncodedPacket]:
        """The packets of the frames added so far, in order, up to the first one not encoded
        within ``wait_s`` seconds (``None``: all of them)."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        out: list[EncodedPacket] = []
        while self._pending:
            ticket, _ = self._pending[0]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                if not ticket.source.wait(ticket, left):
                    break
            except VideoCodecError as exc:
                if ticket.source is self._own:
                    raise  # the episode's own encoder: nothing left to fall back on
                self._reencode_from(ticket.source, exc)
                continue
            self._pending.popleft()
            packet = ticket.packet
            assert packet is not None
            out.append(EncodedPacket(packet.data, self.taken, packet.keyframe))
            self.taken += 1
            self.reused += not _among(ticket.source, self._opened)
        return out

    def _reencode_from(self, source: EncoderThread, exc: Exception) -> None:
        """A continuous encoder failed: encode its frames still waiting with the episode's own."""
        log.warning("%s: continuous encoder failed (%s); the episode encodes these frames itself",
                    self.name, exc)
        self._failed.append(source)
        waiting, self._pending, self._last = list(self._pending), deque(), None
        if self._own is not None:
            self._own.close()
            self._own = None
        for ticket, rgb in waiting:  # as if added anew: the failed encoder's tickets refused
            self.add(rgb, ticket)
        if self._finishing and self._own is not None:
            self._own.close()  # nothing more comes: drain it

    def finish(self) -> list[EncodedPacket]:
        """Drain the episode's own encoder: the packets of every frame not handed out yet."""
        self._finishing = True
        if self._own is not None:
            self._own.close()
        out = self.ready(None)
        for own in self._opened:
            own.join()
        return out

    def stop(self) -> None:
        """Abandon what is not encoded yet (an aborted episode)."""
        self._pending.clear()
        if self._own is not None:
            self._own.stop()
            self._own = None

    @property
    def pending(self) -> int:
        """Frames added whose packets have not been handed out."""
        return len(self._pending)


def _among(source: EncoderThread, sources: list[EncoderThread]) -> bool:
    return any(source is s for s in sources)


def _settings(encoder: VideoEncoder) -> tuple:
    """What packets of two encoders must share to follow each other in one field."""
    return encoder.codec, encoder.width, encoder.height, encoder.crf
