"""Pausing Python's cyclic garbage collector around bulk work that only builds live objects.

Discovery and resolution of thousands of plugins allocate objects that all stay alive
(manifests, records, graph nodes). Each allocation burst triggers the collector, which walks the
whole growing heap again: at 10,000 plugins that walk cost as much as the work itself, and made
the cost per plugin grow with the number of plugins. Nothing built there forms garbage cycles
worth collecting on the way; reference counting frees the temporaries as always.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off; it is back on afterwards if it was on
    before (so nested uses and a caller that turned it off itself are left as they were)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
