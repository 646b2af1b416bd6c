"""The output model's rules that every resource shares (times, cursors)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plughost.errors import RequestInvalid
from plughost.services.resources import (
    after_key,
    before_id,
    decode_cursor,
    encode_cursor,
    iso,
    offset_of,
    require_limit,
)


def test_times_come_out_in_one_shape_and_a_time_already_in_it_is_kept() -> None:
    assert iso(datetime(2026, 12, 3, 17, 20, tzinfo=UTC)) == "2026-12-03T17:20:00Z"
    assert iso("2026-12-03T17:20:00Z") == "2026-12-03T17:20:00Z"
    assert iso("2026-12-03T17:20:00.120Z") == "2026-12-03T17:20:00.120Z"
    assert iso("2026-12-03T17:20:00.123456Z") == "2026-12-03T17:20:00.123Z"
    assert iso("2026-12-03T18:20:00+01:00") == "2026-12-03T17:20:00Z"
    east = datetime(2026, 12, 3, 19, 20, tzinfo=timezone(timedelta(hours=2)))
    assert iso(east) == "2026-12-03T17:20:00Z"
    assert iso(0) == "1970-01-01T00:00:00Z" and iso(None) is None and iso("") is None
    # What the database gives (aware, UTC): milliseconds kept, the rest cut, as for any time.
    assert iso(datetime(2026, 12, 3, 17, 20, 0, 123999, tzinfo=UTC)) == "2026-12-03T17:20:00.123Z"
    assert iso(datetime(2026, 12, 3, 17, 20, 0, 999, tzinfo=UTC)) == "2026-12-03T17:20:00.000Z"
    assert iso(datetime(2026, 12, 3, 17, 20, 0, 999, tzinfo=UTC)) == iso(
        "2026-12-03T19:20:00.000999+02:00")
    with pytest.raises(ValueError):
        iso("2026-12-03T17:20:00Zjunk")


@given(st.datetimes(timezones=st.just(UTC)) | st.datetimes(timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=d.microsecond % 1000)))
def test_a_time_as_sqlite_keeps_it_comes_out_as_its_datetime_does(moment: datetime) -> None:
    # Repository.summary_page(stored_times=True) hands the list page SQLite's own text; it
    # must give exactly what the datetime read from it gives (with or without milliseconds).
    from sqlalchemy.dialects import sqlite

    stored = sqlite.DATETIME().bind_processor(sqlite.dialect())(moment.replace(tzinfo=None))
    assert iso(stored) == iso(moment) == iso(moment.replace(tzinfo=None))


def test_a_stored_time_that_is_no_date_is_refused() -> None:
    with pytest.raises(ValueError):
        iso("2026-02-30 17:20:00.000000")
    with pytest.raises(ValueError):
        iso("2026-12-03 25:20:00.123456")


def test_a_cursor_stands_for_its_position_and_anything_else_is_refused() -> None:
    cursor = encode_cursor({"after": "scale-00099"})
    assert decode_cursor(cursor, keys=("after",)) == {"after": "scale-00099"}
    assert decode_cursor(None) is None
    for bad in ("not-a-cursor", encode_cursor({"other": 1}), "x" * 2000):
        with pytest.raises(RequestInvalid):
            decode_cursor(bad, keys=("after",))


def test_each_kind_of_position_reads_back_its_own_cursors_only() -> None:
    """Every list's cursor is one of three positions in the one format: after a key (lists by
    id), before a number (newest first) or an offset; a cursor of another kind, or of the
    right kind with a value of the wrong type, is refused."""
    assert after_key(encode_cursor({"after": "b"})) == "b"
    assert before_id(encode_cursor({"before": 7})) == 7
    assert offset_of(encode_cursor({"offset": 3})) == 3
    assert (after_key(None), before_id(None), offset_of(None)) == (None, None, 0)
    for bad in (encode_cursor({"after": 1}), encode_cursor({"after": None}),
                encode_cursor({"offset": 3})):
        with pytest.raises(RequestInvalid):
            after_key(bad)
    for bad in (encode_cursor({"offset": -1}), encode_cursor({"offset": True}),
                encode_cursor({"offset": "3"}), encode_cursor({"before": 3})):
        with pytest.raises(RequestInvalid):
            offset_of(bad)


def test_a_cursor_without_a_limit_is_refused_naming_the_field() -> None:
    require_limit(None, None)
    require_limit("c", 10)
    with pytest.raises(RequestInvalid) as refused:
        require_limit("c", None)
    assert refused.value.details == {"field": "cursor"} and "limit" in refused.value.message
