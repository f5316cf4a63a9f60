"""Frames between the judge and a worker over a pair of pipes.

A frame is a small JSON header and a list of payloads (encoded values, passed
as raw text so they are never escaped twice)::

    u32 header length | u32 payload count | u32 length of each payload | header | payloads

Both sides refuse frames larger than their limit, so a worker cannot make
the judge read without end; JSON is the only thing ever parsed, so a frame
cannot make the reader run code.
"""

from __future__ import annotations

import json
import os
import select
import struct
from typing import Any, Callable

from labkit.node import LabkitError

__all__ = ["Channel", "ChannelError", "ChannelClosed", "MAX_FRAME"]

MAX_FRAME = 512 * 1024 * 1024  # bytes in one frame
MAX_PAYLOADS = 1_000_000
_U32 = struct.Struct("<I")
_READ = 1 << 18


class ChannelError(LabkitError):
    """A frame that is malformed or too large."""


class ChannelClosed(ChannelError):
    """The other end closed its pipe (the process ended)."""


class Channel:
    """Sends and receives frames; ``wait`` is called while a frame is awaited."""

    def __init__(self, read_fd: int, write_fd: int, max_frame: int = MAX_FRAME) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._chunk = bytearray(_READ)
        self._view = memoryview(self._chunk)
        self._poller: select.poll | None = None  # poll, not select: descriptors above 1023 work too
        self.closed = False

    # ---- sending ---------------------------------------------------------------------

    def send(self, header: Any, payloads: list[str] | tuple[str, ...] = ()) -> None:
        head = json.dumps(header, separators=(",", ":")).encode("utf-8")
        blobs = [p.encode("utf-8", "surrogatepass") for p in payloads]
        parts = [_U32.pack(len(head)), _U32.pack(len(blobs))]
        parts.extend(_U32.pack(len(b)) for b in blobs)
        parts.append(head)
        parts.extend(blobs)
        data = b"".join(parts)
        if len(data) > self.max_frame:
            raise ChannelError(f"a frame of {len(data):,} bytes is over the limit of {self.max_frame:,}")
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.write_fd, view)
            except BrokenPipeError:
                raise ChannelClosed("the other process has ended") from None
            view = view[written:]

    # ---- receiving -------------------------------------------------------------------

    def receive(self, wait: Callable[[], None] | None = None, poll_seconds: float = 0.25) -> tuple[Any, list[str]]:
        """The next frame. While none is complete, ``wait()`` runs every ``poll_seconds``
        (it may raise to give up, e.g. when the other side used too much CPU time)."""
        head_len = self._take_u32(wait, poll_seconds)
        count = self._take_u32(wait, poll_seconds)
        if count > MAX_PAYLOADS:
            raise ChannelError(f"a frame announces {count:,} payloads (at most {MAX_PAYLOADS:,})")
        lengths = [self._take_u32(wait, poll_seconds) for _ in range(count)]
        total = head_len + sum(lengths)
        if total > self.max_frame:
            raise ChannelError(f"a frame of {total:,} bytes is over the limit of {self.max_frame:,}")
        body = self._take(total, wait, poll_seconds)
        try:
            header = json.loads(body[:head_len])
        except (ValueError, RecursionError) as error:
            raise ChannelError(f"a frame's header is not valid JSON: {error}") from None
        payloads = []
        at = head_len
        for n in lengths:
            try:
                payloads.append(body[at:at + n].decode("utf-8", "surrogatepass"))
            except UnicodeDecodeError as error:
                raise ChannelError(f"a payload is not text: {error}") from None
            at += n
        return header, payloads

    def _take_u32(self, wait: Callable[[], None] | None, poll: float) -> int:
        return _U32.unpack(self._take(4, wait, poll))[0]

    def _take(self, n: int, wait: Callable[[], None] | None, poll: float) -> bytes:
        buffer = self._buffer
        while len(buffer) < n:
            if wait is not None:
                while not self.readable(poll):
                    wait()
            got = os.readv(self.read_fd, [self._view])
            if not got:
                raise ChannelClosed("the other process has ended")
            buffer += self._view[:got]
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    def readable(self, seconds: float) -> bool:
        """True once the pipe has something to read (or was closed), waiting at most ``seconds``."""
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self.read_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        return bool(self._poller.poll(max(0, int(seconds * 1000))))

    def has_buffered(self) -> bool:
        """True if part of a frame was read already (so the rest is on its way)."""
        return bool(self._buffer)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
