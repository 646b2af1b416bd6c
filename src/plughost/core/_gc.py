"""Pausing Python's cyclic garbage collector around bulk work that only builds live objects.

Discovery and resolution of thousands of plugins allocate objects that all stay alive
(manifests, records, graph nodes). Each allocation burst triggers the collector, which walks the
whole growing heap again: at 10,000 plugins that walk cost as much as the work itself, and made
the cost per plugin grow with the number of plugins. Nothing built there forms garbage cycles
worth collecting on the way; reference counting frees the temporaries as always.
"""

from __future__ import annotations

import gc
from types import TracebackType

__all__ = ["collector_paused"]


class collector_paused:  # lowercase: used as a function, ``with collector_paused():``
    """Run the block with the cyclic collector off; it is back on afterwards if it was on
    before (so nested uses and a caller that turned it off itself are left as they were).

    A class rather than a ``@contextmanager`` generator: it wraps every discovery and
    resolution, and a generator-based manager costs several times as much to enter and leave.
    """

    __slots__ = ("_was_on",)

    def __enter__(self) -> None:
        self._was_on = gc.isenabled()
        if self._was_on:
            gc.disable()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._was_on:
            gc.enable()
