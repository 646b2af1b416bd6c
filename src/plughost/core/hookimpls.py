"""Extension point implementations: the record, signature checks, call adapters, ordering.

An implementation holds either a direct callable (the fast path for in-process plugins) or a
*remote* proxy awaiting :meth:`PluginInstance.call`. Its parameters are checked against the spec
at registration; adapters let the dispatch loops call every implementation the same way; and
:func:`order_impls` turns bands, priorities and ``before``/``after`` constraints into one
deterministic order (or a :class:`~plughost.errors.HookOrderCycle` naming the loop).
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import operator
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from plughost.core.hookcall import ASYNC, ASYNC_GEN, REMOTE, SYNC, SYNC_GEN
from plughost.core.hookspecs import HookSpec
from plughost.errors import HookOrderCycle, HookSignatureError

__all__ = ["HookImpl", "RemoteCall", "order_impls"]

RemoteCall = Callable[[Mapping[str, Any], float | None], Awaitable[Any]]
"""An implementation in another runtime: ``(kwargs, timeout) -> awaitable result``."""


# --------------------------------------------------------------------------- implementations


_seq = itertools.count()


@dataclass(slots=True, eq=False)
class HookImpl:
    """One implementation of one extension point, from one plugin (or the host).

    Holds either a direct callable (``function``, the fast path for in-process plugins) or a
    ``remote`` proxy awaiting :meth:`PluginInstance.call`. Counters are updated in place.
    """

    hook: str
    plugin_id: str
    function: Callable[..., Any] | None = None
    remote: RemoteCall | None = None
    label: str = ""
    argnames: tuple[str, ...] | None = None
    """Parameters it accepts; ``None`` = everything (``**kwargs`` or remote)."""
    priority: float = 0
    tryfirst: bool = False
    trylast: bool = False
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    wrapper: bool = False
    timeout: float | None = None
    kind: int = SYNC
    seq: int = field(default_factory=lambda: next(_seq))
    failures: int = 0

    @property
    def is_async(self) -> bool:
        """True when it can only be awaited (async function, async wrapper, remote)."""
        return self.kind in (ASYNC, REMOTE, ASYNC_GEN)

    @property
    def is_remote(self) -> bool:
        return self.kind == REMOTE

    def describe(self) -> str:
        what = self.label or getattr(self.function, "__qualname__", None) or "implementation"
        return f"{what!s} of {self.hook!r} by plugin {self.plugin_id!r}"

    @property
    def band(self) -> int:
        return 0 if self.tryfirst else 2 if self.trylast else 1


def _classify(fn: Callable[..., Any], wrapper: bool, where: str) -> int:
    target = fn
    while hasattr(target, "func"):  # functools.partial
        target = target.func
    if not inspect.isfunction(target) and not inspect.ismethod(target):
        call = getattr(target, "__call__", None)  # noqa: B004 - callable objects
        if call is not None and (inspect.ismethod(call) or inspect.isfunction(call)):
            target = call
    if wrapper:
        if inspect.isgeneratorfunction(target):
            return SYNC_GEN
        if inspect.isasyncgenfunction(target):
            return ASYNC_GEN
        raise HookSignatureError(
            f"{where} is marked wrapper=True but is not a generator function; a wrapper does "
            "`result = yield` around the other implementations (or is an async generator)."
        )
    if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
        raise HookSignatureError(
            f"{where} is a generator function; mark it wrapper=True if it wraps the others, "
            "or return a value instead of yielding."
        )
    return ASYNC if inspect.iscoroutinefunction(target) else SYNC


def _impl_argnames(fn: Callable[..., Any], where: str) -> tuple[str, ...] | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise HookSignatureError(f"Cannot read the signature of {where}: {exc}") from None
    names: list[str] = []
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.POSITIONAL_ONLY and p.default is p.empty:
            raise HookSignatureError(
                f"{where}: parameter {p.name!r} is positional-only, but extension points are "
                "called with named arguments; make it a normal parameter."
            )
        if p.default is p.empty:
            names.append(p.name)
        else:
            names.append("?" + p.name)  # optional: passed only when the spec has it
    return tuple(names)


def _check_fits(impl: HookImpl, spec: HookSpec) -> tuple[str, ...] | None:
    """Check ``impl`` against ``spec``; return the names to pass (``None``: pass all)."""
    if impl.argnames is None:
        return None
    spec_params = set(spec.params)
    required = [n for n in impl.argnames if not n.startswith("?")]
    optional = [n[1:] for n in impl.argnames if n.startswith("?")]
    extra = [n for n in required if n not in spec_params]
    if extra:
        raise HookSignatureError(
            f"{impl.describe()} takes parameter(s) {', '.join(repr(n) for n in extra)} that the "
            f"spec does not provide; the spec provides: {', '.join(spec.params) or '(none)'}. "
            "Rename or remove them: an implementation takes any subset of the spec's parameters.",
            plugin_id=impl.plugin_id,
            details={"hook": spec.name, "unknown": extra, "spec": list(spec.params)},
        )
    return tuple(n for n in (*required, *optional) if n in spec_params)


def _adapter(fn: Callable[..., Any], names: tuple[str, ...] | None,
             spec: HookSpec) -> Callable[..., Any]:
    """The callable the dispatch loop calls with the full keyword set of the spec."""
    if names is None or set(names) == set(spec.params):
        return fn

    def select(**kwargs: Any) -> Any:
        return fn(**{n: kwargs[n] for n in names})

    return select


def _positional(impl: HookImpl, spec: HookSpec) -> Callable[..., Any]:
    """The callable the sync fast path calls with the spec's arguments *positionally*.

    When the implementation's leading positional parameters are exactly the ones it takes from
    the spec, it is called directly (in the spec's order) or through an index shuffle;
    otherwise through a small keyword adapter.
    """
    fn = impl.function
    assert fn is not None
    params = spec.params
    names = _check_fits(impl, spec)
    if names is not None:
        wanted = set(names)
        order: list[str] = []
        try:
            sig_params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            sig_params = []
        for p in sig_params:
            if p.name not in wanted:
                break  # a parameter we do not pass: later ones would land in the wrong slot
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                break
            order.append(p.name)
        if set(order) == wanted:
            index = tuple(params.index(n) for n in order)
            if index == tuple(range(len(params))):
                return fn
            if not index:
                return lambda *args: fn()
            if len(index) == 1:
                i = index[0]
                return lambda *args: fn(args[i])
            pick = operator.itemgetter(*index)
            return lambda *args: fn(*pick(args))
        return lambda *args: fn(**{n: a for n, a in zip(params, args, strict=True)
                                   if n in wanted})
    return lambda *args: fn(**dict(zip(params, args, strict=True)))


def _remote_adapter(remote: RemoteCall, names: tuple[str, ...] | None) -> RemoteCall:
    if names is None:
        return remote

    def select(kwargs: Mapping[str, Any], timeout: float | None) -> Awaitable[Any]:
        return remote({n: kwargs[n] for n in names}, timeout)

    return select


# ---------------------------------------------------------------------------------- ordering


def order_impls(impls: Sequence[HookImpl]) -> list[HookImpl]:
    """Order implementations deterministically; raise :class:`HookOrderCycle` on a loop.

    Base order: band (tryfirst, normal, trylast), then priority (higher first), then
    registration order. ``before``/``after`` constraints (plugin ids) are applied on top with a
    topological sort that, among the implementations free to go next, always picks the one that
    comes first in the base order — so constraints move things only as much as they must.
    """
    if len(impls) < 2:
        return list(impls)
    by_plugin: dict[str, list[int]] = {}
    for i, impl in enumerate(impls):
        by_plugin.setdefault(impl.plugin_id, []).append(i)
    succ: list[set[int]] = [set() for _ in impls]
    for i, impl in enumerate(impls):
        for other in impl.before:
            for j in by_plugin.get(other, ()):
                if j != i and impl.plugin_id != other:
                    succ[i].add(j)
        for other in impl.after:
            for j in by_plugin.get(other, ()):
                if j != i and impl.plugin_id != other:
                    succ[j].add(i)
    indeg = [0] * len(impls)
    for edges in succ:
        for j in edges:
            indeg[j] += 1
    key = [(impl.band, -impl.priority, impl.seq) for impl in impls]
    ready = [(key[i], i) for i in range(len(impls)) if indeg[i] == 0]
    heapq.heapify(ready)
    out: list[HookImpl] = []
    while ready:
        _, i = heapq.heappop(ready)
        out.append(impls[i])
        for j in succ[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(ready, (key[j], j))
    if len(out) == len(impls):
        return out
    cycle = _find_cycle([i for i in range(len(impls)) if indeg[i] > 0], succ)
    names: list[str] = []
    for i in cycle:  # several implementations of one plugin count as one node
        if not names or names[-1] != impls[i].plugin_id:
            names.append(impls[i].plugin_id)
    while len(names) > 1 and names[-1] == names[0]:
        names.pop()
    hook = impls[0].hook
    path = " → ".join([*names, names[0]])
    raise HookOrderCycle(
        f"The before/after constraints on extension point {hook!r} form a cycle: {path}. "
        "Remove one of these constraints so the plugins can be ordered.",
        details={"hook": hook, "cycle": [*names, names[0]]},
    )


def _find_cycle(nodes: list[int], succ: list[set[int]]) -> list[int]:
    remaining = set(nodes)
    for start in sorted(remaining):
        path: list[int] = []
        on_path: dict[int, int] = {}
        node = start
        while node not in on_path:
            on_path[node] = len(path)
            path.append(node)
            nxt = sorted(j for j in succ[node] if j in remaining)
            if not nxt:
                break
            node = nxt[0]
        else:
            return path[on_path[node]:]
    return sorted(remaining)  # unreachable for a real cycle; keeps the message useful
