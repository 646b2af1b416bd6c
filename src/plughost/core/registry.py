"""The in-memory index of plugins the host knows: id → record, plus secondary indexes.

Indexes: by ``type`` (``notify``, ``music-source``), by extension point provided, by capability
(``command:<id>``, ``event:<topic>``, ``channel:<name>``, ``extension:<name>``), by tag, by
dependency and by source. A record is put in them by the first query of any of them after
:meth:`Registry.add` (a host that discovers and resolves only, to list or check, never asks:
registering costs the record alone; :meth:`Registry.catch_up` indexes them at once, for a
service at its start), and taken out by :meth:`Registry.remove`, so queries never scan
manifests.
The plugins that are awake (not in one of the :data:`ASLEEP` states) are indexed too, and how
many plugins are in each state is counted, both kept in step by :meth:`Registry.note_state`
(the host calls it on every state change): what runs, and how many are where, are found
without looking at every plugin that does not run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.core.lifecycle import State
from plughost.errors import OperationRefused, PluginNotFound

if TYPE_CHECKING:
    from plughost.core.manifest import Manifest

__all__ = ["ASLEEP", "PluginRecord", "Registry", "capabilities_of"]

#: States in which a plugin holds no instance and runs nothing: not loaded since it was
#: registered or since it was unloaded, disabled, or gone.
ASLEEP = frozenset({State.DISCOVERED, State.INSTALLED, State.RESOLVED, State.DISABLED,
                    State.UNINSTALLED})
_NONE_IN_ANY_STATE: dict[State, int] = dict.fromkeys(State, 0)  # copied: iterating an enum is slow


@dataclass(slots=True, eq=False)
class PluginRecord:
    """Everything the host holds about one plugin. Owned by the host; plugins never see it."""

    manifest: Manifest
    root: Path | None
    """The plugin folder (``None`` for plugins that come from an entry point only)."""
    source: str = "directory"
    """Where it was found: ``directory``, ``entry-point`` or ``installed``."""
    state: State = State.DISCOVERED
    instance: Any = None
    """The runtime's PluginInstance while loaded; ``None`` otherwise."""
    context: Any = None
    """The PluginContext while active."""
    error: BaseException | None = None
    """The last failure, when ``state`` is ``failed`` (or a lazy activation failed)."""
    phase: str | None = None
    """The phase of the last failure: discover, manifest, resolve, import, activate, ..."""
    hint: str | None = None
    """A suggested fix for the last failure."""
    warnings: list[str] = field(default_factory=list)
    """Non-fatal notes: limits this runtime cannot enforce, skipped optional dependencies..."""
    since: float = field(default_factory=time.time)
    """When the plugin entered its current state."""
    exports: tuple[Any, ...] = ()
    """What the active plugin provides (runtime Exports)."""

    @property
    def id(self) -> str:
        return self.manifest.id

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (CLI ``--json``, HTTP API)."""
        m = self.manifest
        return {
            "id": m.id,
            "name": m.name,
            "version": str(m.version),
            "type": m.type,
            "runtime": m.runtime,
            "description": m.description,
            "state": self.state.value,
            "source": self.source,
            "path": str(self.root) if self.root else None,
            "activation": list(m.activation),
            "dependencies": {k: str(v) for k, v in m.dependencies.items()},
            "error": (
                {
                    "code": getattr(self.error, "code", type(self.error).__name__),
                    "message": getattr(self.error, "message", str(self.error)),
                    "phase": self.phase,
                    "hint": self.hint,
                }
                if self.error is not None
                else None
            ),
            "warnings": list(self.warnings),
            "since": self.since,
        }


def capabilities_of(manifest: Manifest) -> set[str]:
    """The capability keys a manifest advertises (used by the capability index)."""
    p = manifest.provides
    caps = {f"extension:{x}" for x in p.extension_points}
    caps.update(f"command:{x}" for x in p.commands)
    caps.update(f"event:{x}" for x in p.events)
    caps.update(f"channel:{x}" for x in p.channels)
    return caps


class Registry:
    """id → :class:`PluginRecord` with secondary indexes kept in step."""

    __slots__ = ("_awake", "_by_cap", "_by_ext", "_by_source", "_by_tag", "_by_type",
                 "_entries", "_needed_by", "_records", "_states", "_unindexed", "_used_by")

    def __init__(self) -> None:
        self._records: dict[str, PluginRecord] = {}
        self._by_type: defaultdict[str, set[str]] = defaultdict(set)
        self._by_ext: defaultdict[str, set[str]] = defaultdict(set)
        self._by_cap: defaultdict[str, set[str]] = defaultdict(set)
        self._by_tag: defaultdict[str, set[str]] = defaultdict(set)
        #: dependency id -> ids of the registered plugins that require it (not optionally).
        self._needed_by: defaultdict[str, set[str]] = defaultdict(set)
        #: dependency id -> ids of the registered plugins that use it optionally.
        self._used_by: defaultdict[str, set[str]] = defaultdict(set)
        self._by_source: defaultdict[str, set[str]] = defaultdict(set)
        #: Ids of the records not in an :data:`ASLEEP` state (an ordered set).
        self._awake: dict[str, None] = {}
        #: How many records are in each state.
        self._states: dict[State, int] = dict(_NONE_IN_ANY_STATE)
        #: id -> the (index, key) entries :meth:`_index` made for it: what :meth:`remove`
        #: undoes, whatever the record's manifest says by then (a replacement swaps it first).
        self._entries: dict[str, list[tuple[defaultdict[str, set[str]], str]]] = {}
        #: id -> the record added and not yet in the indexes above (see :meth:`catch_up`).
        self._unindexed: dict[str, PluginRecord] = {}

    def add(self, record: PluginRecord, *, replace: bool = False) -> None:
        """Register ``record`` (indexed by the next query); refuse a second record with the same
        id unless ``replace``."""
        pid = record.id
        if pid in self._records:
            if not replace:
                existing = self._records[pid]
                raise OperationRefused(
                    f"Two plugins have the id {pid!r}: {existing.root or existing.source} and "
                    f"{record.root or record.source}. Plugin ids must be unique; remove or "
                    "rename one of them.",
                    plugin_id=pid,
                    code="registry.duplicate",
                )
            self.remove(pid)
        self._records[pid] = record
        self._unindexed[pid] = record
        self._states[record.state] += 1
        self._index_awake(record)

    def catch_up(self) -> None:
        """Put the records added since the last query in the indexes now: every method that
        reads one of them calls this first; a service that registers every installed plugin
        calls it once they are, so that indexing them is part of its start, not of its first
        operation."""
        if self._unindexed:
            for pid, record in self._unindexed.items():
                self._index(pid, record)
            self._unindexed.clear()

    def _index(self, pid: str, record: PluginRecord) -> None:
        m = record.manifest
        entries: list[tuple[defaultdict[str, set[str]], str]] = []
        if m.type:
            entries.append((self._by_type, m.type))
        p = m.provides
        if p.extension_points or p.commands or p.events or p.channels:
            entries += [(self._by_ext, ext) for ext in p.extension_points]
            entries += [(self._by_cap, cap) for cap in capabilities_of(m)]
        entries += [(self._by_tag, tag) for tag in m.tags]
        entries += [(self._needed_by, dep) for dep in m.dependencies]
        if m.optional_dependencies:
            entries += [(self._used_by, dep) for dep in m.optional_dependencies]
        entries.append((self._by_source, record.source))
        for index, key in entries:
            index[key].add(pid)
        self._entries[pid] = entries

    def remove(self, plugin_id: str) -> PluginRecord:
        """Drop a record and its index entries (those :meth:`add` made: costs the plugin's
        own entries, not the registry's); returns it."""
        record = self.get(plugin_id)
        del self._records[plugin_id]
        self._awake.pop(plugin_id, None)
        self._states[record.state] -= 1
        if self._unindexed.pop(plugin_id, None) is not None:
            return record  # not in the indexes yet
        for index, key in self._entries.pop(plugin_id, ()):
            ids = index.get(key)
            if ids is not None:
                ids.discard(plugin_id)
                if not ids:
                    del index[key]
        return record

    def get(self, plugin_id: str) -> PluginRecord:
        try:
            return self._records[plugin_id]
        except KeyError:
            known = ", ".join(sorted(self._records)[:10]) or "none"
            raise PluginNotFound(
                f"No plugin with id {plugin_id!r} is known to this host (known: {known}). "
                "Check the id with `plughost list`.",
                plugin_id=plugin_id,
            ) from None

    def records(self, plugin_ids: Sequence[str]) -> list[PluginRecord]:
        """The records of ``plugin_ids``, in that order (:meth:`get` of each, which says which
        one is not known)."""
        try:
            return [self._records[pid] for pid in plugin_ids]
        except KeyError:
            return [self.get(pid) for pid in plugin_ids]

    def find(self, plugin_id: str) -> PluginRecord | None:
        return self._records.get(plugin_id)

    def __contains__(self, plugin_id: object) -> bool:
        return plugin_id in self._records

    def __iter__(self) -> Iterator[PluginRecord]:
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def not_from(self, source: str) -> list[PluginRecord]:
        """The records whose ``source`` is not ``source`` (e.g. every development folder
        beside ``installed`` plugins), from the index: costs what it returns."""
        self.catch_up()
        return [self._records[pid] for src, ids in self._by_source.items() if src != source
                for pid in sorted(ids)]

    def dependents(self, plugin_id: str, *,
                   considered: Callable[[PluginRecord], bool] | None = None) -> list[str]:
        """Ids of the registered plugins that require ``plugin_id``, directly or transitively,
        sorted (what :func:`~plughost.core.depgraph.dependents_of` finds, from the index kept
        here: costs the dependents found, not the plugins registered). With ``considered``,
        only the plugins it accepts count, and the chain runs through them only."""
        found: set[str] = set()
        frontier = [plugin_id]
        self.catch_up()
        while frontier:
            for pid in self._needed_by.get(frontier.pop(), ()):
                if pid in found or pid == plugin_id:
                    continue
                if considered is not None and not considered(self._records[pid]):
                    continue
                found.add(pid)
                frontier.append(pid)
        return sorted(found)

    def users(self, plugin_id: str) -> set[str]:
        """Ids of the registered plugins that name ``plugin_id`` among their dependencies,
        required or optional (directly; from the indexes: costs what it returns)."""
        self.catch_up()
        return self._needed_by.get(plugin_id, set()) | self._used_by.get(plugin_id, set())

    def ids(self) -> list[str]:
        return sorted(self._records)

    def note_state(self, record: PluginRecord, old: State) -> None:
        """Re-index ``record`` after its state changed from ``old`` (see :meth:`awake` and
        :meth:`state_counts`); a record that is not the registered one for its id is
        ignored."""
        if self._records.get(record.id) is not record or record.state is old:
            return
        self._states[old] -= 1
        self._states[record.state] += 1
        self._index_awake(record)

    def move_all(self, records: list[PluginRecord], old: State, new: State,
                 since: float) -> None:
        """Move ``records`` (registered, each in ``old``) to ``new`` as of ``since``, with
        the counts changed once: for a host moving thousands of records that nobody is to
        hear about (it checks the move is allowed)."""
        for record in records:
            record.state = new
            record.since = since
        self._states[old] -= len(records)
        self._states[new] += len(records)
        if (old in ASLEEP) != (new in ASLEEP):
            for record in records:
                self._index_awake(record)

    def _index_awake(self, record: PluginRecord) -> None:
        if record.state in ASLEEP:
            self._awake.pop(record.id, None)
        else:
            self._awake[record.id] = None

    def state_counts(self) -> dict[State, int]:
        """How many registered plugins are in each state (every state, zeros included)."""
        return dict(self._states)

    def awake(self) -> list[PluginRecord]:
        """The records not in an :data:`ASLEEP` state — loaded, active, deactivated, failed —
        in the order they woke; costs what it returns, not what is registered."""
        return [self._records[pid] for pid in self._awake]

    def by_type(self, type_: str) -> list[PluginRecord]:
        self.catch_up()
        return self._collect(self._by_type.get(type_, ()))

    def by_extension_point(self, name: str) -> list[PluginRecord]:
        self.catch_up()
        return self._collect(self._by_ext.get(name, ()))

    def by_capability(self, capability: str) -> list[PluginRecord]:
        """Plugins advertising ``capability`` (``command:x``, ``event:y``, ``extension:z``)."""
        self.catch_up()
        return self._collect(self._by_cap.get(capability, ()))

    def by_tag(self, tag: str) -> list[PluginRecord]:
        self.catch_up()
        return self._collect(self._by_tag.get(tag, ()))

    def query(
        self,
        *,
        type: str | None = None,
        state: State | str | None = None,
        extension_point: str | None = None,
        capability: str | None = None,
        tag: str | None = None,
        runtime: str | None = None,
    ) -> list[PluginRecord]:
        """Records matching every given filter, sorted by id."""
        self.catch_up()
        ids: set[str] | None = None
        for index, key in (
            (self._by_type, type),
            (self._by_ext, extension_point),
            (self._by_cap, capability),
            (self._by_tag, tag),
        ):
            if key is None:
                continue
            found = index.get(key, set())
            ids = set(found) if ids is None else ids & found
        records: Iterable[PluginRecord] = (
            self._records.values() if ids is None else (self._records[i] for i in ids)
        )
        if state is not None:
            wanted = State(state)
            records = (r for r in records if r.state is wanted)
        if runtime is not None:
            records = (r for r in records if r.manifest.runtime == runtime)
        return sorted(records, key=lambda r: r.id)

    def _collect(self, ids: Iterable[str]) -> list[PluginRecord]:
        return [self._records[i] for i in sorted(ids)]
