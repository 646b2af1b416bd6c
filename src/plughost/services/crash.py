"""Deliberate crash points, so tests can prove every step of install/update/uninstall recovers.

Setting ``PLUGHOST_CRASH_AT`` to a point's name (``install.after_blob``) makes the process exit
with status 99 right there, without unwinding: no ``finally`` blocks, no rollback, no cleanup —
what a power cut or ``kill -9`` would leave. The next start reconciles the database, the object
store and the cache (see :meth:`plughost.services.installer.Installer.reconcile`).

The variable is read at each point (cheap: one dict lookup), so a test can set it for one
subprocess only. Nothing happens when it is unset, which is always the case in production.
"""

from __future__ import annotations

import os

__all__ = ["CRASH_ENV", "CRASH_POINTS", "crash_point"]

CRASH_ENV = "PLUGHOST_CRASH_AT"

#: Every crash point, in the order each operation reaches them.
CRASH_POINTS: tuple[str, ...] = (
    "install.after_stage",
    "install.after_extract",
    "install.after_blob",
    "install.after_activate",
    "install.before_commit",
    "install.after_commit",
    "update.after_extract",
    "update.after_blob",
    "update.after_activate",
    "update.before_commit",
    "update.after_commit",
    "rollback.after_activate",
    "rollback.after_commit",
    "uninstall.after_deactivate",
    "uninstall.before_commit",
    "uninstall.after_commit",
    "uninstall.after_blobs",
)


def crash_point(name: str) -> None:
    """Exit the process immediately (status 99) when ``$PLUGHOST_CRASH_AT`` names ``name``."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(99)
