"""The gRPC and native runtimes' half of bench/bench_runtimes.py (sections ``grpc`` and
``native``), each figure the median of 5 runs (``--quick``: 3) with its floor from the same run:

gRPC: a unary round trip through the runtime (``instance.call``) against a bare grpcio echo —
the same aio client calling the same server type (a sync ``grpc.server``, one thread pool) on the
same Unix socket, no plughost layer; load-to-ready (spawn, handshake line, health SERVING,
Activate) against ``python -c 'import grpc'``.

native: an in-process call through the runtime (``local_callable``, what ``host.call`` uses)
against a bare ``ctypes`` call of the same library function with the same JSON bytes; an
isolated call (child process) against the process runtime's round trip to a Python plugin doing
the same; load (open, ABI check, init) of a trusted library.

    python bench/bench_runtimes.py grpc native
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from plughost.core.manifest import manifest_from_dict  # noqa: E402

EXAMPLE_C = ROOT / "examples" / "native-c-counter"
EXAMPLE_GRPC = ROOT / "examples" / "grpc-python-echo"
PYECHO = ROOT / "tests" / "runtimes" / "process" / "plugins" / "pyecho"
CTX = SimpleNamespace(config=MappingProxyType({}), data_dir=None)


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def _per_call(inst: Any, target: str, n: int, warm: int = 500) -> float:
    """Seconds per ``await inst.call(target, {})``, after ``warm`` calls."""
    for _ in range(warm):
        await inst.call(target, {})
    start = time.perf_counter()
    for _ in range(n):
        await inst.call(target, {})
    return (time.perf_counter() - start) / n


# --- native --------------------------------------------------------------------------------------
def _built_counter(tmp: Path) -> Path:
    from tests.fixtures.native import build_library

    folder = tmp / "native-c-counter"
    shutil.copytree(EXAMPLE_C, folder, ignore=shutil.ignore_patterns("*.so"))
    build_library(folder / "counter.c", folder / "counter.so")
    return folder


def bare_ctypes_call(lib_path: Path, n: int) -> float:
    """Seconds per bare ctypes call of plughost_call("get", "{}") plus plughost_free."""
    lib = ctypes.CDLL(str(lib_path))
    lib.plughost_call.restype = ctypes.c_int32
    lib.plughost_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                  ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.POINTER(ctypes.c_size_t)]
    lib.plughost_free.argtypes = [ctypes.c_void_p]
    out, size = ctypes.c_void_p(), ctypes.c_size_t()
    call, free, at = lib.plughost_call, lib.plughost_free, ctypes.string_at
    ref_out, ref_size = ctypes.byref(out), ctypes.byref(size)
    start = time.perf_counter()
    for _ in range(n):
        call(b"get", b"{}", 2, ref_out, ref_size)
        at(out.value, size.value)
        free(out)
    return (time.perf_counter() - start) / n


def _manifest(folder: Path) -> Any:
    from plughost.core.manifest import load_manifest

    return load_manifest(folder)


async def native_inprocess(folder: Path, n: int) -> tuple[float, float]:
    """(seconds per call through local_callable, seconds to load)."""
    from plughost.runtimes.native import NativeRuntime

    runtime = NativeRuntime(inprocess={"*"})
    manifest = _manifest(folder)
    start = time.perf_counter()
    inst = await runtime.load(manifest, folder)
    load = time.perf_counter() - start
    await inst.start(CTX)
    fn = inst.local_callable("get")
    assert fn is not None
    for _ in range(1000):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    per_call = (time.perf_counter() - start) / n
    await runtime.aclose()
    return per_call, load


async def native_isolated(folder: Path, n: int) -> tuple[float, float]:
    """(seconds per call, seconds load-to-ready: load + start, cold: no warm spare)."""
    from plughost.runtimes.native import NativeRuntime
    from plughost.runtimes.process.runtime import ProcessOptions

    runtime = NativeRuntime(options=ProcessOptions(warm_spare=False))
    start = time.perf_counter()
    inst = await runtime.load(_manifest(folder), folder)
    await inst.start(CTX)
    ready = time.perf_counter() - start
    per_call = await _per_call(inst, "get", n)
    await runtime.aclose()
    return per_call, ready


async def native_isolated_warm(folder: Path) -> float:
    """Seconds load-to-ready of an isolated native plugin taken by the warm spare (the spare is
    started after a first plugin's cold load; the second plugin takes it)."""
    from plughost.runtimes.native import NativeRuntime
    from plughost.runtimes.process.runtime import ProcessOptions

    runtime = NativeRuntime(options=ProcessOptions(warm_spare=True))
    first = _manifest(folder)
    await (await runtime.load(first, folder)).start(CTX)
    for _ in range(2000):  # the spare is started in the background
        if runtime.children._spare is not None:
            break
        await asyncio.sleep(0.005)
    second = manifest_from_dict({**first.to_dict(), "id": "second-counter"})
    start = time.perf_counter()
    inst = await runtime.load(second, folder)
    await inst.start(CTX)
    ready = time.perf_counter() - start
    assert inst.stats()["started"] == "spare", inst.stats()
    await runtime.aclose()
    return ready


async def process_round_trip(n: int) -> tuple[float, float]:
    """(seconds per call, seconds load-to-ready of a plain Python class, cold)."""
    from plughost.runtimes.process.runtime import ProcessOptions, ProcessRuntime

    runtime = ProcessRuntime(options=ProcessOptions(warm_spare=False))
    manifest = manifest_from_dict({"id": "pyecho", "name": "pyecho", "version": "1.0.0",
                                   "runtime": "process", "entry": "pyecho_plugin:Echo"})
    start = time.perf_counter()
    inst = await runtime.load(manifest, PYECHO)
    await inst.start(CTX)
    ready = time.perf_counter() - start
    per_call = await _per_call(inst, "say", n)
    await runtime.aclose()
    return per_call, ready


async def native_rows(quick: bool) -> list[dict[str, Any]]:
    runs = 3 if quick else 5
    calls = 20_000 if quick else 100_000
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = _built_counter(Path(tmp))
        lib = folder / "counter.so"
        bare, inproc, loads = [], [], []
        for _ in range(runs):
            bare.append(bare_ctypes_call(lib, calls))
            per_call, load = await native_inprocess(folder, calls)
            inproc.append(per_call)
            loads.append(load)
        rows.append(dict(section="native", what="in-process call (local_callable)",
                         value=_median(inproc) * 1e6, unit="µs", peer="bare ctypes call",
                         peer_value=_median(bare) * 1e6, goal="≤ 2x"))
        rows.append(dict(section="native", what="load, trusted (open, ABI check, init)",
                         value=_median(loads) * 1e3, unit="ms", goal="≤ 5 ms"))
        iso, proc, iso_ready, proc_ready, iso_warm = [], [], [], [], []
        n = 2000 if quick else 5000
        for _ in range(runs):
            per_call, ready = await process_round_trip(n)
            proc.append(per_call)
            proc_ready.append(ready)
            per_call, ready = await native_isolated(folder, n)
            iso.append(per_call)
            iso_ready.append(ready)
            iso_warm.append(await native_isolated_warm(folder))
        rows.append(dict(section="native", what="isolated call (child process)",
                         value=_median(iso) * 1e6, unit="µs", peer="process runtime round trip",
                         peer_value=_median(proc) * 1e6, goal="≤ 1.2x"))
        rows.append(dict(section="native", what="load-to-ready, isolated (cold child)",
                         value=_median(iso_ready) * 1e3, unit="ms",
                         peer="process runtime, Python plugin, cold",
                         peer_value=_median(proc_ready) * 1e3))
        rows.append(dict(section="native", what="load-to-ready, isolated (warm spare)",
                         value=_median(iso_warm) * 1e3, unit="ms"))
    return rows


# --- gRPC ----------------------------------------------------------------------------------------
_BARE_SERVER = r"""
import os, sys
from concurrent import futures
import grpc
from plughost.runtimes.grpc import plughost_pb2 as pb, plughost_pb2_grpc as pb_grpc

class Echo(pb_grpc.PluginServicer):
    def Call(self, request, context):
        return pb.CallResponse(result_json=request.args_json)

server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
pb_grpc.add_PluginServicer_to_server(Echo(), server)
server.add_insecure_port("unix:" + sys.argv[1])
server.start()
print("ready", flush=True)
server.wait_for_termination()
"""


async def bare_grpc_echo(n: int) -> float:
    import grpc

    from plughost.runtimes.grpc import plughost_pb2 as pb
    from plughost.runtimes.grpc import plughost_pb2_grpc as pb_grpc

    sock_dir = tempfile.mkdtemp(prefix="bench-grpc-")
    path = os.path.join(sock_dir, "echo.sock")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _BARE_SERVER, path], env=env,  # noqa: ASYNC220
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    try:
        async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
            stub = pb_grpc.PluginStub(channel)
            request = pb.CallRequest(target="count", args_json="{}")
            for _ in range(300):
                await stub.Call(request, timeout=30)
            start = time.perf_counter()
            for _ in range(n):
                await stub.Call(request, timeout=30)
            return (time.perf_counter() - start) / n
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(sock_dir, ignore_errors=True)


async def grpc_runtime(n: int) -> tuple[float, float]:
    """(seconds per instance.call, seconds load-to-ready: load + start)."""
    from plughost.runtimes.grpc import GrpcRuntime

    runtime = GrpcRuntime()
    manifest = _manifest(EXAMPLE_GRPC)
    start = time.perf_counter()
    inst = await runtime.load(manifest, EXAMPLE_GRPC)
    await inst.start(CTX)
    ready = time.perf_counter() - start
    per_call = await _per_call(inst, "echo", n, warm=300)
    await runtime.aclose()
    return per_call, ready


def python_import_grpc() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import grpc"], check=True)
    return time.perf_counter() - start


async def grpc_rows(quick: bool) -> list[dict[str, Any]]:
    runs = 3 if quick else 5
    n = 1000 if quick else 3000
    bare, calls, ready, floor = [], [], [], []
    for _ in range(runs):
        bare.append(await bare_grpc_echo(n))
        per_call, to_ready = await grpc_runtime(n)
        calls.append(per_call)
        ready.append(to_ready)
        floor.append(python_import_grpc())
    return [
        dict(section="grpc", what="unary round trip (instance.call)", value=_median(calls) * 1e6,
             unit="µs", peer="bare grpcio echo, same socket", peer_value=_median(bare) * 1e6,
             goal="≤ 1.1x"),
        dict(section="grpc", what="load-to-ready (spawn, handshake, health, Activate)",
             value=_median(ready) * 1e3, unit="ms", peer="python -c 'import grpc'",
             peer_value=_median(floor) * 1e3, goal="≤ 150 ms"),
    ]


def section_rows(name: str, quick: bool) -> list[dict[str, Any]]:
    """The rows of section ``name`` (``grpc`` or ``native``), on an event loop of their own."""
    make = grpc_rows if name == "grpc" else native_rows
    return asyncio.run(make(quick))


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for section in [a for a in sys.argv[1:] if not a.startswith("-")] or ["native", "grpc"]:
        for row in section_rows(section, quick):
            print(row)
