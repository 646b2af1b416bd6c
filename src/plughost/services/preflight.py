"""What install would refuse, said before installing: ``validate-manifest``'s whole answer.

:func:`check_manifest` runs the same checks an install runs on a manifest, through the same
code: the manifest itself (:func:`~plughost.core.manifest.manifest_from_dict`), its permission
scopes (:func:`~plughost.services.stores.declared_scopes`), the host version and dependencies
against what is installed (:meth:`Installer.check_resolves`) and its runtime being available in
this host. A manifest it calls valid installs, unless the package's files are wrong (an
``entry`` file missing) or another install got there first. A plugin already installed under
the same id is not a problem of the manifest: it is reported in ``warnings`` (install refuses
it; ``update`` takes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plughost.core.manifest import Manifest, manifest_from_dict
from plughost.errors import ManifestError, PlughostError, Problem

__all__ = ["ManifestCheck", "check_manifest"]

#: Where a refusal of each kind points in the manifest.
_PATHS = {"resolve": "host", "scope": "permissions", "runtime": "runtime"}


@dataclass(frozen=True, slots=True)
class ManifestCheck:
    """``valid`` when nothing would be refused; every ``problem``; the normalised manifest."""

    problems: tuple[Problem, ...]
    manifest: Manifest | None
    warnings: tuple[str, ...] = field(default=())

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "problems": [p.to_dict() for p in self.problems],
                "manifest": None if self.manifest is None else self.manifest.to_dict(),
                "warnings": list(self.warnings)}


def check_manifest(data: Mapping[str, Any], *, installer: Any, host: Any) -> ManifestCheck:
    """Check ``data`` as install would (blocking: reads the installed plugins)."""
    from plughost.services.stores import declared_scopes

    try:
        manifest = manifest_from_dict(data, source="request")
    except ManifestError as exc:
        return ManifestCheck(tuple(exc.problems), None)
    problems: list[Problem] = []

    def refused(kind: str, exc: PlughostError) -> None:
        problems.append(Problem(_path(kind, exc), exc.code, exc.message))

    try:
        declared_scopes(manifest.id, manifest.permissions)
    except PlughostError as exc:
        refused("scope", exc)
    # What install reads (by id: what the manifest touches, not every installed plugin).
    around = installer.manifests_around(manifest)
    try:
        installer.check_resolves(manifest, {k: v for k, v in around.items()
                                            if k != manifest.id})
    except PlughostError as exc:
        refused("resolve", exc)
    try:
        host.runtime_for(manifest)
    except PlughostError as exc:
        refused("runtime", exc)
    warnings = []
    if installer.repo.get_plugin(manifest.id) is not None:
        warnings.append(f"{manifest.id} is already installed: install would refuse it "
                        f"(install.exists); update it instead (PUT /api/v1/plugins/"
                        f"{manifest.id}, `plughost update`)")
    return ManifestCheck(tuple(problems), manifest, tuple(warnings))


def _path(kind: str, exc: PlughostError) -> str:
    if kind == "resolve" and "depend" in exc.message and "plughost" not in exc.message:
        return "dependencies"
    return _PATHS[kind]
