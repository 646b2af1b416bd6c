"""The process-plugin protocol, both ends, sans-IO: framing, methods, message shapes, codes, hello.

``docs/protocol.md`` is the normative description; this module is its one implementation, and a
test checks the doc's tables against :data:`METHODS`, :class:`WireCode` and the handshake. Both
ends import it — the host (:mod:`plughost.runtimes.process.connection`, go-plugin's
``client.go``) and the Python child runner (:mod:`plughost.sdk.child`, its ``server.go``); an
in-memory pair of the two is :func:`plughost.sdk.testing.wire_pair`.

Nothing here does I/O or imports asyncio, typing or dataclasses: the child runner imports this
module on every start (``python -S``) and counts milliseconds. ``plughost.errors`` is imported
inside the functions that raise or map errors, for the same reason.

A frame is the Language Server Protocol's::

    Content-Length: 42\\r\\n
    \\r\\n
    {"jsonrpc":"2.0","id":1,"method":"plugin.health"}
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: the lean child runner does not import typing
if TYPE_CHECKING:
    from typing import Any

    from plughost.errors import PlughostError, PluginCrashed, ProtocolError

__all__ = [
    "APP_PROTOCOL_VERSION",
    "DEFAULT_MAX_FRAME",
    "ENV_APP_PROTOCOL",
    "ENV_MAX_FRAME",
    "ENV_PLUGIN_ID",
    "ENV_PROTOCOL",
    "ENV_SPARE",
    "ENV_TOKEN",
    "ENV_ZYGOTE",
    "EXIT_LOAD",
    "EXIT_MEMORY",
    "EXIT_OK",
    "EXIT_PROTOCOL",
    "EXIT_USAGE",
    "MAX_HEADER",
    "METHODS",
    "PROTOCOL_VERSION",
    "READ_SIZE",
    "WRITE_BATCH",
    "FrameDecoder",
    "M",
    "MethodSpec",
    "WireCode",
    "check_hello",
    "crashed",
    "decode_message",
    "decode_messages",
    "disable_fast_json",
    "dumps",
    "dumps_floatless",
    "enable_fast_json",
    "encode_frame",
    "encode_hello",
    "error_from_wire",
    "error_response",
    "error_to_wire",
    "exception_response",
    "fast_json",
    "frame_message",
    "hello_params",
    "launch_env",
    "loads",
    "notification",
    "request",
    "response",
]

PROTOCOL_VERSION = 1
"""Core protocol: framing, JSON-RPC envelope, handshake, cancellation, shutdown."""

APP_PROTOCOL_VERSION = 1
"""Application protocol: the ``plugin.*`` / ``host.*`` method set and their parameters."""

ENV_PROTOCOL = "PLUGHOST_PROTOCOL"
ENV_APP_PROTOCOL = "PLUGHOST_APP_PROTOCOL"
ENV_PLUGIN_ID = "PLUGHOST_PLUGIN_ID"
ENV_TOKEN = "PLUGHOST_TOKEN"
ENV_MAX_FRAME = "PLUGHOST_MAX_FRAME"
ENV_SPARE = "PLUGHOST_SPARE"  # plughost's own Python runner only: start as a warm spare
ENV_ZYGOTE = "PLUGHOST_ZYGOTE"  # ... and its fork server: the number of its socket to the host

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
"""Largest body accepted by default (16 MiB); configurable per side."""

MAX_HEADER = 1024
"""Largest header block accepted; a real one is ~25 bytes."""

READ_SIZE = 64 * 1024
"""Bytes asked for per read of a pipe, on both ends. Larger costs on Linux: a 256 KiB buffer is
allocated with mmap and faulted in on every read (~10x the time of a 64 KiB one, measured)."""

WRITE_BATCH = 32
"""Frames per write at most, on both ends, when many are queued at once. Under load the answers
to one batch of requests go back in writes of this many, so the other side starts on them while
this side works on the rest: the two processes overlap on two cores instead of taking turns.
Smaller costs more system calls and wake-ups; larger leaves the other side idle longer."""

EXIT_OK, EXIT_USAGE, EXIT_LOAD, EXIT_PROTOCOL, EXIT_MEMORY = 0, 2, 3, 4, 5
"""Exit statuses the host recognises: normal, started by hand, could not load, protocol error,
out of memory (``MemoryError`` under the memory limit)."""


def launch_env(plugin_id: str, token: str, max_frame: int = DEFAULT_MAX_FRAME) -> dict[str, str]:
    """The protocol's environment variables for one launch (docs/protocol.md §1)."""
    return {
        ENV_PROTOCOL: str(PROTOCOL_VERSION),
        ENV_APP_PROTOCOL: str(APP_PROTOCOL_VERSION),
        ENV_PLUGIN_ID: plugin_id,
        ENV_TOKEN: token,
        ENV_MAX_FRAME: str(max_frame),
    }


# --- methods and their shapes ---------------------------------------------------------------
class M:
    """Method names, as constants both ends use (the table is :data:`METHODS`)."""

    HELLO = "$/hello"
    CANCEL = "$/cancelRequest"
    EXIT = "$/exit"
    SPARE = "$/spare"  # plughost's own Python runner only: a warm spare finished its imports
    ASSIGN = "$/assign"  # ... and is given its plugin
    ACTIVATE = "plugin.activate"
    CALL = "plugin.call"
    EVENT = "plugin.event"
    HEALTH = "plugin.health"
    EXPORT_STATE = "plugin.export_state"
    IMPORT_STATE = "plugin.import_state"
    CONFIG_CHANGE = "plugin.config_change"
    ENABLE = "plugin.enable"
    DISABLE = "plugin.disable"
    DEACTIVATE = "plugin.deactivate"
    # the host operations the runners send or the host serves itself (shapes: host ops table)
    LOG = "host.log"
    CONFIG_GET = "host.config.get"
    EMIT = "host.emit"
    EXECUTE = "host.execute"
    CHANNEL_OPEN = "channel.open"
    CHANNEL_MESSAGE = "channel.message"
    CHANNEL_CLOSE = "channel.close"


class MethodSpec:
    """One method of the protocol: who sends it, how, with which params, answered with what.

    :param sender: ``host``, ``plugin`` or ``both``.
    :param kind: ``request``, ``notification`` or ``either`` (a notification that may carry an
        ``id``, then answered ``null``).
    :param params: parameter names; a trailing ``?`` marks an optional one.
    :param result: the result's shape, as the doc writes it (``-`` for notifications).
    :param private: plughost's own Python runner only; other plugins never see it.
    """

    __slots__ = ("kind", "name", "params", "private", "result", "sender")

    def __init__(
        self,
        name: str,
        sender: str,
        kind: str,
        params: tuple[str, ...],
        result: str = "null",
        *,
        private: bool = False,
    ) -> None:
        self.name = name
        self.sender = sender
        self.kind = kind
        self.params = params
        self.result = result if kind != "notification" else "-"
        self.private = private

    def __repr__(self) -> str:
        return f"MethodSpec({self.name!r}, {self.sender}, {self.kind}, {self.params})"

    @property
    def required(self) -> tuple[str, ...]:
        """The parameters a message must carry."""
        return tuple(p for p in self.params if not p.endswith("?"))

    @property
    def names(self) -> tuple[str, ...]:
        """Every parameter name, without the optional mark."""
        return tuple(p.rstrip("?") for p in self.params)


TRACE_PARAMS = ("traceparent?", "tracestate?")
"""The optional W3C trace context fields (https://www.w3.org/TR/trace-context/) of
``plugin.call``, ``plugin.event``, ``channel.open`` and ``channel.message``: the host sends them
when the message is sent inside a traced span, so a plugin's own spans join the host's trace."""

METHODS: dict[str, MethodSpec] = {
    s.name: s
    for s in (
        # core protocol (§5, §8)
        MethodSpec(
            M.HELLO, "plugin", "notification",
            ("protocol", "app_protocol", "plugin_id", "token", "pid?", "implementation?",
             "error?"),
        ),
        MethodSpec(M.CANCEL, "both", "notification", ("id",)),
        MethodSpec(M.EXIT, "host", "notification", ()),
        MethodSpec(M.SPARE, "plugin", "notification", (), private=True),
        MethodSpec(M.ASSIGN, "host", "notification",
                   ("plugin_id", "entry", "cwd", "limits", "confine?", "env?"), private=True),
        # host -> plugin (§6)
        MethodSpec(M.ACTIVATE, "host", "request", ("plugin_id", "config", "data_dir", "manifest"),
                   '{"exports": [{"kind", "name", "target", "options"}]}'),
        MethodSpec(M.CALL, "host", "request", ("target", "args", *TRACE_PARAMS),
                   "the handler's return value"),
        MethodSpec(M.EVENT, "host", "either", ("target", "args", *TRACE_PARAMS), "null"),
        MethodSpec(M.HEALTH, "host", "request", (), '{"ok", "detail", "data"}'),
        MethodSpec(M.EXPORT_STATE, "host", "request", (), '{"state"}'),
        MethodSpec(M.IMPORT_STATE, "host", "request", ("state", "from_version")),
        MethodSpec(M.CONFIG_CHANGE, "host", "request", ("old", "new")),
        MethodSpec(M.ENABLE, "host", "request", ()),
        MethodSpec(M.DISABLE, "host", "request", ()),
        MethodSpec(M.DEACTIVATE, "host", "request", ()),
        # channels, both directions (§7)
        MethodSpec(M.CHANNEL_OPEN, "host", "notification",
                   ("channel", "stream", "target", *TRACE_PARAMS)),
        MethodSpec(M.CHANNEL_MESSAGE, "both", "notification",
                   ("channel", "stream", "data", *TRACE_PARAMS)),
        MethodSpec(M.CHANNEL_CLOSE, "both", "notification", ("channel", "stream", "reason?")),
    )
}
"""Every method of the protocol but the ``host.*`` operations; ``docs/protocol.md`` is checked
against this table. What a plugin may ask of the host — each ``host.*`` method, its parameters,
the permission it needs — is the host operations table (``plughost.runtimes.hostcalls``), which
every sandboxed runtime shares; the doc is checked against it too."""


class WireCode:
    """JSON-RPC ``error.code`` values used on the wire (see docs/protocol.md, "Errors")."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    REQUEST_CANCELLED = -32800
    PLUGIN_ERROR = -32000
    PERMISSION_DENIED = -32001
    TIMEOUT = -32002
    UNAVAILABLE = -32003
    NOT_FOUND = -32004


# --- envelopes ------------------------------------------------------------------------------
def request(rid: Any, method: str, params: Any) -> dict[str, Any]:
    """A JSON-RPC request (``params`` is always an object on this protocol)."""
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def notification(method: str, params: Any = None) -> dict[str, Any]:
    """A JSON-RPC notification; ``params`` left out when ``None``."""
    if params is None:
        return {"jsonrpc": "2.0", "method": method}
    return {"jsonrpc": "2.0", "method": method, "params": params}


def response(rid: Any, result: Any) -> dict[str, Any]:
    """A successful answer."""
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def error_response(
    rid: Any, code: int, message: str, data_code: str | None = None
) -> dict[str, Any]:
    """An error answer; ``data_code`` is the stable plughost code (``error.data.code``)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data_code is not None:
        error["data"] = {"code": data_code}
    return {"jsonrpc": "2.0", "id": rid, "error": error}


def exception_response(rid: Any, exc: BaseException) -> dict[str, Any]:
    """The error answer for an exception raised while serving request ``rid``."""
    return {"jsonrpc": "2.0", "id": rid, "error": error_to_wire(exc)}


# --- framing --------------------------------------------------------------------------------
_SEP = b"\r\n\r\n"
_PREFIX = b"Content-Length: "


_HEADERS: dict[int, bytes] = {}
"""The header of each body length below :data:`_HEADERS_UP_TO`, made on first use: most
messages are small, and a dictionary lookup costs less than formatting the number."""
_HEADERS_UP_TO = 4096


def _header(length: int) -> bytes:
    header = b"Content-Length: %d\r\n\r\n" % length
    if length < _HEADERS_UP_TO:
        _HEADERS[length] = header
    return header


def encode_frame(body: bytes) -> bytes:
    """Wrap one JSON body in its ``Content-Length`` header."""
    return (_HEADERS.get(len(body)) or _header(len(body))) + body


def frame_message(msg: Any) -> bytes:
    """One message, encoded (:func:`dumps`) and framed (:func:`encode_frame`): the hot path of
    both ends, in one call."""
    body: bytes = _dumps(msg)
    return (_HEADERS.get(len(body)) or _header(len(body))) + body


def _frame_error(message: str) -> ProtocolError:
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
    Header names are case-insensitive; other headers (``Content-Type``) are ignored, as in LSP.
    A frame whose declared length exceeds ``max_frame`` is refused *on its header*, so a hostile
    peer cannot make the other side buffer gigabytes. Raises
    :class:`~plughost.errors.ProtocolError` (code ``protocol.frame``) on a malformed or oversized
    header; after that the stream is unusable and the session must end.
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
        if self._buf or self._need >= 0:
            return self._feed_buffered(data)
        # The common case: a read that starts at a frame (nothing left over from the last one)
        # and holds whole canonical frames, one or many (a peer under load writes a batch at
        # once). Splitting at the header text cuts every frame out in one call; a frame is
        # taken when its header is the canonical one and its body, up to the next header, has
        # exactly the declared length: then it reads as the general way reads it (which takes
        # that many bytes and expects a header next). From the first frame that is not that
        # (a body holding the header text, a frame cut short, another header), the rest goes
        # the general way.
        if type(data) is not bytes:
            data = bytes(data)
        parts = data.split(_PREFIX)
        if parts[0]:
            return self._feed_buffered(data)
        out: list[bytes] = []
        max_frame = self.max_frame
        for i in range(1, len(parts)):
            digits, sep, body = parts[i].partition(_SEP)
            if not (
                sep
                and len(digits) < 10
                and digits.isdigit()
                and int(digits) == len(body) <= max_frame
            ):
                return out + self._feed_buffered(_PREFIX + _PREFIX.join(parts[i:]))
            out.append(body)
        return out

    def _feed_buffered(self, data: bytes) -> list[bytes]:
        """The general decoder: any headers, frames split anywhere, through the buffer."""
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


# --- JSON: the stdlib, or orjson (several times faster) once a session asks for it ---------------
#
# One meaning, two codecs. The standard library's encoder (compact, UTF-8, NaN refused) and
# decoder define what a message means; orjson, when installed, is used only where it gives the
# very same values, and hands everything else to the standard library:
#
# * encoding: orjson refuses (TypeError) subclasses of the builtin types, datetimes, dataclasses,
#   integers beyond 64 bits and non-string keys -> the standard library encodes them (or refuses
#   them) exactly as it would alone. orjson writes NaN and infinities as ``null``, which the
#   standard library refuses: a body with ``null`` in it is re-encoded by the standard library
#   (it refuses, or writes the same values). Both codecs write ``uuid.UUID`` as its string and an
#   ``enum.Enum`` as its value (the standard library through :func:`_default`).
# * decoding: orjson refuses NaN/Infinity literals, lone surrogates, a byte order mark and
#   numbers out of a double's range -> the standard library decodes (or refuses) them. orjson
#   reads an integer beyond 64 bits as a float: a body that may hold one goes to the standard
#   library, which keeps it an integer (:func:`orjson_reads_alike`).
#
# Byte-for-byte the output may differ (``1e16`` vs ``1e+16``); decoded, it never does.

_encode: Any = None


def _default(obj: Any) -> Any:
    """What the standard library encoder does with the two types orjson writes natively and it
    does not: a UUID is its string, an enum member its value. Neither module is imported for
    it: an object of a class from a module that is not loaded cannot be here."""
    uuid = sys.modules.get("uuid")
    if uuid is not None and isinstance(obj, uuid.UUID):
        return str(obj)
    enum = sys.modules.get("enum")
    if enum is not None and isinstance(obj, enum.Enum):
        return obj.value
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _std_dumps(obj: Any) -> bytes:
    global _encode
    if _encode is None:
        import json

        _encode = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
        ).encode
    return _encode(obj).encode("utf-8")  # type: ignore[no-any-return]


def _std_loads(body: bytes) -> Any:
    import json

    return json.loads(body)


# Every digit to "0", a minus sign kept, anything else to a space (see orjson_reads_alike).
_NUMBERS = bytes(48 if 48 <= i <= 57 else 45 if i == 45 else 32 for i in range(256))
_LONG = b"0" * 20
_LONG_NEGATIVE = b"-" + b"0" * 19


def orjson_reads_alike(body: bytes) -> bool:
    """Whether orjson reads every integer in ``body`` as the standard library does. It reads
    one beyond 64 bits as a float; every integer of up to nineteen digits, or of twenty
    without a sign, under 2**64, fits. So a body with twenty digits in a row, or a minus sign
    and nineteen, is left to the standard library (a run of digits in a string or a fraction
    only costs that body the slower codec)."""
    numbers = body.translate(_NUMBERS)
    return numbers.find(_LONG) < 0 and numbers.find(_LONG_NEGATIVE) < 0

# Searched with ``bytes.find``, not ``in``: on Python 3.11 ``bytes in bytes`` first tries the
# operand as an integer and builds (then drops) a TypeError with a formatted message, every time.
_orjson: Any = None


def orjson_reads_back(obj: Any) -> bool:
    """Whether orjson is installed and reads the standard library's JSON of ``obj`` (plain
    JSON values) back as the standard library does: it encodes an integer exactly when it
    would read it back as one (up to 64 bits), so encoding ``obj`` once tells. Unlike
    :func:`orjson_reads_alike`, which has only the bytes, a long run of digits inside a string
    costs nothing (ten thousand hex digests hold a few). What orjson refuses to read (``NaN``,
    a lone surrogate: it refuses to encode the latter too) a reader hands to the standard
    library on its ``ValueError``."""
    try:
        import orjson

        orjson.dumps(obj)
    except (ImportError, TypeError):  # its JSONEncodeError is a TypeError
        return False
    return True


def _maybe_nonfinite(obj: Any) -> bool:
    """Whether ``obj`` (which orjson has just encoded) may hold a NaN or an infinity, which
    orjson writes as ``null``: only plain containers, strings, numbers and ``None`` are looked
    into (orjson refused their subclasses already); anything else it wrote itself (an enum, a
    UUID) counts as a maybe. A loop over a stack, not recursion: an API page of a hundred
    records is walked in a fraction of what encoding it costs."""
    pending = [obj]
    pop, push = pending.pop, pending.extend
    while pending:
        item = pop()
        t = type(item)
        if t is dict:
            values: Any = item.values()
        elif t is list or t is tuple:
            values = item
        elif t is float:
            if not -_INF < item < _INF:  # NaN fails both comparisons
                return True
            continue
        elif t is str or t is int or t is bool or item is None:
            continue
        else:
            return True
        # Leaves that cannot be a non-finite number are dropped here, without a turn each.
        push([v for v in values if type(v) not in _FINITE_LEAVES and v is not None])
    return False


_FINITE_LEAVES = frozenset({str, int, bool})
_INF = float("inf")


def _fast_dumps(obj: Any) -> bytes:
    try:
        out: bytes = _orjson.dumps(obj, option=_FAST_OPTIONS)
    except TypeError:  # a type or value only the standard library encodes (or refuses) right
        return _std_dumps(obj)
    # A ``null`` may be a NaN or an infinity orjson wrote so (the standard library refuses
    # them): let it decide then. ``None`` alone (a handler that returns nothing) is common.
    if out.find(b"null") >= 0 and _maybe_nonfinite(obj):
        return _std_dumps(obj)
    return out


def _fast_loads(body: bytes) -> Any:
    if not orjson_reads_alike(body):
        return _std_loads(body)
    try:
        return _orjson.loads(body)
    except ValueError:  # orjson.JSONDecodeError: let the standard library decide
        return _std_loads(body)


# json is imported on first use: with orjson the child runner never imports it (nor re).
_dumps: Any = _std_dumps
_loads: Any = _std_loads
_FAST_OPTIONS = 0


def enable_fast_json() -> bool:
    """Use orjson for every message from now on if it is installed; return whether it is.

    Called when a session starts rather than at import, so importing plughost never pulls in a
    third-party module (orjson is an optional speed-up, the ``fast`` extra, not a dependency).
    """
    global _dumps, _loads, _orjson, _FAST_OPTIONS
    if _dumps is _fast_dumps:
        return True
    try:
        import orjson
    except ImportError:
        return False
    _orjson = orjson
    _FAST_OPTIONS = (
        orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
    )
    _dumps, _loads = _fast_dumps, _fast_loads
    return True


def disable_fast_json() -> None:
    """Back to the standard library's codec (tests compare the two)."""
    global _dumps, _loads
    _dumps, _loads = _std_dumps, _std_loads


def fast_json() -> bool:
    """Whether messages are encoded with orjson now."""
    return _dumps is _fast_dumps


def dumps(obj: Any) -> bytes:
    """Serialise one message body to UTF-8 JSON bytes."""
    out: bytes = _dumps(obj)
    return out


def dumps_floatless(obj: Any) -> bytes:
    """:func:`dumps` for a body that holds no ``float`` (records of strings, integers,
    booleans and ``None``, such as an API page of plugin resources): the same bytes, without
    the look through the body for a NaN or an infinity that orjson would have written as
    ``null`` (a page of a hundred records is walked in about a third of what encoding it
    costs). A float in it is still encoded, but a non-finite one as ``null``."""
    if _dumps is _fast_dumps:
        try:
            out: bytes = _orjson.dumps(obj, option=_FAST_OPTIONS)
        except TypeError:  # a type only the standard library encodes (or refuses) right
            return _std_dumps(obj)
        return out
    return dumps(obj)


def loads(body: bytes) -> Any:
    """Parse one message body."""
    return _loads(body)


def decode_json(data: bytes | str, what: str, hint: str, *,
                plugin_id: str | None = None) -> Any:
    """A JSON text a plugin sent (a runtime's result or message field), decoded; empty is
    None. Not JSON: ``protocol.json`` naming ``what``, how the text starts and ``hint`` (where
    the format is documented) — the one rule for every runtime whose plugin answers in JSON."""
    if not data:
        return None
    try:
        return _loads(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    except (ValueError, UnicodeError, RecursionError) as exc:
        from plughost.errors import ProtocolError

        raise ProtocolError(f"{what} is not valid JSON ({exc}); it starts {data[:60]!r}. {hint}",
                            code="protocol.json", plugin_id=plugin_id) from None


def decode_message(body: bytes) -> dict[str, Any]:
    """Parse one frame body into a JSON-RPC message; raise ``protocol.json`` if it is not one."""
    try:
        msg = _loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: a body nested thousands of levels deep (the stdlib parser recurses)
        from plughost.errors import ProtocolError

        raise ProtocolError(
            f"frame body is not valid JSON ({exc}); starts {body[:60]!r}",
            code="protocol.json",
        ) from None
    if type(msg) is not dict or msg.get("jsonrpc") != "2.0":
        from plughost.errors import ProtocolError

        raise ProtocolError(
            f'frame body is not a JSON-RPC 2.0 object (need {{"jsonrpc": "2.0", ...}}); '
            f"starts {body[:60]!r}",
            code="protocol.json",
        )
    return msg


def decode_messages(bodies: list[bytes]) -> Any:
    """The messages of several frame bodies, in order, as :func:`decode_message` reads each.

    The batch of one read is decoded in one pass when orjson is in use: one check for long
    runs of digits over all of it, orjson on each body, one type check each. A body that needs
    more (another codec, or it is not a JSON-RPC object) sends the whole batch the careful way:
    then an iterator that decodes one body at a time, so the messages before a bad body are
    handled before its :class:`~plughost.errors.ProtocolError` is raised, as they would be
    one by one.
    """
    if _loads is _fast_loads and bodies:
        blob = bodies[0] if len(bodies) == 1 else b"".join(bodies)
        if orjson_reads_alike(blob):
            loads = _orjson.loads
            try:
                msgs = [loads(body) for body in bodies]
            except ValueError:  # orjson.JSONDecodeError: the standard library decides
                return map(decode_message, bodies)
            for msg in msgs:
                if type(msg) is not dict or msg.get("jsonrpc") != "2.0":
                    return map(decode_message, bodies)
            return msgs
    return map(decode_message, bodies)


# --- handshake ------------------------------------------------------------------------------
def hello_params(
    *,
    plugin_id: str,
    token: str,
    implementation: str,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``$/hello`` parameters a child sends as its first message."""
    params: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "app_protocol": APP_PROTOCOL_VERSION,
        "plugin_id": plugin_id,
        "token": token,
        "pid": os.getpid(),
        "implementation": implementation,
    }
    if error is not None:
        params["error"] = error
    return params


def _plain(text: str) -> bool:
    return all(32 <= ord(c) < 127 and c not in '"\\' for c in text)


def encode_hello(params: dict[str, Any]) -> bytes:
    """The ``$/hello`` body, built without importing a JSON module when the values allow.

    The Python runner sends it before anything else and counts every millisecond of start-up;
    flat ASCII strings and integers need no escaping, anything else goes through :func:`dumps`.
    """
    parts = []
    for key, value in params.items():
        if type(value) is int:
            parts.append(f'"{key}":{value}')
        elif type(value) is str and _plain(value) and _plain(key):
            parts.append(f'"{key}":"{value}"')
        else:
            return dumps(notification(M.HELLO, params))
    head = '{"jsonrpc":"2.0","method":"' + M.HELLO + '","params":{'
    return (head + ",".join(parts) + "}}").encode()


def check_hello(
    msg: dict[str, Any],
    *,
    plugin_id: str,
    token: str,
    protocol: int = PROTOCOL_VERSION,
    app_protocol: int = APP_PROTOCOL_VERSION,
) -> dict[str, Any]:
    """Validate the child's first message; return its params or raise ``ProtocolError``.

    Versions are checked before the token so a plugin built for another plughost gets the
    message that helps (both versions named), not "bad token".
    """
    from plughost.errors import ProtocolError

    if msg.get("method") != M.HELLO or "id" in msg:
        raise ProtocolError(
            f"the plugin's first message must be the {M.HELLO!r} notification, got "
            f"{str(msg.get('method') or 'a response')[:60]!r}; see docs/protocol.md 'Handshake'",
            code="protocol.handshake",
            plugin_id=plugin_id,
        )
    params = msg.get("params")
    if type(params) is not dict:
        raise ProtocolError(
            f"{M.HELLO} needs an object of params", code="protocol.handshake", plugin_id=plugin_id
        )
    theirs = params.get("protocol")
    if theirs != protocol:
        raise ProtocolError(
            f"protocol version mismatch: the plugin speaks core protocol {theirs!r}, this host "
            f"speaks {protocol}. Update the plugin (or its SDK) to protocol {protocol}.",
            code="protocol.version",
            plugin_id=plugin_id,
            details={"plugin": theirs, "host": protocol, "kind": "core"},
        )
    theirs_app = params.get("app_protocol")
    if theirs_app != app_protocol:
        raise ProtocolError(
            f"application protocol mismatch: the plugin speaks app protocol {theirs_app!r}, "
            f"this host speaks {app_protocol}. Update the plugin to app protocol {app_protocol}.",
            code="protocol.version",
            plugin_id=plugin_id,
            details={"plugin": theirs_app, "host": app_protocol, "kind": "app"},
        )
    import hmac  # host side only; hashlib would cost the child import time

    if not isinstance(params.get("token"), str) or not hmac.compare_digest(
        # surrogatepass: a JSON string may hold a lone surrogate ("\udc80"); it just differs
        params["token"].encode("utf-8", "surrogatepass"), token.encode()
    ):
        raise ProtocolError(
            "handshake token does not match the one this launch passed in "
            f"${ENV_TOKEN}; the plugin must echo it unchanged",
            code="protocol.handshake",
            plugin_id=plugin_id,
        )
    if params.get("plugin_id") != plugin_id:
        raise ProtocolError(
            f"handshake names plugin {params.get('plugin_id')!r} but {plugin_id!r} was launched; "
            f"echo ${ENV_PLUGIN_ID}",
            code="protocol.handshake",
            plugin_id=plugin_id,
        )
    return params


# --- errors ---------------------------------------------------------------------------------
def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """The JSON-RPC ``error`` object for an exception raised while serving a request."""
    from plughost.errors import PermissionDenied, PlughostError, PluginTimeout, PluginUnavailable

    wire = WireCode.PLUGIN_ERROR
    for cls, num in (
        (PermissionDenied, WireCode.PERMISSION_DENIED),
        (PluginTimeout, WireCode.TIMEOUT),
        (PluginUnavailable, WireCode.UNAVAILABLE),
    ):
        if isinstance(exc, cls):
            wire = num
            break
    data: dict[str, Any] = {"type": type(exc).__name__}
    if isinstance(exc, PlughostError):
        data["code"] = exc.code
        if exc.code == "plugin.no_target":
            wire = WireCode.NOT_FOUND
        if exc.details:
            data["details"] = exc.details
        message = exc.message
    else:
        # A refusal the plugin did not handle (the child's HostError carries the host's code)
        # travels back with that code, so the caller sees e.g. PermissionDenied, not "error".
        code = getattr(exc, "code", None)
        data["code"] = code if isinstance(code, str) and "." in code else "plugin.error"
        if data["code"] == "permission.denied":
            wire = WireCode.PERMISSION_DENIED
        message = str(exc) or type(exc).__name__
    return {"code": wire, "message": message, "data": data}


def error_from_wire(err: Any, *, plugin_id: str, method: str) -> PlughostError:
    """Rebuild the host-side exception for an ``error`` object received from a plugin."""
    from plughost.errors import (
        PermissionDenied,
        PluginError,
        PluginTimeout,
        PluginUnavailable,
        ProtocolError,
    )

    if type(err) is not dict:
        return ProtocolError(
            f"{method}: error member is not an object", code="protocol.json", plugin_id=plugin_id
        )
    num = err.get("code")
    message = str(err.get("message") or "no message")
    raw = err.get("data")
    data: dict[str, Any] = raw if type(raw) is dict else {}
    code = data.get("code") if isinstance(data.get("code"), str) else None
    details = {"wire_code": num, "method": method, **{k: v for k, v in data.items() if k != "code"}}
    if num == WireCode.PERMISSION_DENIED:
        return PermissionDenied(message, plugin_id=plugin_id, details=details)
    if num == WireCode.TIMEOUT:
        return PluginTimeout(message, plugin_id=plugin_id, details=details)
    if num == WireCode.UNAVAILABLE:
        return PluginUnavailable(message, plugin_id=plugin_id, details=details)
    if num == WireCode.REQUEST_CANCELLED:
        return PluginError(message, code="plugin.cancelled", plugin_id=plugin_id, details=details)
    if num == WireCode.NOT_FOUND:  # as the in-process runtime says it: no such target
        return PluginUnavailable(
            message, code="plugin.no_target", plugin_id=plugin_id, details=details
        )
    if num == WireCode.METHOD_NOT_FOUND:
        return PluginError(
            f"{method}: {message}", code="plugin.method", plugin_id=plugin_id, details=details
        )
    return PluginError(message, code=code or "plugin.error", plugin_id=plugin_id, details=details)


def crashed(plugin_id: str, reason: str, **details: Any) -> PluginCrashed:
    """A :class:`PluginCrashed` with the reason the supervisor recorded."""
    from plughost.errors import PluginCrashed

    return PluginCrashed(
        f"plugin process ended: {reason}",
        plugin_id=plugin_id,
        details={"reason": reason, **details},
    )
