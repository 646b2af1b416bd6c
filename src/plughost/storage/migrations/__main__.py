"""``python -m plughost.storage.migrations revision -m MSG`` (developer tool)."""

from plughost.storage.migrations import _main

_main()
