"""Length-prefixed framing of canonical-msgpack messages (sans-I/O).

A frame is a 4-byte big-endian payload length followed by the payload, the canonical encoding
of ``[tag, body]`` (:mod:`p2p.messages`). :class:`FrameDecoder` takes bytes in any chunking
(``receive_data``) and hands out whole messages (``next_event``); it never sees a socket.

Bad input is always the peer's fault and raises :class:`RemoteProtocolError`: a declared length
of zero or above :data:`MAX_FRAME_BYTES` (refused from the 4-byte prefix alone, before any of the
payload is buffered), a payload that is not canonical msgpack, an unknown tag, a wrong shape, or
end-of-stream inside a frame. Once it has raised, the decoder stays failed.

This module must never do I/O, and must never buffer more than one frame plus one read chunk.
"""

from __future__ import annotations

import struct
from typing import Final

from crypto.encoding import EncodingError, decode, encode
from p2p.errors import LocalProtocolError, RemoteProtocolError
from p2p.messages import Message, message_from_obj, message_to_obj

__all__ = ["MAX_FRAME_BYTES", "NEED_DATA", "PREFIX_BYTES", "FrameDecoder", "NeedData", "encode_frame"]

# Largest frame either side sends or accepts. The biggest messages are state-transfer batches,
# which the gossip layer caps at 8 MiB of block bytes (STATE_BATCH_BYTES_MAX) — a whole batch of
# blocks fits with room for msgpack headers, and a single block of the largest orderer batch
# (BatchConfig.absolute_max_bytes, 10 MiB) still fits on its own. Beyond that a peer could make us
# buffer arbitrarily much before we can tell whether its message is valid.
MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
PREFIX_BYTES: Final = 4
_PREFIX = struct.Struct(">I")


class NeedData:
    """Sentinel: no whole message is buffered yet (h11's NEED_DATA)."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


def encode_frame(msg: Message) -> bytes:
    """The frame carrying ``msg``; :class:`LocalProtocolError` if it cannot be sent."""
    try:
        payload = encode(message_to_obj(msg))
    except EncodingError as exc:
        raise LocalProtocolError(f"message {type(msg).__name__} is not encodable: {exc}") from exc
    if len(payload) > MAX_FRAME_BYTES:
        raise LocalProtocolError(f"{type(msg).__name__} of {len(payload)} bytes exceeds MAX_FRAME_BYTES")
    return _PREFIX.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental decoder: bytes in (any chunking), messages out."""

    __slots__ = ("_buf", "_eof", "_failed", "_max_frame")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        assert 0 < max_frame_bytes <= MAX_FRAME_BYTES
        self._buf = bytearray()
        self._eof = False
        self._failed = False
        self._max_frame = max_frame_bytes

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def at_eof(self) -> bool:
        """True once end-of-stream was received and every whole frame before it was consumed."""
        return self._eof and not self._buf

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the stream; ``b""`` means end-of-stream."""
        if self._eof:
            raise LocalProtocolError("data received after end-of-stream")
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Message | NeedData:
        """The next whole message, or :data:`NEED_DATA`. Raises :class:`RemoteProtocolError`."""
        if self._failed:
            raise RemoteProtocolError("decoder already failed")
        try:
            return self._next()
        except RemoteProtocolError:
            self._failed = True
            raise

    def _next(self) -> Message | NeedData:
        buf = self._buf
        if len(buf) < PREFIX_BYTES:
            if self._eof and buf:
                raise RemoteProtocolError("end of stream inside a frame prefix")
            return NEED_DATA
        (length,) = _PREFIX.unpack_from(buf, 0)
        if length == 0:
            raise RemoteProtocolError("empty frame")
        if length > self._max_frame:
            raise RemoteProtocolError(f"frame of {length} bytes exceeds the limit of {self._max_frame}")
        end = PREFIX_BYTES + length
        if len(buf) < end:
            if self._eof:
                raise RemoteProtocolError("end of stream inside a frame")
            return NEED_DATA
        with memoryview(buf) as view:
            payload = bytes(view[PREFIX_BYTES:end])  # one copy (a bytearray slice would be two)
        del buf[:end]
        try:
            obj = decode(payload, max_bytes=self._max_frame)
        except EncodingError as exc:
            raise RemoteProtocolError(f"frame is not canonical msgpack: {exc}") from exc
        return message_from_obj(obj)

    def __iter__(self) -> FrameDecoder:
        return self

    def __next__(self) -> Message:
        ev = self.next_event()
        if isinstance(ev, NeedData):
            raise StopIteration
        return ev
