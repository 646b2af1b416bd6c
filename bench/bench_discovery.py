"""Discovery, validation, resolution and eager loading, against a parsing floor, pluggy,
stevedore and importlib.

    python bench/bench_discovery.py [--sizes 10,100,1000,10000] [--eager 200] [--repeat 5]

Measures, in one run on the same generated plugins:
  1. at each size N (10 / 100 / 1,000 / 10,000 lazy plugins, nothing imported), beside the floor
     measured in the same run (``stat`` + read + ``tomllib`` of every ``plugin.toml``: what any
     discovery must at least do without a cache): discover + validate + resolve cold (goal
     <= 1.5x the floor), the same with the discovery cache filled (goal <= 0.5x), and resolve
     alone (per plugin: near-linear means about flat from one size to the next);
  2. eager load of M plugins, per plugin: plughost (load, and load + activate), a bare
     ``importlib.import_module`` of the same module (the floor), pluggy (import + ``pm.register``),
     stevedore (``ExtensionManager`` over entry points, invoke_on_load). Goal: plughost load
     within 1.2x the bare import.
Every figure is the median of ``--repeat`` runs (at least 5; the lazy rounds go on for 3 s
past them, since a round of 10 plugins takes milliseconds), each floor interleaved with the
runs it is compared to; every figure is CPU time (``time.process_time``: the work is all CPU
once the files are in the page cache, and CPU time holds still on a shared machine). Every contender imports freshly generated modules whose bytecode was
compiled beforehand, so nobody pays for compilation and nobody gets another's cached module.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import gc
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import tomllib
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


def write_eager_plugins(root: Path, count: int, prefix: str = "e") -> None:
    for i in range(count):
        folder = root / f"{prefix}{i:04d}"
        folder.mkdir(parents=True)
        (folder / "plugin.toml").write_text(
            f'id = "{prefix}{i:04d}"\nname = "Eager {i}"\nversion = "1.0.0"\n'
            'entry = "main:Plugin"\n'
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


def bench_lazy(tmp: Path, count: int, repeat: int) -> dict[str, float]:
    """Seconds (medians) for ``count`` lazy plugins: floor, cold, cached, resolve alone.

    As in ``bench_scale.py``: each timed run starts from a collected heap (``gc.collect()``
    first, outside the timing, for the floor too), so that no run is charged for collecting
    the previous run's host; and the cache is filled once the manifests are older than the
    discovery cache's settling time, so the cached figure is what an unchanged plugin costs
    (a manifest written moments ago is read and checked against its digest until then)."""
    from plughost.core.discovery import _SETTLE_NS

    plugins = tmp / f"lazy-{count}"
    write_lazy_plugins(plugins, count)
    home = tmp / f"home-{count}"

    def floor() -> float:
        gc.collect()
        t0 = time.process_time()
        for entry in os.scandir(plugins):
            path = os.path.join(entry.path, "plugin.toml")
            os.stat(path)
            with open(path, "rb") as fh:
                tomllib.load(fh)
        return time.process_time() - t0

    def run(cache: bool) -> tuple[float, float]:
        gc.collect()
        t0 = time.process_time()
        host = PluginHost([plugins], home=home, discovery_cache=cache)  # reads the cache file
        host.discover()
        t1 = time.process_time()
        order = host.resolve()
        t2 = time.process_time()
        assert len(order) == count, (len(order), host.report())
        return t2 - t0, t2 - t1

    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in (
        Path(entry.path, "plugin.toml").stat() for entry in os.scandir(plugins)))
    time.sleep(max(0.0, (newest + _SETTLE_NS - time.time_ns()) / 1e9 + 0.1))
    run(True)  # fill the discovery cache
    times: dict[str, list[float]] = {"floor": [], "cold": [], "cached": [], "resolve": []}
    # Interleaved: the machine's load moves all of them alike. A round of a few plugins takes
    # a few milliseconds, and one the machine slows shifts a median of five: as in
    # bench_scale.py, rounds go on past ``repeat`` until they have taken ROUND_SECONDS (at
    # most MAX_ROUNDS).
    started = time.perf_counter()
    while len(times["floor"]) < repeat or (time.perf_counter() - started < ROUND_SECONDS
                                           and len(times["floor"]) < MAX_ROUNDS):
        times["floor"].append(floor())
        total, resolve_only = run(False)
        times["cold"].append(total)
        times["resolve"].append(resolve_only)
        times["cached"].append(run(True)[0])
    return {**{k: statistics.median(v) for k, v in times.items()},
            "rounds": len(times["floor"])}


ROUND_SECONDS = 3.0
MAX_ROUNDS = 201


def bench_eager(tmp: Path, count: int, repeat: int) -> dict[str, float]:
    """Seconds (medians of ``repeat`` rounds) to load ``count`` eager plugins, per contender.

    Each round writes every contender's plugins afresh under new module names (an import
    already in ``sys.modules`` would cost nothing), then times them one after the other, so a
    slow moment of the machine falls on one round of each rather than on one contender."""
    times: dict[str, list[float]] = {}
    try:
        import pluggy
    except ImportError:
        pluggy = None
        print("pluggy not installed: pip install 'plughost[bench]'")
    try:
        from stevedore import ExtensionManager
    except ImportError:
        ExtensionManager = None
        print("stevedore not installed: pip install 'plughost[bench]'")

    def note(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    for r in range(repeat):
        base = tmp / f"eager-{r}"

        # plughost: load (import + instantiate), then activate, through the in-process runtime.
        eager = base / "plughost"
        write_eager_plugins(eager, count, prefix=f"r{r}e")

        async def plughost_run() -> tuple[float, float]:
            host = PluginHost([eager])  # noqa: B023  (run before the loop moves on)
            host.discover()
            order = host.resolve()
            gc.disable()
            t0 = time.process_time()
            for pid in order:
                await host.load(pid)
            t1 = time.process_time()
            for pid in order:
                await host.activate(pid)
            t2 = time.process_time()
            gc.enable()
            await host.aclose()
            return t1 - t0, t2 - t0

        load_s, load_activate_s = asyncio.run(plughost_run())
        note("plughost load", load_s)
        note("plughost load+activate", load_activate_s)

        # The floor: a bare import of the same code, then instantiating the class.
        names = write_flat_modules(base / "bare", f"bench_bare_{r}_", count)
        sys.path.insert(0, str(base / "bare"))
        gc.disable()
        t0 = time.process_time()
        for name in names:
            importlib.import_module(name).Plugin()
        note("importlib import (floor)", time.process_time() - t0)
        gc.enable()

        # pluggy: import the same code and register the plugin objects.
        if pluggy is not None:
            names = write_flat_modules(base / "pluggy", f"bench_pluggy_{r}_", count)
            sys.path.insert(0, str(base / "pluggy"))
            pm = pluggy.PluginManager("bench")
            gc.disable()
            t0 = time.process_time()
            for name in names:
                pm.register(importlib.import_module(name).Plugin(), name=name)
            note("pluggy import+register", time.process_time() - t0)
            gc.enable()

        # stevedore: entry points of an installed distribution, loaded and instantiated.
        if ExtensionManager is not None:
            sted_dir = base / "stevedore"
            names = write_flat_modules(sted_dir, f"bench_sted_{r}_", count)
            dist = sted_dir / f"bench_sted_{r}-1.0.dist-info"
            dist.mkdir()
            (dist / "METADATA").write_text(
                f"Metadata-Version: 2.1\nName: bench-sted-{r}\nVersion: 1.0\n")
            (dist / "entry_points.txt").write_text(
                f"[plughost.bench{r}]\n" + "".join(f"{n} = {n}:Plugin\n" for n in names)
            )
            sys.path.insert(0, str(sted_dir))
            importlib.invalidate_caches()
            gc.disable()
            t0 = time.process_time()
            manager = ExtensionManager(f"plughost.bench{r}", invoke_on_load=True)
            note("stevedore ExtensionManager", time.process_time() - t0)
            gc.enable()
            assert len(manager.extensions) == count, len(manager.extensions)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--eager", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be at least 5 (every figure is a median of 5 runs or more)")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    tmp = Path(tempfile.mkdtemp(prefix="plughost-bench-"))
    try:
        print(f"lazy plugins: discover + validate + resolve, medians of {args.repeat} rounds or "
              f"more (as many as fit in {ROUND_SECONDS:g} s, up to {MAX_ROUNDS}); floor = "
              "stat + read + tomllib of every plugin.toml, same run")
        head = (f"  {'plugins':>8} {'floor ms':>9} {'cold ms':>9} {'x floor':>8} "
                f"{'cached ms':>10} {'x floor':>8} {'resolve ms':>11} {'µs/plugin':>10}")
        print(head)
        print("  " + "-" * (len(head) - 2))
        verdicts = []
        rounds: list[tuple[int, int]] = []
        for size in sizes:
            r = bench_lazy(tmp, size, args.repeat)
            rounds.append((size, int(r["rounds"])))
            cold, cached = r["cold"] / r["floor"], r["cached"] / r["floor"]
            verdicts.append((size, cold <= 1.5, cached <= 0.5))
            print(f"  {size:>8,} {r['floor'] * 1e3:9.1f} {r['cold'] * 1e3:9.1f} {cold:7.2f}x "
                  f"{r['cached'] * 1e3:10.1f} {cached:7.2f}x {r['resolve'] * 1e3:11.1f} "
                  f"{r['resolve'] * 1e6 / size:10.1f}")
        print("  rounds (medians of): " + ", ".join(f"{size:,} {n}" for size, n in rounds))
        print("  goals: cold <= 1.5x floor, cached <= 0.5x floor: " + ", ".join(
            f"{size:,} {'OK' if c and k else 'MISSED'}" for size, c, k in verdicts))

        if args.eager:
            results = bench_eager(tmp, args.eager, args.repeat)
            floor = results["importlib import (floor)"]
            print(f"\n{args.eager} eager plugins: per plugin, ratio to a bare import "
                  f"(medians of {args.repeat} rounds)")
            print(f"  {'contender':<30}{'ms/plugin':>10}{'ratio':>8}")
            for name, seconds in results.items():
                per = seconds * 1000 / args.eager
                print(f"  {name:<30}{per:10.3f}{seconds / floor:8.2f}x")
            ratio = results["plughost load"] / floor
            print(f"  goal: plughost load <= 1.2x bare import: "
                  f"{'OK' if ratio <= 1.2 else 'MISSED'} ({ratio:.2f}x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
