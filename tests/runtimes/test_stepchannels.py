"""The step protocol's answer rule, on its own (the runtimes' tests drive it through hosts)."""

from __future__ import annotations

import pytest

from plughost.errors import PluginError
from plughost.runtimes.stepchannels import answer_of


@pytest.mark.parametrize(("answer", "expected"), [
    (None, ([], False)),
    ({}, ([], False)),
    ({"send": [1, {"a": 2}]}, ([1, {"a": 2}], False)),
    ({"close": True}, ([], True)),
    ({"send": ["bye"], "close": True}, (["bye"], True)),
])
def test_answers_that_fit(answer: object, expected: tuple[list[object], bool]) -> None:
    assert answer_of(answer, "p:feed") == expected


@pytest.mark.parametrize("answer", [
    [1], "text", 3, {"send": "not a list"}, {"close": "yes"}, {"send": [], "extra": 1},
])
def test_any_other_answer_is_refused_naming_the_shape(answer: object) -> None:
    with pytest.raises(PluginError, match=r'p:feed answered .*null or \{"send"'):
        answer_of(answer, "p:feed")
