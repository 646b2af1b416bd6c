"""Compiled-module cache on disk, keyed by content digest, wasmtime version and engine config.

Compiling a module with Cranelift costs milliseconds to seconds; deserialising a compiled
artefact costs tens of microseconds. ``Module.serialize`` output is native code, valid only for
the exact wasmtime version and engine configuration that produced it, so both are part of the
file name: an artefact from another version or configuration is simply never looked up.

Layout: ``<root>/<sha256 of source>-<wasmtime version>-<config tag>.cwasm``. A file is written
to a temporary name and renamed into place, so a reader never sees half an artefact. Each
artefact ends with a 32-byte SHA-256 of its body, checked before deserialising: a truncated or
corrupted file (disk trouble, a crash mid-copy) is detected, deleted and recompiled instead of
being handed to the deserialiser, which trusts its input.

The cache directory must be writable only by the host's user: a compiled artefact is machine
code that wasmtime runs without re-validating it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import wasmtime

__all__ = ["CacheResult", "ModuleCache", "wasmtime_version"]

log = logging.getLogger(__name__)

_DIGEST_BYTES = 32


@functools.cache
def wasmtime_version() -> str:
    """The installed wasmtime-py version (it tracks the wasmtime C library version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wasmtime")
    except PackageNotFoundError:  # pragma: no cover - vendored builds
        return getattr(wasmtime, "__version__", "unknown")


@dataclass(frozen=True, slots=True)
class CacheResult:
    """A compiled module and how it was obtained (``hit``, ``miss`` or ``disabled``)."""

    module: wasmtime.Module
    digest: str
    source: str
    path: Path | None


class ModuleCache:
    """Compile wasm (or WAT) through a disk cache.

    :param root: the directory holding ``.cwasm`` artefacts (created on first write), or None to
        compile every time.
    :param engine: the engine modules are compiled for.
    :param config_tag: a short string naming the engine configuration (fuel, epochs, ...):
        part of the key so an artefact compiled under another configuration is never used.
    """

    def __init__(self, root: Path | None, engine: wasmtime.Engine, config_tag: str) -> None:
        self.root = root
        self.engine = engine
        self.config_tag = config_tag
        self.version = wasmtime_version()
        self.hits = 0
        self.misses = 0

    def path_for(self, digest: str) -> Path | None:
        """Where the artefact for a source digest lives (None when the cache is disabled)."""
        if self.root is None:
            return None
        return self.root / f"{digest}-{self.version}-{self.config_tag}.cwasm"

    @staticmethod
    def digest(source: bytes, *, is_text: bool) -> str:
        """The cache key's content part: SHA-256 of the source as given (WAT or binary).

        Keyed on the source as given, so a ``.wat`` file is not even re-assembled on a warm load.
        """
        return hashlib.sha256((b"wat\0" if is_text else b"wasm\0") + source).hexdigest()

    def load(self, source: bytes, *, is_text: bool, name: str = "<module>") -> CacheResult:
        """Return the compiled module for ``source`` (wasm binary or WAT text).

        Raises ``wasmtime.WasmtimeError`` when the source does not compile.
        """
        digest = self.digest(source, is_text=is_text)
        path = self.path_for(digest)
        if path is not None:
            module = self._read(path)
            if module is not None:
                self.hits += 1
                return CacheResult(module, digest, "hit", path)
        binary = bytes(wasmtime.wat2wasm(source.decode("utf-8"))) if is_text else source
        module = wasmtime.Module(self.engine, binary)
        self.misses += 1
        if path is None:
            return CacheResult(module, digest, "disabled", None)
        self._write(path, module, name)
        return CacheResult(module, digest, "miss", path)

    def _read(self, path: Path) -> wasmtime.Module | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read compiled module %s (%s); recompiling", path, exc)
            return None
        body, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
        if len(data) <= _DIGEST_BYTES or hashlib.sha256(body).digest() != digest:
            log.warning("compiled module %s is corrupt (checksum mismatch); recompiling", path)
            self._discard(path)
            return None
        try:
            return wasmtime.Module.deserialize(self.engine, body)
        except wasmtime.WasmtimeError as exc:
            # wasmtime checks its own version/config header too; never trust a stale artefact
            log.warning(
                "compiled module %s is not usable by this engine (%s); recompiling",
                path,
                str(exc).splitlines()[0],
            )
            self._discard(path)
            return None

    def _write(self, path: Path, module: wasmtime.Module, name: str) -> None:
        try:
            body = bytes(module.serialize())
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".cwasm")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(body)
                    fh.write(hashlib.sha256(body).digest())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            # the cache is an optimisation: a read-only or full disk must not fail the load
            log.warning("cannot cache compiled module %s at %s: %s", name, path, exc)

    @staticmethod
    def _discard(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()
