"""Extension point specs: the contract a host declares, and ``@hookspec``.

A spec is a name, the parameter names its calls pass (by keyword), a result policy (``all``,
``first``, ``pipeline``) and defaults for the per-call options. It is built from a function's
signature or from a ``typing.Protocol``'s methods; see :mod:`plughost.core.hooks`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from plughost.core.hookcall import ErrorPolicy
from plughost.errors import HookSpecError

__all__ = ["ERROR_POLICIES", "POLICIES", "SPEC_ATTR", "HookSpec", "Policy", "hookspec"]

Policy = Literal["all", "first", "pipeline"]
POLICIES: frozenset[str] = frozenset({"all", "first", "pipeline"})
ERROR_POLICIES: frozenset[str] = frozenset({"raise", "collect", "isolate"})

SPEC_ATTR = "__plughost_hookspec__"

F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class HookSpec:
    """The contract of one extension point.

    :param name: dotted name, e.g. ``chat.before_send``.
    :param params: parameter names, in declaration order; calls pass them by keyword.
    :param defaults: parameters that may be omitted in a call, with their default values.
    :param policy: ``all``, ``first`` or ``pipeline``.
    :param pipe: for ``pipeline``, the parameter that carries the value from one implementation
        to the next (default: the first parameter).
    :param errors: default error policy (``raise``, ``collect``, ``isolate``).
    :param historic: calls are remembered and replayed to implementations registered later.
    :param concurrent: ``acall`` may run the implementations concurrently (``all`` only).
    :param timeout: default per-implementation timeout for async/remote implementations.
    :param doc: the spec's docstring.
    """

    name: str
    params: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    policy: Policy = "all"
    pipe: str | None = None
    errors: ErrorPolicy = "raise"
    historic: bool = False
    concurrent: bool = False
    timeout: float | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        where = f"extension point {self.name!r}"
        if not isinstance(self.name, str) or not self.name or any(c.isspace() for c in self.name):
            raise HookSpecError(
                f"Invalid extension point name {self.name!r}: use a non-empty dotted name "
                "without spaces, e.g. 'chat.before_send'."
            )
        if self.policy not in POLICIES:
            raise HookSpecError(
                f"{where}: unknown policy {self.policy!r}; choose one of all, first, pipeline."
            )
        if self.errors not in ERROR_POLICIES:
            raise HookSpecError(
                f"{where}: unknown error policy {self.errors!r}; "
                "choose one of raise, collect, isolate."
            )
        if self.concurrent and self.policy != "all":
            raise HookSpecError(
                f"{where}: concurrent=True needs policy 'all' ({self.policy!r} depends on the "
                "order of results)."
            )
        if self.historic and self.policy != "all":
            raise HookSpecError(f"{where}: historic=True needs policy 'all'.")
        if self.policy == "pipeline":
            if not self.params:
                raise HookSpecError(
                    f"{where}: a pipeline needs at least one parameter to carry the value."
                )
            if self.pipe is None:
                object.__setattr__(self, "pipe", self.params[0])
            elif self.pipe not in self.params:
                raise HookSpecError(
                    f"{where}: pipe={self.pipe!r} is not one of its parameters "
                    f"({', '.join(self.params)})."
                )
        if self.timeout is not None and self.timeout <= 0:
            raise HookSpecError(f"{where}: timeout must be positive, got {self.timeout!r}.")
        unknown = set(self.defaults) - set(self.params)
        if unknown:
            raise HookSpecError(f"{where}: defaults for unknown parameters {sorted(unknown)}.")

    @property
    def required(self) -> frozenset[str]:
        """Parameters a call must pass."""
        return frozenset(p for p in self.params if p not in self.defaults)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, name: str | None = None,
                      **options: Any) -> HookSpec:
        """Build a spec from a function's signature and its ``@hookspec`` options.

        ``self`` is skipped (Protocol methods); keyword ``options`` override the decorator's.
        """
        opts: dict[str, Any] = dict(getattr(fn, SPEC_ATTR, {}))
        opts.update({k: v for k, v in options.items() if v is not None})
        spec_name = name or opts.pop("name", None) or getattr(fn, "__name__", None)
        opts.pop("name", None)
        params, defaults = _spec_params(fn, str(spec_name))
        return cls(
            name=str(spec_name), params=params, defaults=defaults,
            doc=inspect.getdoc(fn) or "", **opts,
        )


def hookspec(
    name: str | None = None,
    *,
    policy: Policy = "all",
    pipe: str | None = None,
    errors: ErrorPolicy = "raise",
    historic: bool = False,
    concurrent: bool = False,
    timeout: float | None = None,
) -> Callable[[F], F]:
    """Mark a function (or a Protocol method) as an extension point spec.

    Only marks it; :meth:`HookRegistry.add_spec` reads the mark. Options are validated at once,
    so a typo fails where it is written.
    """
    options: dict[str, Any] = {
        "policy": policy, "pipe": pipe, "errors": errors, "historic": historic,
        "concurrent": concurrent, "timeout": timeout,
    }
    # Validate the option combination now (with a placeholder signature).
    HookSpec(name=name or "spec", params=(pipe or "value",), **options)

    def mark(fn: F) -> F:
        setattr(fn, SPEC_ATTR, {**options, "name": name})
        return fn

    return mark


def _spec_params(fn: Callable[..., Any], name: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise HookSpecError(f"Cannot read the signature of spec {name!r}: {exc}") from None
    params: list[str] = []
    defaults: dict[str, Any] = {}
    for i, p in enumerate(sig.parameters.values()):
        if i == 0 and p.name in ("self", "cls"):
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise HookSpecError(
                f"Spec {name!r} has *{p.name}: extension points are called with named "
                "arguments only; list every parameter explicitly."
            )
        if p.kind is p.POSITIONAL_ONLY:
            raise HookSpecError(
                f"Spec {name!r}: parameter {p.name!r} is positional-only; calls pass "
                "arguments by name."
            )
        params.append(p.name)
        if p.default is not p.empty:
            defaults[p.name] = p.default
    return tuple(params), defaults


def _specs_from_protocol(proto: type, prefix: str | None, options: Mapping[str, Any]
                         ) -> list[HookSpec]:
    base = prefix if prefix is not None else proto.__name__
    specs = []
    for attr, value in vars(proto).items():
        if attr.startswith("_") or not inspect.isfunction(value):
            continue
        marked = getattr(value, SPEC_ATTR, {})
        own_name = marked.get("name")
        name = own_name or (f"{base}.{attr}" if base else attr)
        specs.append(HookSpec.from_function(value, name=name, **options))
    if not specs:
        raise HookSpecError(
            f"Protocol {proto.__name__!r} declares no public methods to use as extension points."
        )
    return specs
