"""The runtime contract's checks: what a loaded instance must implement for the capabilities
its runtime declares."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from plughost.core import contract
from plughost.core.contract import Capability, check_instance


@pytest.mark.parametrize("capability", sorted(contract._PROTOCOLS, key=str))
def test_a_protocols_members_are_the_ones_typing_checks(capability: Capability) -> None:
    protocol = contract._PROTOCOLS[capability]
    assert contract._members(protocol) == set(typing._get_protocol_attrs(protocol))  # type: ignore[attr-defined]


class _Runtime:
    name = "test"

    def __init__(self, *capabilities: Capability) -> None:
        self.capabilities = frozenset(capabilities)


def _runtime(*capabilities: Capability) -> Any:
    return _Runtime(*capabilities)


class _Whole:
    """Every member of PluginInstance and of EventDelivery, on the class. The check looks at
    which members there are, never calls them: they do nothing."""

    @property
    def plugin_id(self) -> str:
        return "p"

    async def start(self, context: Any) -> list[Any]:
        return []

    async def call(self, target: str, kwargs: Any = None, *, timeout: Any = None) -> Any:
        return None

    def local_callable(self, target: str) -> Any:
        return None

    async def health(self) -> Any:
        return None

    async def stop(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {}

    async def deliver_event(self, target: str, event: Any) -> None:
        return None


class _NoEvents(_Whole):
    deliver_event = None  # type: ignore[assignment]


def test_an_instance_is_checked_against_each_declared_capability() -> None:
    runtime = _runtime(Capability.CALL, Capability.HEALTH, Capability.EVENTS)
    for _ in range(2):  # the second time from what the first learnt of the class
        assert check_instance(runtime, _Whole()) == []
        assert check_instance(runtime, _NoEvents()) == ["events"]
    assert check_instance(_runtime(Capability.STATE), _Whole()) == ["state"]


def test_members_set_on_the_instance_count_as_isinstance_counts_them() -> None:
    class Partial:
        def __init__(self, with_events: bool) -> None:
            if with_events:
                self.deliver_event = _Whole().deliver_event

    runtime = _runtime(Capability.EVENTS)
    assert check_instance(runtime, Partial(True)) == []
    assert check_instance(runtime, Partial(False)) == ["events"]  # not learnt from the class
    assert check_instance(runtime, Partial(True)) == []
