"""Pausing Python's cyclic garbage collector around bulk work that only builds live objects.

Discovery and resolution of thousands of plugins allocate objects that all stay alive
(manifests, records, graph nodes). Each allocation burst triggers the collector, which walks the
whole growing heap again: at 10,000 plugins that walk cost as much as the work itself, and made
the cost per plugin grow with the number of plugins. Nothing built there forms garbage cycles
worth collecting on the way; reference counting frees the temporaries as always.

Paused, the collector does not walk them while they are built; but they are still young when it
is back on, and its next young collections would walk each of them twice (200,000 objects at
10,000 plugins: a tenth of a cached discovery) only to find them alive. So a pause that leaves
many objects behind hands them straight to the oldest generation, which a full collection alone
walks, as a collection finding them alive would have done.
"""

from __future__ import annotations

import gc
from types import TracebackType
from typing import Final

__all__ = ["collector_paused"]

#: Objects left behind by a pause past which they are handed to the oldest generation: about
#: ten young collections' worth (a host of a few plugins never gets there).
PROMOTE_AFTER: Final = 10_000


class collector_paused:  # lowercase: used as a function, ``with collector_paused():``
    """Run the block with the cyclic collector off; it is back on afterwards if it was on
    before (so nested uses and a caller that turned it off itself are left as they were).

    When the block ends normally with more than :data:`PROMOTE_AFTER` new objects in the
    youngest generation, every object in the young generations moves to the oldest one
    (``gc.freeze()`` then ``gc.unfreeze()``, which moves lists, not objects). Objects of the
    application's that were young then move too: a garbage cycle among them is collected by
    the next full collection rather than a young one. Not done while the application keeps
    objects frozen itself (``gc.get_freeze_count()``): unfreezing would undo that.

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
            if (exc_type is None and gc.get_count()[0] > PROMOTE_AFTER
                    and not gc.get_freeze_count()):
                gc.freeze()
                gc.unfreeze()
            gc.enable()
