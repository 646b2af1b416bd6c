"""The two JSON codecs of the wire (plughost.core.wire) mean the same: orjson where installed,
the standard library otherwise — on both ends. Whatever a handler returns or a peer sends, the
fast codec gives the values the standard library gives, or refuses what it refuses.

The standard library defines the meaning: every property compares against ``json`` itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson  # (the test extra installs it: a missing fast codec fails here)
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from plughost.core import wire
from plughost.errors import ProtocolError

SRC = Path(wire.__file__).resolve().parents[2]

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(), st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-5, 5), st.booleans(),
                                  st.none(), st.floats(allow_nan=False)), inner, max_size=4),
    ),
    max_leaves=20,
)


def _reference_dumps(obj: Any) -> bytes:
    """The meaning on the wire: the standard library, strict (no NaN), compact, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=wire._default).encode("utf-8")


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except (TypeError, ValueError, UnicodeError, RecursionError) as exc:
        return "error", type(exc).__name__


def _same(a: Any, b: Any) -> bool:
    """Equal values, types included (1 is not 1.0 is not True), NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.fixture
def fast() -> Iterator[None]:
    assert wire.enable_fast_json(), "orjson is in the test extra: it must be importable"
    try:
        yield
    finally:
        wire.disable_fast_json()


@given(VALUES)
@example(float("nan"))
@example({"result": [1.0, float("inf")]})
@example({"x": 2**64})
@example({1: "a", False: "b", None: "c", 2.5: "d"})
@example("\ud800")
@example(-0.0)
@example(1e16)
@example({"result": None})  # a null orjson wrote for None, not for a NaN: no fallback needed
@example({"a": None, "b": [None, float("nan")]})  # a null and a NaN: refused, as by json
def test_encoding_means_what_the_standard_library_means(fast: None, value: Any) -> None:
    want = _outcome(lambda: json.loads(_reference_dumps(value)))
    got = _outcome(lambda: json.loads(wire.dumps(value)))
    assert want[0] == got[0], (value, want, got)
    if want[0] == "ok":
        assert _same(want[1], got[1]), (value, want, got)
    else:
        assert want == got


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class NanEnum(float, enum.Enum):  # orjson writes its value itself, NaN as null
    NAN = float("nan")


class Sub(str):
    pass


class Items(dict):  # type: ignore[type-arg]
    def items(self) -> Any:  # the standard library asks a dict subclass for its items
        return [("overridden", True)]


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize("value", [
    uuid.UUID(int=7), Colour.RED, Level.HIGH, Sub("s"), Items(a=1), (1, "a"),
    datetime.datetime(2026, 1, 2, 3, 4, 5), datetime.date(2026, 1, 2), Point(1), b"bytes",
    {"k": object()}, [float("-inf")], {"deep": [[{"n": float("nan")}]]}, 2**63, -(2**63) - 1,
    [None, NanEnum.NAN], {"none": None, "tuple": (None, float("inf"))},
])
def test_types_beyond_json_are_treated_alike(value: Any) -> None:
    wire.disable_fast_json()
    std = _outcome(lambda: wire.loads(wire.dumps(value)))
    assert wire.enable_fast_json()
    try:
        fast = _outcome(lambda: wire.loads(wire.dumps(value)))
    finally:
        wire.disable_fast_json()
    assert std[0] == fast[0], (value, std, fast)
    assert std == fast or _same(std[1], fast[1])


BODIES = st.one_of(
    st.builds(lambda v: json.dumps(v, allow_nan=True).encode(), VALUES),
    st.binary(max_size=40),
    st.sampled_from([b"NaN", b"[Infinity,-Infinity]", b"1e400", b'"\\ud800"', b"\xef\xbb\xbf{}",
                     b"123456789012345678901234567890", b"[-0]", b"-0.0", b"1E2", b'{"a":1,"a":2}',
                     b"[" * 400 + b"]" * 400, b'"\xff"', b" {} ", b"{}x", b"",
                     b"18446744073709551615", b"18446744073709551616",
                     b"-9223372036854775809", b"-9223372036854775808",
                     b"[-1000000000000000000000.5]"]),
)


@given(BODIES)
def test_decoding_means_what_the_standard_library_means(fast: None, body: bytes) -> None:
    want = _outcome(lambda: json.loads(body))
    got = _outcome(lambda: wire.loads(body))
    assert want[0] == got[0], (body, want, got)
    if want[0] == "ok":
        assert _same(want[1], got[1]), (body, want, got)


@given(VALUES)
@example({"digest": "1" * 40, "n": -(2**63), "m": 2**64 - 1})
@example({"n": 2**64})
@example([-(2**63) - 1])
@example({"text": "\ud800"})
@example([float("nan"), float("inf")])
def test_orjson_reads_back_what_it_says_it_reads_as_the_standard_library(value: Any) -> None:
    # The discovery cache's promise: where orjson_reads_back says yes, orjson reads the
    # standard library's JSON of the value as the standard library does, or refuses it (a
    # ValueError: the reader then falls back to the standard library). It never reads it
    # otherwise without a word.
    body = json.dumps(value, separators=(",", ":")).encode()
    if not wire.orjson_reads_back(value):
        return
    want = json.loads(body)
    try:
        got = orjson.loads(body)
    except ValueError:
        return
    assert _same(want, got), (value, want, got)


def test_orjson_reads_back_looks_at_values_not_at_their_digits() -> None:
    assert wire.orjson_reads_back({"digest": "12345678901234567890123", "n": 2**64 - 1})
    assert wire.orjson_reads_back([-(2**63), 1.5, None, True, "-" + "9" * 30])
    assert not wire.orjson_reads_back({"n": 2**64})
    assert not wire.orjson_reads_back([-(2**63) - 1])
    assert not wire.orjson_reads_back("\ud800")


def test_decode_message_refuses_alike_with_either_codec(fast: None) -> None:
    for body in (b"[1]", b"{}", b"\xff", b'{"jsonrpc":"2.0"', b"[" * 5000):
        with pytest.raises(ProtocolError) as caught:
            wire.decode_message(body)
        assert caught.value.code == "protocol.json"


def test_a_batch_decodes_as_each_body_alone_with_either_codec(fast: None) -> None:
    # A 20-digit id goes to the standard library (orjson would read a float), a body orjson
    # refuses (NaN) to the standard library too, a non-object is refused; all in one batch.
    bodies = [b'{"jsonrpc":"2.0","id":1,"result":[1.5,null]}',
              b'{"jsonrpc":"2.0","id":12345678901234567890,"result":1}',
              b'{"jsonrpc":"2.0","id":3,"result":NaN}']
    want = [json.loads(b) for b in bodies]
    for codec in (wire.enable_fast_json, wire.disable_fast_json):
        codec()
        got = list(wire.decode_messages(bodies))
        assert [m["id"] for m in got] == [m["id"] for m in want]
        assert type(got[1]["id"]) is int and math.isnan(got[2]["result"])
        with pytest.raises(ProtocolError):
            list(wire.decode_messages([*bodies, b"[1]"]))


# Import everything in plughost.core and plughost.sdk in an interpreter where only the standard
# library (and resolvelib) can be imported, then use the codec and the runner's connection.
_STDLIB_ONLY = textwrap.dedent("""
    import importlib, pkgutil, sys
    allowed = set(sys.stdlib_module_names) | {"plughost", "resolvelib"}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] not in allowed:
                raise ImportError(f"{name} is not in the standard library")
            return None

    sys.meta_path.insert(0, Refuse())
    import plughost.core, plughost.sdk
    for pkg in (plughost.core, plughost.sdk):
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(info.name)
    from plughost.core import wire
    assert wire.enable_fast_json() is False
    body = wire.dumps(wire.request(1, "plugin.call", {"target": "t", "args": {"x": [1.5, None]}}))
    assert wire.decode_message(body)["params"]["args"] == {"x": [1.5, None]}
    third = sorted(m for m in sys.modules
                   if m.partition(".")[0] not in allowed and m != "__main__")
    assert not third, third
    print("stdlib only: ok")
""")


def test_core_and_sdk_need_only_the_standard_library() -> None:
    import resolvelib

    # -S: nothing a .pth file imports. site-packages is on the path (orjson is there), but the
    # finder above refuses every name outside the standard library, plughost and resolvelib.
    site = str(Path(resolvelib.__file__).parents[1])
    script = f"import sys; sys.path.append({site!r})\n" + _STDLIB_ONLY
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-S", "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "stdlib only: ok" in out.stdout


@pytest.mark.parametrize("codec", ["std", "fast"])
def test_dumps_floatless_writes_what_dumps_writes_for_a_body_without_floats(
        codec: str, request: pytest.FixtureRequest) -> None:
    if codec == "fast":
        request.getfixturevalue("fast")
    page = {"items": [{"id": "a", "n": 3, "ok": True, "error": None, "tags": ["x", "é"],
                       "big": 2**70}], "next_cursor": None, "total": 1}
    assert wire.dumps_floatless(page) == wire.dumps(page)
    assert wire.dumps_floatless({"at": uuid.UUID(int=1)}) == wire.dumps({"at": uuid.UUID(int=1)})
