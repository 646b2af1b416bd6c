"""Discovery, validation, resolution and eager loading, against pluggy, stevedore and importlib.

    python bench/bench_discovery.py [--lazy 1000] [--eager 200] [--repeat 5]

Measures, in one run on the same generated plugins:
  1. discover + validate + resolve N lazy plugins (nothing imported): cold, and with the
     discovery cache (goals: <= 150 ms cold, <= 50 ms cached for 1,000 plugins);
  2. eager load of M plugins, per plugin: plughost (load, and load + activate), a bare
     ``importlib.import_module`` of the same module (the floor), pluggy (import + ``pm.register``),
     stevedore (``ExtensionManager`` over entry points, invoke_on_load). Goal: plughost load
     within 1.2x the bare import.
Every contender imports freshly generated modules whose bytecode was compiled beforehand, so
nobody pays for compilation and nobody gets another's cached module.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import gc
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from plughost import PluginHost

PLUGIN_CODE = '''
class Plugin:
    """Generated benchmark plugin {i}."""

    def activate(self, ctx):
        self.ready = True

    def search(self, query):
        return [query, {i}]

    def health(self):
        return True
'''


def write_lazy_plugins(root: Path, count: int) -> None:
    for i in range(count):
        folder = root / f"p{i:04d}"
        folder.mkdir(parents=True)
        deps = f'\n[dependencies]\n"p{i // 2:04d}" = "^1.0"\n' if i else ""
        (folder / "plugin.toml").write_text(
            f'id = "p{i:04d}"\nname = "Plugin {i}"\nversion = "1.{i % 7}.{i % 3}"\n'
            f'description = "generated"\ntype = "music-source"\nentry = "main:Plugin"\n'
            f'activation = ["command:p{i:04d}.run"]\ntags = ["bench"]\n'
            f'[provides]\ncommands = ["p{i:04d}.run"]\n{deps}'
        )
        (folder / "main.py").write_text(PLUGIN_CODE.format(i=i))


def write_eager_plugins(root: Path, count: int) -> None:
    for i in range(count):
        folder = root / f"e{i:04d}"
        folder.mkdir(parents=True)
        (folder / "plugin.toml").write_text(
            f'id = "e{i:04d}"\nname = "Eager {i}"\nversion = "1.0.0"\nentry = "main:Plugin"\n'
        )
        (folder / "main.py").write_text(PLUGIN_CODE.format(i=i))
    compileall.compile_dir(str(root), quiet=1)


def write_flat_modules(root: Path, prefix: str, count: int) -> list[str]:
    root.mkdir(parents=True)
    names = []
    for i in range(count):
        name = f"{prefix}{i:04d}"
        (root / f"{name}.py").write_text(PLUGIN_CODE.format(i=i))
        names.append(name)
    compileall.compile_dir(str(root), quiet=1)
    return names


def median_ms(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat)) * 1000


def bench_lazy(tmp: Path, count: int, repeat: int) -> tuple[float, float]:
    plugins = tmp / "lazy"
    write_lazy_plugins(plugins, count)
    home = tmp / "home"

    def cold() -> float:
        host = PluginHost([plugins])
        t0 = time.perf_counter()
        host.discover()
        order = host.resolve()
        elapsed = time.perf_counter() - t0
        assert len(order) == count, (len(order), host.report())
        return elapsed

    def cached() -> float:
        host = PluginHost([plugins], home=home, discovery_cache=True)
        t0 = time.perf_counter()
        host.discover()
        order = host.resolve()
        elapsed = time.perf_counter() - t0
        assert len(order) == count
        return elapsed

    cold_ms = median_ms(cold, repeat)
    cached()  # populate the cache
    cached_ms = median_ms(cached, repeat)
    return cold_ms, cached_ms


def bench_eager(tmp: Path, count: int) -> dict[str, float]:
    results: dict[str, float] = {}

    # plughost: load (import + instantiate), then activate, through the in-process runtime.
    eager = tmp / "eager"
    write_eager_plugins(eager, count)

    async def plughost_run() -> tuple[float, float]:
        host = PluginHost([eager])
        host.discover()
        order = host.resolve()
        gc.disable()
        t0 = time.perf_counter()
        for pid in order:
            await host.load(pid)
        t1 = time.perf_counter()
        for pid in order:
            await host.activate(pid)
        t2 = time.perf_counter()
        gc.enable()
        await host.aclose()
        return t1 - t0, t2 - t0

    load_s, load_activate_s = asyncio.run(plughost_run())
    results["plughost load"] = load_s
    results["plughost load+activate"] = load_activate_s

    # The floor: a bare import of the same code, then instantiating the class.
    bare_dir = tmp / "bare"
    names = write_flat_modules(bare_dir, "bench_bare_", count)
    sys.path.insert(0, str(bare_dir))
    gc.disable()
    t0 = time.perf_counter()
    for name in names:
        importlib.import_module(name).Plugin()
    results["importlib import (floor)"] = time.perf_counter() - t0
    gc.enable()

    # pluggy: import the same code and register the plugin objects.
    try:
        import pluggy
    except ImportError:
        print("pluggy not installed: pip install 'plughost[bench]'")
    else:
        pluggy_dir = tmp / "pluggy"
        names = write_flat_modules(pluggy_dir, "bench_pluggy_", count)
        sys.path.insert(0, str(pluggy_dir))
        pm = pluggy.PluginManager("bench")
        gc.disable()
        t0 = time.perf_counter()
        for name in names:
            pm.register(importlib.import_module(name).Plugin(), name=name)
        results["pluggy import+register"] = time.perf_counter() - t0
        gc.enable()

    # stevedore: entry points of an installed distribution, loaded and instantiated.
    try:
        from stevedore import ExtensionManager
    except ImportError:
        print("stevedore not installed: pip install 'plughost[bench]'")
    else:
        sted_dir = tmp / "stevedore"
        names = write_flat_modules(sted_dir, "bench_sted_", count)
        dist = sted_dir / "bench_sted-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-sted\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(
            "[plughost.bench]\n" + "".join(f"{n} = {n}:Plugin\n" for n in names)
        )
        sys.path.insert(0, str(sted_dir))
        importlib.invalidate_caches()
        gc.disable()
        t0 = time.perf_counter()
        manager = ExtensionManager("plughost.bench", invoke_on_load=True)
        results["stevedore ExtensionManager"] = time.perf_counter() - t0
        gc.enable()
        assert len(manager.extensions) == count, len(manager.extensions)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lazy", type=int, default=1000)
    parser.add_argument("--eager", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="plughost-bench-"))
    try:
        cold_ms, cached_ms = bench_lazy(tmp, args.lazy, args.repeat)
        print(f"\n{args.lazy} lazy plugins: discover + validate + resolve (median of "
              f"{args.repeat})")
        print(f"  {'cold':<28}{cold_ms:9.1f} ms   {cold_ms * 1000 / args.lazy:7.1f} µs/plugin"
              f"   goal <= 150 ms  {'OK' if cold_ms <= 150 else 'MISSED'}")
        print(f"  {'with discovery cache':<28}{cached_ms:9.1f} ms   "
              f"{cached_ms * 1000 / args.lazy:7.1f} µs/plugin   goal <= 50 ms   "
              f"{'OK' if cached_ms <= 50 else 'MISSED'}")

        results = bench_eager(tmp, args.eager)
        floor = results["importlib import (floor)"]
        print(f"\n{args.eager} eager plugins: per plugin, ratio to a bare import")
        print(f"  {'contender':<30}{'ms/plugin':>10}{'ratio':>8}")
        for name, seconds in results.items():
            per = seconds * 1000 / args.eager
            print(f"  {name:<30}{per:10.3f}{seconds / floor:8.2f}x")
        ratio = results["plughost load"] / floor
        print(f"  goal: plughost load <= 1.2x bare import: {'OK' if ratio <= 1.2 else 'MISSED'} "
              f"({ratio:.2f}x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
