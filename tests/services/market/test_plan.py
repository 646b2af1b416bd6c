"""Requests (``id``, ``id@version``, ``id@range``) and their refusals."""

from __future__ import annotations

import pytest

from plughost.errors import MarketError
from plughost.services.market.plan import parse_request


@pytest.mark.parametrize(("text", "shown"), [
    ("lyrics-lrc", "lyrics-lrc"), ("lyrics-lrc@0.3.1", "lyrics-lrc@0.3.1"),
    ("lyrics-lrc@^0.3", "lyrics-lrc@^0.3"), (" a@>=1.0 <2 ", "a@>=1.0 <2"),
])
def test_requests_parse(text, shown):
    assert str(parse_request(text)) == shown


@pytest.mark.parametrize("text", ["", "Bad", "a@", "a@not a range!", "../x", "a/b", "a" * 70])
def test_bad_requests_say_how_to_write_one(text):
    with pytest.raises(MarketError) as info:
        parse_request(text)
    assert info.value.code == "market.invalid"
