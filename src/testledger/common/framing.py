"""Length-prefixed pickle frames on a pipe, between two processes of the same testledger.

Each message is a pickle (both ends are the same Python and the same testledger, started
together) behind a 4-byte length. Standard library only: the pytest side and the parse-ahead
child use it without SQLAlchemy.
"""

from __future__ import annotations

import os
import pickle
import struct
from typing import IO, Any

__all__ = ["FrameReader", "encode_frame", "read_frame"]

_LENGTH = struct.Struct("<I")


def encode_frame(message: Any) -> bytes:
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def read_frame(stream: IO[bytes]) -> Any | None:
    """The next message from a blocking stream; None at end of file (or a torn last frame)."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    data = stream.read(length)
    if len(data) < length:
        return None
    return pickle.loads(data)


class FrameReader:
    """Reads messages from a pipe's file descriptor, without blocking unless asked to."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self.closed = False
        os.set_blocking(fd, False)

    def _fill(self, block: bool) -> bool:
        """Read what the pipe holds (waiting for something when ``block``); False at EOF."""
        if block:
            os.set_blocking(self._fd, True)
        try:
            chunk = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return True
        finally:
            if block:
                os.set_blocking(self._fd, False)
        if not chunk:
            self.closed = True
            return False
        self._buffer += chunk
        return True

    def _pop(self) -> Any | None:
        if len(self._buffer) < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack_from(self._buffer)
        end = _LENGTH.size + length
        if len(self._buffer) < end:
            return None
        message = pickle.loads(bytes(self._buffer[_LENGTH.size : end]))
        del self._buffer[:end]
        return message

    def poll(self) -> list[Any]:
        """The messages that have arrived so far."""
        messages: list[Any] = []
        while not self.closed:
            message = self._pop()
            if message is None:
                before = len(self._buffer)
                if not self._fill(block=False) or len(self._buffer) == before:
                    break
                continue
            messages.append(message)
        while (message := self._pop()) is not None:
            messages.append(message)
        return messages

    def wait(self) -> Any | None:
        """The next message, waiting for it; None once the other end is gone."""
        while True:
            message = self._pop()
            if message is not None:
                return message
            if self.closed or not self._fill(block=True):
                return None
