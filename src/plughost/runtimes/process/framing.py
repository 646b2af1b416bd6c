"""``Content-Length`` framing (the Language Server Protocol's), sans-IO.

One implementation serves the host (asyncio pipes) and the Python child runner (a blocking
read loop), so both ends agree byte for byte. A frame is::

    Content-Length: 42\\r\\n
    \\r\\n
    {"jsonrpc":"2.0","id":1,"method":"plugin.health"}

Header names are case-insensitive; other headers (``Content-Type``) are accepted and ignored, as
in LSP. The decoder refuses a frame whose declared length exceeds ``max_frame`` *before* reading
its body, so a hostile peer cannot make the other side buffer gigabytes.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the lean child runner does not import typing
if TYPE_CHECKING:
    from plughost.errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME",
    "MAX_HEADER",
    "FrameDecoder",
    "encode_frame",
]

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
"""Largest body accepted by default (16 MiB); configurable per side."""

MAX_HEADER = 1024
"""Largest header block accepted; a real one is ~25 bytes."""

_PREFIX = b"content-length:"
_SEP = b"\r\n\r\n"


def encode_frame(body: bytes) -> bytes:
    """Wrap one JSON body in its ``Content-Length`` header."""
    return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)


def _frame_error(message: str) -> ProtocolError:
    # Imported here: the error tree costs the lean child runner milliseconds it rarely needs.
    from plughost.errors import ProtocolError

    return ProtocolError(message, code="protocol.frame")


def _parse_header(block: bytes, max_frame: int) -> int:
    """Return the body length declared by one header block (without the blank line)."""
    length = -1
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            raise _frame_error(
                f"malformed frame header line {line[:80]!r}: expected 'Name: value'. "
                "Frames are 'Content-Length: N\\r\\n\\r\\n' followed by N bytes of JSON."
            )
        if name.strip().lower() == b"content-length":
            value = value.strip()
            if not value.isdigit():
                raise _frame_error(
                    f"Content-Length must be a decimal byte count, got {value[:40]!r}"
                )
            length = int(value)
    if length < 0:
        raise _frame_error(
            f"frame header {block[:80]!r} has no Content-Length; every frame needs one"
        )
    if length > max_frame:
        raise _frame_error(
            f"frame of {length} bytes exceeds the limit of {max_frame} bytes; "
            "send large data in several messages or raise max_frame on both sides"
        )
    return length


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get complete bodies back.

    Handles headers split across reads, several frames in one read, and bodies split anywhere.
    Raises :class:`~plughost.errors.ProtocolError` (code ``protocol.frame``) on a malformed or
    oversized header; after that the stream is unusable and the session must end.
    """

    __slots__ = ("_buf", "_need", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need = -1  # body bytes still expected; -1 while reading a header

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data``; return every body completed by it (possibly none)."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        need = self._need
        end_all = len(buf)
        while True:
            if need < 0:
                end = buf.find(_SEP, pos)
                if end < 0:
                    if end_all - pos > MAX_HEADER:
                        raise _frame_error(
                            f"no end of frame header within {MAX_HEADER} bytes "
                            f"(starts {bytes(buf[pos : pos + 40])!r}); is the peer writing "
                            "plain text to stdout? Logs belong on stderr."
                        )
                    break
                if end - pos > MAX_HEADER:
                    raise _frame_error(f"frame header longer than {MAX_HEADER} bytes")
                # Fast path for the canonical single header written by every sane peer.
                if buf[pos : pos + 16] == b"Content-Length: " and buf[pos + 16 : end].isdigit():
                    need = int(buf[pos + 16 : end])
                    if need > self.max_frame:
                        _parse_header(bytes(buf[pos:end]), self.max_frame)  # raises, same text
                else:
                    need = _parse_header(bytes(buf[pos:end]), self.max_frame)
                pos = end + 4
            if end_all - pos < need:
                break
            out.append(bytes(buf[pos : pos + need]))
            pos += need
            need = -1
        if pos:
            del buf[:pos]
        self._need = need
        return out
