"""collector_paused: the cyclic collector is off inside, and left as it was found afterwards."""

from __future__ import annotations

import gc

import pytest

from plughost.core._gc import PROMOTE_AFTER, collector_paused


def test_off_inside_and_back_on_after_even_on_error() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested: the inner one does not turn it back on
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_caller_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def _young(objects: list[object]) -> int:
    ids = {id(o) for o in objects}
    return sum(id(o) in ids for gen in (0, 1) for o in gc.get_objects(generation=gen))


def test_many_objects_built_while_paused_go_to_the_oldest_generation() -> None:
    gc.collect()
    with collector_paused():
        kept = [[i] for i in range(PROMOTE_AFTER + 1000)]
    assert gc.isenabled()
    assert _young(kept) == 0  # no young collection will walk them
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(o) in oldest for o in kept[::997])


def test_a_few_objects_or_a_failed_block_stay_young() -> None:
    gc.collect()
    with collector_paused():
        few = [[i] for i in range(100)]
    assert _young(few) == len(few)
    with pytest.raises(RuntimeError), collector_paused():
        failed = [[i] for i in range(PROMOTE_AFTER + 1000)]
        raise RuntimeError("boom")
    assert _young(failed[::97]) == len(failed[::97])


def test_objects_the_application_froze_stay_frozen() -> None:
    gc.collect()
    frozen = [[i] for i in range(10)]
    gc.freeze()
    try:
        count = gc.get_freeze_count()
        with collector_paused():
            young = [[i] for i in range(PROMOTE_AFTER + 1000)]
        # Not unfrozen by the pause (that would empty it; a few frozen objects may have been
        # freed meanwhile, by reference counting, so the count need not be the same).
        assert gc.get_freeze_count() > count // 2
        assert _young(young[::97]) == len(young[::97])  # so nothing was promoted either
        assert frozen
    finally:
        gc.unfreeze()
