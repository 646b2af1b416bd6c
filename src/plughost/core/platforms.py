"""Platforms: which machine a plugin (or one of its alternative entries) runs on.

A platform is ``<os>`` or ``<os>-<arch>``: ``os`` is a ``sys.platform`` prefix (``linux``,
``darwin``, ``win32``, ``freebsd``), ``arch`` a machine name (``x86_64``, ``arm64``; ``amd64``
and ``aarch64`` are the same ones). A manifest's ``platforms`` list says where its ``runtime`` /
``entry`` runs (empty: everywhere); its ``alternatives`` give other ``{runtime, entry,
platforms}`` to try in order — a native library on Linux and a WebAssembly build elsewhere. The
host runs the first that fits this machine and whose runtime it has, and says which.
"""

from __future__ import annotations

import platform as _platform
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from plughost.core.manifest import Manifest

__all__ = [
    "PLATFORM_RE",
    "Alternative",
    "Choice",
    "current",
    "fits",
    "normalise_arch",
    "select",
]

PLATFORM_RE: Final = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9_]+)?$")
"""What one ``platforms`` entry looks like."""

_ARCH_ALIASES: Final = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64",
                        "i686": "x86", "i386": "x86"}


def normalise_arch(machine: str) -> str:
    machine = machine.lower()
    return _ARCH_ALIASES.get(machine, machine)


def current() -> str:
    """This machine, as ``<sys.platform>-<arch>`` (``linux-x86_64``)."""
    return f"{sys.platform}-{normalise_arch(_platform.machine())}"


def fits(platforms: Sequence[str], machine: str | None = None) -> bool:
    """Whether ``platforms`` (empty: all) includes ``machine`` (default: this one)."""
    if not platforms:
        return True
    system, _, arch = (machine or current()).partition("-")
    for entry in platforms:
        want_os, _, want_arch = entry.partition("-")
        if system.startswith(want_os) and (not want_arch or normalise_arch(want_arch) == arch):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Alternative:
    """One way to run a plugin: a runtime, its entry, the platforms it is for."""

    runtime: str
    entry: str
    platforms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runtime": self.runtime, "entry": self.entry}
        if self.platforms:
            out["platforms"] = list(self.platforms)
        return out


@dataclass(frozen=True, slots=True)
class Choice:
    """The way :func:`select` picked (``index`` 0 is the manifest's own runtime/entry)."""

    manifest: Manifest
    index: int
    of: int
    skipped: tuple[str, ...]

    def describe(self) -> str:
        m = self.manifest
        which = "its main entry" if self.index == 0 else f"alternative {self.index}"
        return f"runs {which}: runtime {m.runtime!r}, entry {m.entry!r} on {current()}"


def candidates(manifest: Manifest) -> list[Alternative]:
    """The manifest's own runtime/entry first, then its alternatives, in order."""
    own = Alternative(manifest.runtime, manifest.entry, tuple(manifest.platforms))
    return [own, *manifest.alternatives]


def select(manifest: Manifest, unavailable: Callable[[str], str | None],
           machine: str | None = None) -> Choice | list[str]:
    """The first way to run ``manifest`` that fits ``machine`` and whose runtime is available
    (``unavailable(runtime)`` says why not, or ``None``); otherwise every reason, in order."""
    ways = candidates(manifest)
    reasons: list[str] = []
    for index, way in enumerate(ways):
        label = "the main entry" if index == 0 else f"alternative {index}"
        if not fits(way.platforms, machine):
            reasons.append(f"{label} ({way.runtime} {way.entry!r}) is for "
                           f"{', '.join(way.platforms)}, not {machine or current()}")
            continue
        why = unavailable(way.runtime)
        if why is not None:
            reasons.append(f"{label} ({way.runtime} {way.entry!r}): {why}")
            continue
        chosen = manifest if index == 0 else replace(
            manifest, runtime=way.runtime, entry=way.entry, platforms=way.platforms)
        return Choice(chosen, index, len(ways), tuple(reasons))
    return reasons
