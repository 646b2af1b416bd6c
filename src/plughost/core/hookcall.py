"""The inner loops of an extension-point call: policies, error policies, wrappers, timeouts.

:func:`multicall` (sync) and :func:`amulticall` (async) are the *dispatch functions* a
:class:`~plughost.core.hooks.HookRegistry` holds in an attribute and monitoring wraps (pluggy's
``_multicall``). They receive a prepared :class:`Plan` — the ordered implementations and their
call adapters, cached by the caller — so the common case is a plain loop over a tuple.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from plughost.errors import HookCallError, HookError, PluginTimeout

if TYPE_CHECKING:
    from plughost.core.hookimpls import HookImpl
    from plughost.core.hooks import HookCaller
    from plughost.core.monitoring import DispatchCounters

__all__ = ["SAMPLE", "CallOptions", "ErrorPolicy", "Plan", "amulticall", "multicall"]

SAMPLE = 64
"""One synchronous call in ``SAMPLE`` of each extension point is timed, implementation by
implementation, for the latency histogram; every call is counted."""

logger = logging.getLogger(__name__)

ErrorPolicy = Literal["raise", "collect", "isolate"]

# Implementation kinds, decided once at registration (starlette-style classification).
SYNC = 0
ASYNC = 1
REMOTE = 2
SYNC_GEN = 3  # a sync generator wrapper (pluggy new-style)
ASYNC_GEN = 4  # an async generator wrapper


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-call options; the spec supplies the defaults and :meth:`HookCaller.using` overrides.

    :param errors: ``raise`` stops at the first error; ``collect`` calls every implementation
        and then raises an :class:`ExceptionGroup` of the failures; ``isolate`` logs, counts and
        skips a failing implementation.
    :param timeout: seconds per implementation for async and remote implementations (``None``:
        the implementation's own timeout, then the spec's, else no limit).
    :param concurrent: ``acall`` runs the implementations of an ``all`` hook concurrently.
    """

    errors: ErrorPolicy = "raise"
    timeout: float | None = None
    concurrent: bool = False
    historic: bool = False
    """Set by ``call_historic``: the only way to call a historic extension point."""


def _not_historic(caller: HookCaller) -> HookCallError:
    return HookCallError(
        f"Extension point {caller.name!r} is historic; use call_historic(...) (or "
        "acall_historic) so implementations registered later receive the call too."
    )


class Plan:
    """The cached, ordered view of one extension point that the dispatch loops run over.

    Rebuilt by the caller only when implementations or the spec change. ``funcs`` take the
    spec's arguments by keyword; ``posfuncs`` (sync fast path only) take them positionally in
    the spec's order — a positional call skips building keyword arguments for every
    implementation, which is most of the cost of a call beyond the implementations' own.
    """

    __slots__ = (
        "args_of",
        "argset",
        "attempts",
        "blocker",
        "by_func",
        "calls",
        "counters",
        "direct",
        "fast",
        "funcs",
        "historic",
        "impls",
        "inline_all",
        "pipe",
        "pipe_index",
        "policy",
        "posfuncs",
        "sync_ok",
        "wfuncs",
        "wrappers",
    )

    def __init__(
        self,
        *,
        policy: str,
        pipe: str | None,
        params: tuple[str, ...],
        impls: tuple[HookImpl, ...],
        funcs: tuple[Callable[..., Any], ...],
        posfuncs: tuple[Callable[..., Any], ...] | None,
        wrappers: tuple[HookImpl, ...],
        wfuncs: tuple[Callable[..., Any], ...],
        historic: bool = False,
        counters: DispatchCounters | None = None,
    ) -> None:
        self.historic = historic
        # Counting (see :meth:`flush`): ``calls`` counts the calls that ran every
        # implementation, ``attempts[k]`` corrects it for calls that ran only the first ``k``
        # (a ``first`` answer, a failure, a slow path). One increment per call, none per
        # implementation; the owners' counts are computed when someone reads them.
        self.counters = counters
        self.calls = 0
        self.attempts = [0] * (len(impls) + 1)
        self.policy = policy
        self.pipe = pipe
        self.pipe_index = params.index(pipe) if pipe else -1
        self.argset = frozenset(params)
        self.args_of = _args_getter(params)
        self.impls = impls
        self.funcs = funcs
        self.posfuncs = posfuncs
        self.wrappers = wrappers
        self.wfuncs = wfuncs
        self.by_func = {f: i for f, i in zip(funcs, impls, strict=True)}
        if posfuncs is not None:
            self.by_func.update(zip(posfuncs, impls, strict=True))
        blockers = [i for i in (*wrappers, *impls) if i.kind in (ASYNC, REMOTE, ASYNC_GEN)]
        self.blocker: HookImpl | None = blockers[0] if blockers else None
        self.sync_ok = self.blocker is None
        # The common case — sync implementations, no wrappers, error policy "raise" — gets a
        # closure specialised for the policy: a plain loop over a tuple, nothing else.
        self.fast: Callable[[dict[str, Any]], Any] | None = (
            _fast_loop(policy, self.pipe_index, posfuncs, self.args_of, self)
            if self.sync_ok and not wrappers and not historic and posfuncs is not None
            else None
        )
        # Set by the caller when calling ``fast`` directly is exactly what the registry's
        # dispatch would do (default dispatch, no monitor, default error policy "raise").
        self.direct: Callable[[dict[str, Any]], Any] | None = None
        # Same condition, policy "all": the caller runs this loop itself (one frame less).
        self.inline_all: tuple[Callable[..., Any], ...] | None = None

    def ran(self, k: int) -> None:
        """Count a call that ran the first ``k`` implementations (not through ``calls``)."""
        self.attempts[k] += 1

    def error(self, impl: HookImpl, exc: BaseException) -> None:
        """Count a failure of ``impl`` (its call is counted by :meth:`ran`)."""
        if self.counters is not None:
            self.counters.failure(impl.plugin_id, exc)

    def failed(self, exc: BaseException, f: Callable[..., Any] | None) -> None:
        """The failure path of the positional loops: annotate ``exc`` and count the call."""
        impl = self.by_func.get(f) if f is not None else None
        if impl is None:
            return
        _annotate(exc, impl)
        self.attempts[self.impls.index(impl) + 1] += 1
        self.error(impl, exc)

    def flush(self) -> None:
        """Add the calls counted since the last flush to the owners' counts."""
        counters = self.counters
        calls, attempts = self.calls, self.attempts
        if counters is None or not (calls or any(attempts)):
            return
        self.calls = 0
        self.attempts = [0] * len(attempts)
        ran = calls
        for k in range(len(attempts) - 1, 0, -1):
            ran += attempts[k]
            counters.add(self.impls[k - 1].plugin_id, "hooks", ran)

    def timed(self, kwargs: dict[str, Any]) -> Any:
        """The sampled call of the fast path: the same loop, timing each implementation."""
        self.calls += 1  # advances the sampling clock even when the call fails
        self.attempts[-1] -= 1
        counters = self.counters
        funcs = self.posfuncs
        assert funcs is not None
        args = list(self.args_of(kwargs))
        policy = self.policy
        pipe_index = self.pipe_index
        results = []
        perf = time.perf_counter
        for i, f in enumerate(funcs):
            started = perf()
            try:
                r = f(*args)
            except Exception as exc:
                self.failed(exc, f)
                raise
            finally:
                if counters is not None:
                    counters.observe(self.impls[i].plugin_id, "hooks", perf() - started)
            if r is None:
                continue
            if policy == "all":
                results.append(r)
            elif policy == "first":
                self.attempts[i + 1] += 1
                return r
            else:
                args[pipe_index] = r
        self.attempts[-1] += 1
        if policy == "all":
            return results
        if policy == "first":
            return None
        return args[pipe_index]



def _args_getter(params: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``kwargs -> tuple of values in spec order`` (``operator.itemgetter`` when it can)."""
    if not params:
        return lambda kwargs: ()
    if len(params) == 1:
        only = params[0]
        return lambda kwargs: (kwargs[only],)
    return operator.itemgetter(*params)


def _fast_loop(policy: str, pipe_index: int, funcs: tuple[Callable[..., Any], ...] | None,
               args_of: Callable[[dict[str, Any]], tuple[Any, ...]],
               plan: Plan) -> Callable[[dict[str, Any]], Any]:
    """The loop of one policy, counting the call (one increment) and timing one in SAMPLE."""
    assert funcs is not None
    failed = plan.failed
    timed = plan.timed

    if policy == "all":
        def run_all(kwargs: dict[str, Any]) -> list[Any]:
            calls = plan.calls
            if not calls % SAMPLE:
                return timed(kwargs)  # type: ignore[no-any-return]
            args = args_of(kwargs)
            results = []
            f = None
            try:
                for f in funcs:
                    r = f(*args)
                    if r is not None:
                        results.append(r)
            except Exception as exc:
                failed(exc, f)
                raise
            plan.calls = calls + 1
            return results

        return run_all
    if policy == "first":
        def run_first(kwargs: dict[str, Any]) -> Any:
            calls = plan.calls
            if not calls % SAMPLE:
                return timed(kwargs)
            args = args_of(kwargs)
            f = None
            try:
                for f in funcs:
                    r = f(*args)
                    if r is not None:
                        plan.calls = calls + 1
                        attempts = plan.attempts
                        attempts[funcs.index(f) + 1] += 1
                        attempts[-1] -= 1
                        return r
            except Exception as exc:
                failed(exc, f)
                raise
            plan.calls = calls + 1
            return None

        return run_first

    def run_pipeline(kwargs: dict[str, Any]) -> Any:
        calls = plan.calls
        if not calls % SAMPLE:
            return timed(kwargs)
        args = list(args_of(kwargs))
        f = None
        try:
            for f in funcs:
                r = f(*args)
                if r is not None:
                    args[pipe_index] = r
        except Exception as exc:
            failed(exc, f)
            raise
        plan.calls = calls + 1
        return args[pipe_index]

    return run_pipeline


def _annotate(exc: BaseException, impl: HookImpl | None) -> None:
    if impl is not None:
        exc.add_note(f"raised by {impl.describe()}")


def _isolate(caller: HookCaller, impl: HookImpl, exc: BaseException) -> None:
    impl.failures += 1
    logger.error("%s failed; skipped (error policy 'isolate')", impl.describe(), exc_info=exc)


def _group(caller: HookCaller, errors: list[Exception]) -> ExceptionGroup[Exception]:
    return ExceptionGroup(
        f"{len(errors)} implementation(s) of extension point {caller.name!r} failed", errors
    )


# --------------------------------------------------------------------------------------- sync


def multicall(caller: HookCaller, plan: Plan, kwargs: dict[str, Any], opts: CallOptions) -> Any:
    """Run one synchronous call of ``caller`` according to its policy and ``opts``."""
    fast = plan.fast
    if fast is not None and opts.errors == "raise":
        return fast(kwargs)
    if plan.historic and not opts.historic:
        raise _not_historic(caller)
    if not plan.sync_ok:
        blocker = plan.blocker
        assert blocker is not None
        raise HookCallError(
            f"Extension point {caller.name!r} has an asynchronous implementation "
            f"({blocker.describe()}) that a synchronous call cannot await. "
            f"Use `await hooks.acall({caller.name!r}, ...)` (or `await caller.acall(...)`).",
            details={"hook": caller.name, "plugin": blocker.plugin_id},
        )
    if plan.wrappers:
        return _wrapped_sync(caller, plan, kwargs, lambda: _inner_sync(caller, plan, kwargs, opts))
    return _inner_sync(caller, plan, kwargs, opts)


def _inner_sync(caller: HookCaller, plan: Plan, kwargs: dict[str, Any], opts: CallOptions) -> Any:
    policy = plan.policy
    funcs = plan.funcs
    if opts.errors == "raise":
        # The hot path: a plain loop; the handler finds the failing implementation from ``f``.
        f: Callable[..., Any] | None = None
        try:
            if policy == "all":
                results = []
                for f in funcs:
                    r = f(**kwargs)
                    if r is not None:
                        results.append(r)
                plan.ran(len(funcs))
                return results
            if policy == "first":
                for f in funcs:
                    r = f(**kwargs)
                    if r is not None:
                        plan.ran(funcs.index(f) + 1)
                        return r
                plan.ran(len(funcs))
                return None
            pipe = plan.pipe
            assert pipe is not None
            kw = dict(kwargs)
            for f in funcs:
                r = f(**kw)
                if r is not None:
                    kw[pipe] = r
            plan.ran(len(funcs))
            return kw[pipe]
        except Exception as exc:
            plan.failed(exc, f)
            raise
    return _tolerant_sync(caller, plan, kwargs, opts.errors)


def _tolerant_sync(caller: HookCaller, plan: Plan, kwargs: dict[str, Any], errors: str) -> Any:
    """``collect`` and ``isolate``: a failure skips one implementation, not the call."""
    policy = plan.policy
    failures: list[Exception] = []
    results: list[Any] = []
    found: Any = None
    kw = dict(kwargs) if policy == "pipeline" else kwargs
    attempted = 0
    for impl, f in zip(plan.impls, plan.funcs, strict=True):
        attempted += 1
        try:
            r = f(**kw)
        except Exception as exc:
            plan.error(impl, exc)
            if errors == "isolate":
                _isolate(caller, impl, exc)
            else:
                _annotate(exc, impl)
                failures.append(exc)
            continue
        if r is None:
            continue
        if policy == "all":
            results.append(r)
        elif policy == "first":
            found = r
            break
        else:
            kw[plan.pipe] = r  # type: ignore[index]
    plan.ran(attempted)
    if failures:
        raise _group(caller, failures)
    if policy == "all":
        return results
    if policy == "first":
        return found
    return kw[plan.pipe]  # type: ignore[index]


def _wrapped_sync(
    caller: HookCaller, plan: Plan, kwargs: dict[str, Any], inner: Callable[[], Any]
) -> Any:
    started: list[tuple[HookImpl, Any]] = []
    exc: BaseException | None = None
    result: Any = None
    try:
        for impl, w in zip(plan.wrappers, plan.wfuncs, strict=True):
            gen = w(**kwargs)
            try:
                next(gen)
            except StopIteration:
                raise HookError(
                    f"{impl.describe()} is a wrapper but did not yield; a wrapper must "
                    "`yield` exactly once to run the other implementations.",
                    plugin_id=impl.plugin_id,
                ) from None
            started.append((impl, gen))
        result = inner()
    except BaseException as e:
        exc = e
    for impl, gen in reversed(started):
        try:
            if exc is None:
                gen.send(result)
            else:
                gen.throw(exc)
        except StopIteration as stop:
            result, exc = stop.value, None
        except BaseException as e:
            result, exc = None, e
        else:
            gen.close()
            result, exc = None, HookError(
                f"{impl.describe()} yielded more than once; a wrapper must yield exactly once.",
                plugin_id=impl.plugin_id,
            )
    if exc is not None:
        raise exc
    return result


# -------------------------------------------------------------------------------------- async


async def _ainvoke(
    caller: HookCaller, plan: Plan, impl: HookImpl, f: Callable[..., Any],
    kwargs: dict[str, Any], opts: CallOptions,
) -> Any:
    """One implementation of an async call, timed (every async call is: awaiting costs more)."""
    counters = plan.counters
    if counters is None:
        return await _ainvoke_untimed(caller, impl, f, kwargs, opts)
    started = time.perf_counter()
    try:
        return await _ainvoke_untimed(caller, impl, f, kwargs, opts)
    except BaseException as exc:
        plan.error(impl, exc)
        raise
    finally:
        counters.observe(impl.plugin_id, "hooks", time.perf_counter() - started)


async def _ainvoke_untimed(
    caller: HookCaller, impl: HookImpl, f: Callable[..., Any], kwargs: dict[str, Any],
    opts: CallOptions,
) -> Any:
    kind = impl.kind
    if kind == SYNC:
        return f(**kwargs)
    timeout = opts.timeout
    if timeout is None:
        timeout = impl.timeout if impl.timeout is not None else caller.spec_timeout
    # REMOTE: the proxy takes the kwargs mapping and the deadline.
    aw = f(**kwargs) if kind == ASYNC else f(kwargs, timeout)
    if timeout is None:
        return await aw
    try:
        async with asyncio.timeout(timeout) as cm:
            return await aw
    except TimeoutError:
        if cm.expired():
            raise PluginTimeout(
                f"{impl.describe()} did not finish within {timeout:g}s. Make it faster, or raise "
                "the timeout (spec, implementation option or call option).",
                plugin_id=impl.plugin_id,
                details={"hook": caller.name, "timeout": timeout},
            ) from None
        raise


async def amulticall(
    caller: HookCaller, plan: Plan, kwargs: dict[str, Any], opts: CallOptions
) -> Any:
    """Run one asynchronous call: awaits async and remote implementations, sync ones inline."""
    if plan.historic and not opts.historic:
        raise _not_historic(caller)
    if plan.wrappers:
        return await _wrapped_async(caller, plan, kwargs, opts)
    return await _inner_async(caller, plan, kwargs, opts)


async def _inner_async(
    caller: HookCaller, plan: Plan, kwargs: dict[str, Any], opts: CallOptions
) -> Any:
    policy = plan.policy
    if opts.concurrent and policy == "all" and len(plan.impls) > 1:
        return await _concurrent(caller, plan, kwargs, opts)
    errors = opts.errors
    failures: list[Exception] = []
    results: list[Any] = []
    found: Any = None
    kw = dict(kwargs) if policy == "pipeline" else kwargs
    attempted = 0
    try:
        for impl, f in zip(plan.impls, plan.funcs, strict=True):
            attempted += 1
            try:
                r = await _ainvoke(caller, plan, impl, f, kw, opts)
            except Exception as exc:
                if errors == "isolate":
                    _isolate(caller, impl, exc)
                    continue
                _annotate(exc, impl)
                if errors == "raise":
                    raise
                failures.append(exc)
                continue
            if r is None:
                continue
            if policy == "all":
                results.append(r)
            elif policy == "first":
                found = r
                break
            else:
                kw[plan.pipe] = r  # type: ignore[index]
    finally:
        plan.ran(attempted)
    if failures:
        raise _group(caller, failures)
    if policy == "all":
        return results
    if policy == "first":
        return found
    return kw[plan.pipe]  # type: ignore[index]


async def _concurrent(
    caller: HookCaller, plan: Plan, kwargs: dict[str, Any], opts: CallOptions
) -> list[Any]:
    """``all`` with ``concurrent``: every implementation at once, results in declared order.

    With ``raise`` the first failure cancels the others and is raised.
    """
    loop = asyncio.get_running_loop()
    tasks = [
        loop.create_task(_ainvoke(caller, plan, impl, f, kwargs, opts))
        for impl, f in zip(plan.impls, plan.funcs, strict=True)
    ]
    plan.ran(len(tasks))
    try:
        if opts.errors == "raise":
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        else:
            await asyncio.wait(tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    results: list[Any] = []
    failures: list[Exception] = []
    for impl, t in zip(plan.impls, tasks, strict=True):
        if t.cancelled():
            continue
        exc = t.exception()
        if exc is None:
            r = t.result()
            if r is not None:
                results.append(r)
            continue
        if not isinstance(exc, Exception):
            raise exc
        if opts.errors == "isolate":
            _isolate(caller, impl, exc)
            continue
        _annotate(exc, impl)
        if opts.errors == "raise":
            raise exc
        failures.append(exc)
    if failures:
        raise _group(caller, failures)
    return results


async def _wrapped_async(
    caller: HookCaller, plan: Plan, kwargs: dict[str, Any], opts: CallOptions
) -> Any:
    """Wrappers around an async call: sync generators as in pluggy, or async generators.

    An async generator wrapper receives the outcome at its ``yield``; it may ``yield`` a second
    value to replace the result (or to replace an exception); if it just ends, the outcome is
    unchanged (async generators cannot ``return`` a value).
    """
    started: list[tuple[HookImpl, Any]] = []
    exc: BaseException | None = None
    result: Any = None
    try:
        for impl, w in zip(plan.wrappers, plan.wfuncs, strict=True):
            gen = w(**kwargs)
            try:
                if impl.kind == ASYNC_GEN:
                    await gen.__anext__()
                else:
                    next(gen)
            except (StopIteration, StopAsyncIteration):
                raise HookError(
                    f"{impl.describe()} is a wrapper but did not yield; a wrapper must "
                    "`yield` once to run the other implementations.",
                    plugin_id=impl.plugin_id,
                ) from None
            started.append((impl, gen))
        result = await _inner_async(caller, plan, kwargs, opts)
    except BaseException as e:
        exc = e
    for impl, gen in reversed(started):
        if impl.kind == ASYNC_GEN:
            try:
                if exc is None:
                    replacement = await gen.asend(result)
                else:
                    replacement = await gen.athrow(exc)
            except StopAsyncIteration:
                continue  # outcome unchanged
            except BaseException as e:
                result, exc = None, e
                continue
            result, exc = replacement, None
            await gen.aclose()
            continue
        try:
            if exc is None:
                gen.send(result)
            else:
                gen.throw(exc)
        except StopIteration as stop:
            result, exc = stop.value, None
        except BaseException as e:
            result, exc = None, e
        else:
            gen.close()
            result, exc = None, HookError(
                f"{impl.describe()} yielded more than once; a wrapper must yield exactly once.",
                plugin_id=impl.plugin_id,
            )
    if exc is not None:
        raise exc
    return result

