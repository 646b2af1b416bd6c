"""Linear memories the host allocates itself, so that a refused ``memory.grow`` is seen.

wasmtime's store limits refuse a ``memory.grow`` past the cap by answering ``-1`` to the guest
and telling nobody. A guest that then traps (``unreachable`` after a failed allocation, as Rust
and most allocators do) looked like any crash unless its memory happened to sit within a page of
the cap: one large grow from 7 MiB past a 16 MiB cap was reported as a generic trap.

With a memory creator the engine asks *us* for every linear memory and every growth, so the cap
is enforced here, per memory, and a refusal of any size is recorded on the instance whose store
the memory belongs to; the trap that follows is then reported as the memory limit.

The memory itself is what wasmtime would allocate: ``reserved + guard`` bytes of address space
reserved inaccessible (``mmap`` ``PROT_NONE``, no swap reserved), the accessible prefix widened
with ``mprotect`` as the memory grows; it never moves, and an access past the accessible size
faults into wasmtime's trap handler as with its own memories. POSIX only: elsewhere the runtime
keeps wasmtime's store limits (:func:`supported`).
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import mmap
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import _bindings as _b

__all__ = ["MemoryCreator", "supported"]

log = logging.getLogger(__name__)

_PROT_NONE = 0
_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE
_MAP_NORESERVE = 0x4000 if sys.platform.startswith("linux") else 0
_MAP_FAILED = ctypes.c_void_p(-1).value
# wasmtime >= 51: the new-memory callback takes a wasmtime_memory_request_t
_REQUEST: Any = getattr(_b, "wasmtime_memory_request_t", None)


def supported() -> bool:
    """Whether this platform can host wasm memories here (POSIX ``mmap``/``mprotect``)."""
    return os.name == "posix" and hasattr(mmap, "MAP_ANONYMOUS")


@dataclass(slots=True)
class _Memory:
    base: int
    size: int  # accessible bytes
    mapped: int  # bytes reserved (reserved + guard)
    capacity: int  # bytes the memory may grow to without moving
    cap: int | None  # the plugin's memory limit, or None
    on_refused: Callable[[int, int], None] | None  # (current size, asked size)


class MemoryCreator:
    """The engine's memory creator (install with :meth:`install` before the ``Engine`` exists).

    Memories are created while an instance is being instantiated; :meth:`creating` tells the
    creator, for the current thread, which cap applies and whom to tell about a refusal.
    """

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._mmap = libc.mmap
        self._mmap.restype = ctypes.c_void_p
        self._mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_long]
        self._mprotect = libc.mprotect
        self._mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self._munmap = libc.munmap
        self._munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self._page = mmap.PAGESIZE
        self._memories: dict[int, _Memory] = {}
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._lock = threading.Lock()
        # the callbacks must live as long as the engine: they are attributes of this object,
        # which the runtime keeps until after the engine is closed
        self._get = _b.wasmtime_memory_get_callback_t(self._get_memory)
        self._grow = _b.wasmtime_memory_grow_callback_t(self._grow_memory)
        self._release = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(self._finalize)
        # wasmtime 51 passes the request as one struct (and may ask for a GC heap through the
        # same callback); 50 passed its fields as arguments
        self._new = _b.wasmtime_new_memory_callback_t(
            self._new_memory_request if _REQUEST is not None else self._new_memory)
        self._creator_done = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda env: None)
        self._struct = _b.wasmtime_memory_creator_t(
            env=None, new_memory=self._new, finalizer=self._creator_done
        )

    def install(self, config: wasmtime.Config) -> None:
        """Make the engine built from ``config`` ask this creator for its memories.

        Copy-on-write memory images need wasmtime's own mmap-based memories: with a creator the
        data segments are copied in at instantiation instead (a few microseconds for a plugin's
        static data).
        """
        _b.wasmtime_config_memory_init_cow_set(config.ptr(), False)
        _b.wasmtime_config_host_memory_creator_set(config.ptr(), ctypes.byref(self._struct))

    def creating(self, cap: int | None, on_refused: Callable[[int, int], None] | None) -> Any:
        """Context manager: memories created on this thread meanwhile get ``cap``."""
        creator = self

        class _Scope:
            def __enter__(self) -> None:
                creator._local.scope = (cap, on_refused)

            def __exit__(self, *exc: object) -> None:
                creator._local.scope = None

        return _Scope()

    @property
    def live(self) -> int:
        """Memories currently allocated (for tests and stats)."""
        return len(self._memories)

    # -- callbacks (called by wasmtime, on the thread that instantiates, grows or drops) ---------

    def _new_memory_request(self, env: Any, request: Any, out: Any) -> int:
        try:
            r = request.contents
            minimum, maximum = r.minimum, r.maximum
            reserved, guard = r.reserved_size_in_bytes, r.guard_size_in_bytes
        except BaseException as exc:  # never unwind into wasmtime
            log.exception("wasm memory creation failed")
            return self._error(f"memory creation failed: {exc}")
        # A GC heap (only with the GC proposal, which the runtime does not enable) is held to
        # the same cap as a linear memory: each memory of the instance is capped.
        return self._new_memory(env, None, minimum, maximum, reserved, guard, out)

    def _new_memory(self, env: Any, ty: Any, minimum: int, maximum: int, reserved: int,
                    guard: int, out: Any) -> int:
        try:
            cap, on_refused = getattr(self._local, "scope", None) or (None, None)
            if cap is not None and minimum > cap:
                if on_refused is not None:
                    on_refused(0, minimum)
                return self._error(
                    f"memory limit of {cap} bytes is below the module's initial memory of "
                    f"{minimum} bytes"
                )
            # wasmtime's reservation when it gives one (static memories), else room up to the
            # cap (or 4 GiB, a 32-bit memory's whole range, when there is none)
            capacity = reserved or max(minimum, min(maximum, cap or 1 << 32))
            capacity = -(-capacity // self._page) * self._page
            mapped = capacity + guard
            base = self._mmap(None, mapped, _PROT_NONE,
                              mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE, -1, 0)
            if base is None or base == _MAP_FAILED:
                return self._error(f"cannot reserve {mapped} bytes of address space "
                                   f"(errno {ctypes.get_errno()})")
            if minimum and self._mprotect(base, minimum, _PROT_RW) != 0:
                self._munmap(base, mapped)
                return self._error(f"cannot map {minimum} bytes (errno {ctypes.get_errno()})")
            key = next(self._ids)
            with self._lock:
                self._memories[key] = _Memory(base, minimum, mapped, capacity, cap, on_refused)
            ret = out.contents
            ret.env = key
            ret.get_memory = self._get
            ret.grow_memory = self._grow
            ret.finalizer = self._release
            return 0
        except BaseException as exc:  # never unwind into wasmtime
            log.exception("wasm memory creation failed")
            return self._error(f"memory creation failed: {exc}")

    def _get_memory(self, env: int, size: Any, capacity: Any) -> int:
        memory = self._memories[env]
        size[0] = memory.size
        capacity[0] = memory.capacity
        return memory.base

    def _grow_memory(self, env: int, new_size: int) -> int:
        try:
            memory = self._memories[env]
            if memory.cap is not None and new_size > memory.cap:
                if memory.on_refused is not None:
                    memory.on_refused(memory.size, new_size)
                return self._error(f"memory limit of {memory.cap} bytes exceeded")
            if new_size > memory.capacity:
                return self._error(f"cannot grow past the {memory.capacity}-byte reservation")
            if new_size > memory.size and self._mprotect(memory.base, new_size, _PROT_RW) != 0:
                return self._error(f"cannot map {new_size} bytes (errno {ctypes.get_errno()})")
            memory.size = max(memory.size, new_size)
            return 0
        except BaseException as exc:
            log.exception("wasm memory growth failed")
            return self._error(f"memory growth failed: {exc}")

    def _finalize(self, env: int) -> None:
        with self._lock:
            memory = self._memories.pop(env, None)
        if memory is not None:
            self._munmap(memory.base, memory.mapped)

    @staticmethod
    def _error(message: str) -> int:
        err = _b.wasmtime_error_new(ctypes.create_string_buffer(message.encode()))
        return ctypes.cast(err, ctypes.c_void_p).value or 0
