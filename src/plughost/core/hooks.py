"""Extension points: specs, implementations, declarative ordering, and calls.

A host declares an *extension point* ("chat.before_send") with a spec — a function (or a
``typing.Protocol`` method) whose signature is the contract, plus a result policy::

    @hookspec(policy="pipeline")
    def before_send(message: str, user: str) -> str: ...

    hooks = HookRegistry()
    hooks.add_spec(before_send, name="chat.before_send")

Plugins register implementations; each is checked against the spec at registration (its
parameters must be a subset of the spec's, pluggy's rule) and ordered declaratively: ``tryfirst``
/ normal / ``trylast`` bands, numeric ``priority`` (higher first) inside a band, registration
order for ties, and ``before`` / ``after`` constraints naming other plugin ids on top (a cycle
among those is refused at registration, naming the cycle). The ordered list is cached per
extension point and rebuilt only when implementations change, so a call is a plain loop::

    hooks.call("chat.before_send", message="hi", user="ann")          # sync
    await hooks.acall("chat.before_send", message="hi", user="ann")   # async

Result policies: ``all`` (a list of the non-``None`` results), ``first`` (the first non-``None``
result; the rest are not called), ``pipeline`` (each implementation receives the previous result
in the piped argument; ``None`` leaves the value unchanged). Wrapper implementations run around
the others. Error policies and timeouts are in :class:`~plughost.core.hookcall.CallOptions`.

Implementations living in another runtime are registered as *remote*: an async proxy to
:meth:`PluginInstance.call <plughost.runtimes.base.PluginInstance.call>`. They can only be awaited,
so a sync ``call`` of an extension point that has one raises
:class:`~plughost.errors.HookCallError` telling the caller to use ``acall``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace as _replace
from typing import Any

from plughost.core.hookcall import (
    REMOTE,
    SAMPLE,
    SYNC,
    CallOptions,
    ErrorPolicy,
    Plan,
    _ainvoke_untimed,
    amulticall,
    multicall,
)
from plughost.core.hookimpls import (
    HookImpl,
    RemoteCall,
    _adapter,
    _check_fits,
    _classify,
    _impl_argnames,
    _positional,
    _remote_adapter,
    order_impls,
)
from plughost.core.hookspecs import (
    ERROR_POLICIES,
    HookSpec,
    Policy,
    _specs_from_protocol,
    hookspec,
)
from plughost.core.monitoring import DispatchCounters, Monitor, MonitorSet
from plughost.core.names import impl_options
from plughost.core.tasks import OwnerTasks
from plughost.errors import (
    HookCallError,
    HookNotFound,
    HookSignatureError,
    HookSpecError,
    InvalidExport,
)

__all__ = [
    "BoundHook",
    "CallOptions",
    "HookCaller",
    "HookImpl",
    "HookRegistry",
    "HookSpec",
    "Policy",
    "RemoteCall",
    "hookspec",
    "order_impls",
]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ caller


class HookCaller:
    """One extension point: its spec, its implementations and the cached call plan."""

    __slots__ = ("_defaults", "_history", "_impls", "_plan", "_registry", "name", "spec")

    def __init__(self, registry: HookRegistry, name: str) -> None:
        self._registry = registry
        self.name = name
        self.spec: HookSpec | None = None
        self._impls: list[HookImpl] = []
        self._plan: Plan | None = None
        self._defaults = CallOptions()
        self._history: list[tuple[dict[str, Any], Callable[[Any], None] | None]] = []

    def __repr__(self) -> str:
        return f"<HookCaller {self.name!r} impls={len(self._impls)}>"

    def __len__(self) -> int:
        return len(self._impls)

    @property
    def spec_timeout(self) -> float | None:
        return self.spec.timeout if self.spec is not None else None

    def implementations(self) -> tuple[HookImpl, ...]:
        """Wrappers (outermost first), then the others, in call order."""
        plan = self._plan or self._build()
        return (*plan.wrappers, *plan.impls)

    # -- plan -------------------------------------------------------------------------------

    def _order(self, impls: Sequence[HookImpl]) -> tuple[list[HookImpl], list[HookImpl]]:
        wrappers = order_impls([i for i in impls if i.wrapper])
        others = order_impls([i for i in impls if not i.wrapper])
        return wrappers, others

    def _build(self) -> Plan:
        spec = self.spec
        if spec is None:
            raise HookNotFound(
                f"Extension point {self.name!r} has implementations "
                f"({', '.join(sorted({i.plugin_id for i in self._impls}))}) but no spec; the "
                "host must declare it with HookRegistry.add_spec before it can be called.",
                details={"hook": self.name},
            )
        wrappers, others = self._order(self._impls)
        sync = all(i.kind == SYNC for i in others)
        plan = Plan(
            policy=spec.policy,
            pipe=spec.pipe,
            params=spec.params,
            impls=tuple(others),
            funcs=tuple(self._func(i, spec) for i in others),
            posfuncs=tuple(_positional(i, spec) for i in others) if sync else None,
            wrappers=tuple(wrappers),
            wfuncs=tuple(self._func(i, spec) for i in wrappers),
            historic=spec.historic,
            counters=self._registry.counters,
        )
        if self._registry._exec is multicall and self._defaults.errors == "raise":
            # Inlining the default dispatch: it would call plan.fast and nothing else.
            plan.direct = plan.fast
            if plan.fast is not None and spec.policy == "all":
                plan.inline_all = plan.posfuncs
        self._plan = plan
        return plan

    @staticmethod
    def _func(impl: HookImpl, spec: HookSpec) -> Callable[..., Any]:
        names = _check_fits(impl, spec)
        if impl.kind == REMOTE:
            assert impl.remote is not None
            return _remote_adapter(impl.remote, names)
        assert impl.function is not None
        return _adapter(impl.function, names, spec)

    def _invalidate(self) -> None:
        plan = self._plan
        if plan is not None:
            plan.flush()  # its counts belong to the implementations it ran
        self._plan = None

    def _complete(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec
        assert spec is not None
        unknown = [k for k in kwargs if k not in spec.params]
        missing = [p for p in spec.params if p not in kwargs and p not in spec.defaults]
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(repr(m) for m in missing)}")
            if unknown:
                parts.append(f"unknown {', '.join(repr(u) for u in unknown)}")
            raise HookCallError(
                f"Bad arguments for extension point {self.name!r}: {'; '.join(parts)}. "
                f"It takes: {', '.join(spec.params) or '(no arguments)'}.",
                details={"hook": self.name, "missing": missing, "unknown": unknown},
            )
        return {**{p: spec.defaults[p] for p in spec.params if p not in kwargs}, **kwargs}

    # -- calls ------------------------------------------------------------------------------

    def __call__(self, **kwargs: Any) -> Any:
        """Call the implementations synchronously with the spec's policies."""
        plan = self._plan
        if plan is None:
            plan = self._build()
        if kwargs.keys() != plan.argset:
            kwargs = self._complete(kwargs)
        funcs = plan.inline_all
        if funcs is not None:
            # The default dispatch of an ``all`` call (hookcall's run_all), inlined: the
            # hottest path in the library is this plain loop over a cached tuple.
            # Counting is one increment for the whole call (see Plan.flush); one call in
            # SAMPLE takes Plan.timed instead, which times each implementation.
            calls = plan.calls
            if not calls % SAMPLE:
                return plan.timed(kwargs)
            args = plan.args_of(kwargs)
            results = []
            f = None
            try:
                for f in funcs:
                    r = f(*args)
                    if r is not None:
                        results.append(r)
            except Exception as exc:
                plan.failed(exc, f)
                raise
            plan.calls = calls + 1
            return results
        direct = plan.direct
        if direct is not None:
            return direct(kwargs)
        return self._registry._exec(self, plan, kwargs, self._defaults)

    async def acall(self, **kwargs: Any) -> Any:
        """Call the implementations, awaiting async and remote ones."""
        return await self._acall(kwargs, self._defaults)

    async def _acall(self, kwargs: dict[str, Any], opts: CallOptions) -> Any:
        registry = self._registry
        if registry._lazy is not None and self.name not in registry._woken:
            await registry._wake(self.name)
        plan = self._plan or self._build()
        if kwargs.keys() != plan.argset:
            kwargs = self._complete(kwargs)
        return await self._registry._aexec(self, plan, kwargs, opts)

    def _call(self, kwargs: dict[str, Any], opts: CallOptions) -> Any:
        plan = self._plan or self._build()
        if kwargs.keys() != plan.argset:
            kwargs = self._complete(kwargs)
        return self._registry._exec(self, plan, kwargs, opts)

    def using(self, *, errors: ErrorPolicy | None = None, timeout: float | None = None,
              concurrent: bool | None = None) -> BoundHook:
        """This extension point with per-call options (error policy, timeout, concurrency)."""
        base = self._defaults
        if errors is not None and errors not in ERROR_POLICIES:
            raise HookCallError(
                f"Unknown error policy {errors!r}; choose one of raise, collect, isolate."
            )
        if concurrent and self.spec is not None and not self.spec.concurrent:
            raise HookCallError(
                f"Extension point {self.name!r} does not allow concurrent calls; its spec must "
                "say concurrent=True (the host decides whether implementations may overlap)."
            )
        opts = CallOptions(
            errors=errors if errors is not None else base.errors,
            timeout=timeout if timeout is not None else base.timeout,
            concurrent=concurrent if concurrent is not None else base.concurrent,
        )
        return BoundHook(self, opts)

    def call_historic(self, kwargs: Mapping[str, Any] | None = None,
                      result_callback: Callable[[Any], None] | None = None) -> None:
        """Call now and remember the call; implementations registered later receive it too.

        ``result_callback`` receives each non-``None`` result, now and on every replay.
        """
        kw = self._historic_args(kwargs)
        results = self._call(kw, _replace(self._defaults, historic=True))
        self._history.append((kw, result_callback))
        if result_callback is not None:
            for r in results:
                result_callback(r)

    async def acall_historic(self, kwargs: Mapping[str, Any] | None = None,
                             result_callback: Callable[[Any], None] | None = None) -> None:
        """Async twin of :meth:`call_historic`."""
        kw = self._historic_args(kwargs)
        results = await self._acall(kw, _replace(self._defaults, historic=True))
        self._history.append((kw, result_callback))
        if result_callback is not None:
            for r in results:
                result_callback(r)

    def _historic_args(self, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
        if self.spec is None or not self.spec.historic:
            raise HookCallError(
                f"Extension point {self.name!r} is not historic; declare it with "
                "historic=True to use call_historic, or call it normally."
            )
        return dict(kwargs or {})


class BoundHook:
    """An extension point with fixed per-call options; see :meth:`HookCaller.using`."""

    __slots__ = ("_caller", "options")

    def __init__(self, caller: HookCaller, options: CallOptions) -> None:
        self._caller = caller
        self.options = options

    def __call__(self, **kwargs: Any) -> Any:
        return self._caller._call(kwargs, self.options)

    async def acall(self, **kwargs: Any) -> Any:
        return await self._caller._acall(kwargs, self.options)


# ---------------------------------------------------------------------------------- registry


def _name_of(caller: HookCaller, plan: Plan, kwargs: dict[str, Any], opts: CallOptions
             ) -> tuple[str, Any]:
    return caller.name, kwargs


class HookRegistry:
    """Every extension point of one host: specs, implementations, ordering, calls.

    :param monitors: shared monitor set (the facade passes one); monitoring wraps the dispatch
        functions only while a monitor is installed.
    :param tasks: where historic replays to async implementations run (per owner).
    :param dispatch: the sync dispatch function (default :func:`~plughost.core.hookcall.multicall`).
    :param adispatch: the async one (default :func:`~plughost.core.hookcall.amulticall`).
    """

    def __init__(
        self,
        *,
        monitors: MonitorSet | None = None,
        tasks: OwnerTasks | None = None,
        dispatch: Callable[..., Any] = multicall,
        adispatch: Callable[..., Awaitable[Any]] = amulticall,
    ) -> None:
        self._callers: dict[str, HookCaller] = {}
        self._inner_exec = dispatch
        self._inner_aexec = adispatch
        self._exec: Callable[..., Any] = dispatch
        self._aexec: Callable[..., Awaitable[Any]] = adispatch
        self.monitors = monitors if monitors is not None else MonitorSet()
        self.tasks = tasks if tasks is not None else OwnerTasks()
        self.counters: DispatchCounters | None = None
        self._lazy: Callable[[str], Awaitable[Any]] | None = None
        self._woken: set[str] = set()
        self._waking: dict[str, asyncio.Future[Any]] = {}
        self._spec_undos: dict[str, list[Callable[[], None]]] = {}
        self._spec_owners: dict[str, str] = {}
        self._places: dict[str, dict[tuple[str, int], int]] = {}
        """plugin -> (extension point, k) -> the registration order of the plugin's k-th
        implementation there, kept when it is unregistered: a plugin stopped and started again
        (a reload, an update) takes its old place among equal priorities, not the last one.
        By plugin, so forgetting one costs its own places."""
        self.monitors.on_change(self._rewrap)

    def set_lazy_resolver(self, resolver: Callable[[str], Awaitable[Any]] | None) -> None:
        """Install ``resolver(name)``, awaited before the first ``acall`` of each extension
        point (the host activates plugins declaring ``activation = ["extension:<name>"]``).

        It runs again after a plugin is unregistered. Sync calls cannot await it: they see the
        implementations registered so far.
        """
        self._lazy = resolver
        self._woken.clear()

    async def _wake(self, name: str) -> None:
        pending = self._waking.get(name)
        if pending is None:
            assert self._lazy is not None
            # One activation per name even when several callers race for it.
            pending = asyncio.ensure_future(self._lazy(name))
            self._waking[name] = pending

            def done(fut: asyncio.Future[Any]) -> None:
                self._waking.pop(name, None)
                if not fut.cancelled() and fut.exception() is None:
                    self._woken.add(name)

            pending.add_done_callback(done)
        await asyncio.shield(pending)

    def _rewrap(self) -> None:
        self._exec = self.monitors.wrap_sync("hook", self._inner_exec, _name_of)
        self._aexec = self.monitors.wrap_async("hook", self._inner_aexec, _name_of)
        for caller in self._callers.values():  # plans know whether they may bypass _exec
            caller._invalidate()

    def count_into(self, counters: DispatchCounters) -> None:
        """Count every implementation call, per plugin, as ``hooks`` in ``counters``.

        The dispatch loops count (one increment per call, see
        :meth:`plughost.core.hookcall.Plan.flush`) and time one call in
        :data:`~plughost.core.hookcall.SAMPLE`; failures are counted by code on the failure
        path. ``counters`` asks for the pending counts before every read.
        """
        self.counters = counters
        counters.add_source(self.flush_counts)
        for caller in self._callers.values():
            caller._invalidate()

    def flush_counts(self) -> None:
        """Hand the counts the cached plans hold to :attr:`counters`."""
        for caller in self._callers.values():
            plan = caller._plan
            if plan is not None:
                plan.flush()

    def add_monitor(self, monitor: Monitor) -> Callable[[], None]:
        """Observe every call (see :mod:`plughost.core.monitoring`); returns the undo."""
        return self.monitors.add(monitor)

    # -- specs ------------------------------------------------------------------------------

    def add_spec(
        self,
        spec: HookSpec | Callable[..., Any] | type,
        *,
        name: str | None = None,
        prefix: str | None = None,
        owner: str | None = None,
        **options: Any,
    ) -> Callable[[], None]:
        """Declare extension point(s); returns an undo that removes them again.

        ``owner`` is the plugin declaring them for other plugins to implement (``None``: the
        host); :meth:`unregister_owner` removes them with the rest of that plugin's things.

        ``spec`` is a :class:`HookSpec`, a function (its signature is the contract; options come
        from ``@hookspec`` and ``options``) or a ``typing.Protocol`` class whose public methods
        each become ``<prefix>.<method>`` (prefix defaults to the class name). Implementations
        registered earlier are checked now; if one does not fit, nothing is declared.
        """
        if isinstance(spec, HookSpec):
            specs = [spec]
        elif isinstance(spec, type):
            specs = _specs_from_protocol(spec, prefix, options)
        elif callable(spec):
            specs = [HookSpec.from_function(spec, name=name, **options)]
        else:
            raise HookSpecError(
                f"add_spec expects a HookSpec, a function or a Protocol class, "
                f"got {type(spec).__name__}."
            )
        problems: list[str] = []
        seen: set[str] = set()
        for s in specs:
            caller = self._callers.get(s.name)
            if s.name in seen or (caller is not None and caller.spec is not None):
                raise HookSpecError(
                    f"Extension point {s.name!r} is already declared; each name has one spec. "
                    "Remove the old one first (call the undo add_spec returned).",
                    details={"hook": s.name},
                )
            seen.add(s.name)
            if caller is not None:
                for impl in caller._impls:
                    try:
                        _check_fits(impl, s)
                    except HookSignatureError as exc:
                        problems.append(exc.message)
        if problems:
            raise HookSignatureError(
                "Cannot declare: already-registered implementations do not fit:\n  - "
                + "\n  - ".join(problems),
                details={"problems": problems},
            )
        for s in specs:
            caller = self._callers.get(s.name) or self._callers.setdefault(
                s.name, HookCaller(self, s.name)
            )
            caller.spec = s
            caller._defaults = CallOptions(errors=s.errors, timeout=None,
                                           concurrent=s.concurrent)
            caller._invalidate()
        names = [s.name for s in specs]

        def undo() -> None:
            for n in names:
                c = self._callers.get(n)
                if c is not None and c.spec is not None and c.spec in specs:
                    c.spec = None
                    c._history.clear()
                    c._invalidate()
                    if not c._impls:
                        del self._callers[n]
            if owner is not None:
                for n in names:
                    self._spec_owners.pop(n, None)
                undos = self._spec_undos.get(owner, [])
                if undo in undos:
                    undos.remove(undo)
                if not undos:
                    self._spec_undos.pop(owner, None)

        if owner is not None:
            self._spec_undos.setdefault(owner, []).append(undo)
            self._spec_owners.update(dict.fromkeys(names, owner))
        return undo

    def spec(self, name: str) -> HookSpec | None:
        """The spec of ``name``, or ``None`` when not declared."""
        caller = self._callers.get(name)
        return caller.spec if caller is not None else None

    def specs(self) -> list[HookSpec]:
        """Every declared spec, by name."""
        return sorted((c.spec for c in self._callers.values() if c.spec), key=lambda s: s.name)

    # -- access and calls -------------------------------------------------------------------

    def get(self, name: str) -> HookCaller | None:
        """The caller of ``name`` (declared or with pending implementations), else ``None``."""
        return self._callers.get(name)

    def __getitem__(self, name: str) -> HookCaller:
        caller = self._callers.get(name)
        if caller is None or caller.spec is None:
            known = ", ".join(s.name for s in self.specs()) or "(none)"
            raise HookNotFound(
                f"No extension point named {name!r} is declared. Declared: {known}.",
                details={"hook": name},
            )
        return caller

    def __contains__(self, name: object) -> bool:
        caller = self._callers.get(name) if isinstance(name, str) else None
        return caller is not None and caller.spec is not None

    def call(self, name: str, /, **kwargs: Any) -> Any:
        """Call extension point ``name`` synchronously."""
        return self[name](**kwargs)

    async def acall(self, name: str, /, **kwargs: Any) -> Any:
        """Call extension point ``name``, awaiting async and remote implementations."""
        return await self[name].acall(**kwargs)

    # -- registration -----------------------------------------------------------------------

    def register(
        self,
        plugin_id: str,
        name: str,
        function: Callable[..., Any],
        *,
        priority: float = 0,
        tryfirst: bool = False,
        trylast: bool = False,
        before: Iterable[str] | str = (),
        after: Iterable[str] | str = (),
        wrapper: bool = False,
        timeout: float | None = None,
        label: str = "",
    ) -> Callable[[], None]:
        """Register an in-process implementation; returns the undo. See :meth:`register_impl`."""
        where = f"{label or getattr(function, '__qualname__', 'implementation')} of {name!r} " \
                f"by plugin {plugin_id!r}"
        if not callable(function):
            raise InvalidExport(f"{where}: {function!r} is not callable.")
        kind = _classify(function, wrapper, where)
        impl = HookImpl(
            hook=name, plugin_id=plugin_id, function=function, label=label,
            argnames=_impl_argnames(function, where), kind=kind,
            **impl_options(where, priority, tryfirst, trylast, before, after, wrapper, timeout),
        )
        return self.register_impl(impl)

    def register_remote(
        self,
        plugin_id: str,
        name: str,
        call: RemoteCall,
        *,
        args: Sequence[str] | None = None,
        priority: float = 0,
        tryfirst: bool = False,
        trylast: bool = False,
        before: Iterable[str] | str = (),
        after: Iterable[str] | str = (),
        timeout: float | None = None,
        label: str = "",
    ) -> Callable[[], None]:
        """Register an implementation living in another runtime.

        ``call(kwargs, timeout)`` returns an awaitable (typically ``instance.call(target,
        kwargs, timeout=timeout)``). ``args`` names the parameters it takes when known (they are
        checked against the spec); otherwise it receives every argument. Remote implementations
        cannot be wrappers (a wrapper suspends around the others inside one interpreter).
        """
        where = f"{label or 'remote implementation'} of {name!r} by plugin {plugin_id!r}"
        if not callable(call):
            raise InvalidExport(f"{where}: {call!r} is not callable.")
        impl = HookImpl(
            hook=name, plugin_id=plugin_id, remote=call, label=label, kind=REMOTE,
            argnames=tuple(args) if args is not None else None,
            **impl_options(where, priority, tryfirst, trylast, before, after, False, timeout),
        )
        return self.register_impl(impl)

    def register_impl(self, impl: HookImpl) -> Callable[[], None]:
        """Add ``impl``; checks it against the spec and the order, then commits.

        Refused (nothing changed) when it does not fit the spec or when its ``before``/``after``
        constraints close a cycle. If the spec is historic, earlier calls are replayed to it.
        """
        caller = self._callers.get(impl.hook)
        spec = caller.spec if caller is not None else None
        if spec is not None:
            _check_fits(impl, spec)
        existing = caller._impls if caller is not None else []
        k = sum(1 for i in existing if i.plugin_id == impl.plugin_id)
        place = self._places.get(impl.plugin_id, {}).get((impl.hook, k))
        if place is not None:
            impl.seq = place
        candidate = [*existing, impl]
        order_impls([i for i in candidate if i.wrapper == impl.wrapper])  # raises on a cycle
        history = list(caller._history) if caller is not None else []
        if history and impl.is_async:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                raise HookCallError(
                    f"{impl.describe()} must receive {len(history)} earlier historic call(s), "
                    "and it is asynchronous: register it from async code (with a running "
                    "event loop)."
                ) from None
        if caller is None:
            caller = self._callers.setdefault(impl.hook, HookCaller(self, impl.hook))
        self._places.setdefault(impl.plugin_id, {}).setdefault((impl.hook, k), impl.seq)
        caller._impls.append(impl)
        caller._invalidate()
        if history:
            self._replay(caller, impl, history)

        def undo() -> None:
            self._remove(impl)

        return undo

    def _replay(self, caller: HookCaller, impl: HookImpl,
                history: list[tuple[dict[str, Any], Callable[[Any], None] | None]]) -> None:
        spec = caller.spec
        assert spec is not None
        f = HookCaller._func(impl, spec)
        counters = self.counters

        def counted(exc: BaseException | None) -> None:
            if counters is not None:
                counters.add(impl.plugin_id, "hooks", 1)
                if exc is not None:
                    counters.failure(impl.plugin_id, exc)

        if not impl.is_async:
            for kwargs, cb in history:
                try:
                    r = f(**kwargs)
                    counted(None)
                except Exception as exc:
                    counted(exc)
                    impl.failures += 1
                    logger.error("historic replay to %s failed", impl.describe(), exc_info=exc)
                    continue
                if r is not None and cb is not None:
                    cb(r)
            return

        async def replay() -> None:
            for kwargs, cb in history:
                try:
                    r = await _ainvoke_untimed(caller, impl, f, kwargs,
                                               _replace(caller._defaults, historic=True))
                    counted(None)
                except Exception as exc:
                    counted(exc)
                    impl.failures += 1
                    logger.error("historic replay to %s failed", impl.describe(), exc_info=exc)
                    continue
                if r is not None and cb is not None:
                    cb(r)

        self.tasks.spawn(impl.plugin_id, replay(), name=f"historic:{caller.name}")

    def _remove(self, impl: HookImpl) -> bool:
        caller = self._callers.get(impl.hook)
        if caller is None or impl not in caller._impls:
            return False
        caller._impls.remove(impl)
        caller._invalidate()
        if not caller._impls and caller.spec is None:
            del self._callers[impl.hook]
        return True

    def unregister_owner(self, plugin_id: str) -> int:
        """Remove every implementation of ``plugin_id`` and cancel its replays; the count."""
        removed = 0
        for caller in list(self._callers.values()):
            for impl in [i for i in caller._impls if i.plugin_id == plugin_id]:
                removed += self._remove(impl)
        for undo in list(self._spec_undos.get(plugin_id, ())):
            undo()  # extension points the plugin declared for others
            removed += 1
        self.tasks.cancel_owner(plugin_id)
        self._woken.clear()  # a lazy plugin that went away is activated again on demand
        return removed

    def forget_places(self, plugin_id: str) -> None:
        """Forget where ``plugin_id``'s implementations stood (it left the host for good:
        registered again, it goes last among equal priorities, as any new plugin)."""
        self._places.pop(plugin_id, None)

    def specs_of(self, owner: str) -> list[str]:
        """Names of the extension points plugin ``owner`` declared."""
        return sorted(n for n, o in self._spec_owners.items() if o == owner)

    def implementations(self, plugin_id: str | None = None) -> list[HookImpl]:
        """Every registered implementation (of ``plugin_id`` when given), by hook name."""
        out: list[HookImpl] = []
        for name in sorted(self._callers):
            out.extend(i for i in self._callers[name]._impls
                       if plugin_id is None or i.plugin_id == plugin_id)
        return out

    def owners(self) -> set[str]:
        """Plugin ids that have at least one implementation registered."""
        return {i.plugin_id for c in self._callers.values() for i in c._impls}
