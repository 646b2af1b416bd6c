"""How fast the ``plughost`` command answers: ``--help`` and ``list`` beside ``python -c pass``.

    python bench/bench_cli.py [--sizes 10,100,1000,10000] [--repeat 7]

For each size a fresh home gets that many installed plugins, written straight through the
repository as ``bench_scale.py`` does (rows, unpacked files, package blobs, as installs leave
them). Then ``--repeat`` rounds, each running ``python -c pass`` (the floor), ``plughost --help``
and ``plughost list --home HOME`` (plain output, piped) one after the other, so the three share
the machine's load; the medians of wall time and of CPU time (user + system of the child) are
printed, with the ratios. CPU time is the steadier figure on a busy machine.

The children run with bytecode caching on (as an installed plughost has its ``.pyc`` files),
after one warm-up run of each command.

Goals (issues 17 and 18): ``--help`` <= 150 ms and ``list`` at 100 plugins <= 300 ms on this
machine; ``list`` <= 2x ``--help`` at every size.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import populate  # noqa: E402

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(SRC)


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``cmd`` (its output discarded)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(home: Path, repeat: int) -> dict[str, tuple[float, float]]:
    commands = {
        "pass": [sys.executable, "-c", "pass"],
        "help": [sys.executable, "-m", "plughost", "--help"],
        "list": [sys.executable, "-m", "plughost", "list", "--home", str(home), "-o", "plain"],
    }
    for cmd in commands.values():
        timed(cmd)  # warm-up: .pyc files written, pages cached
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, cmd in commands.items():
            runs[name].append(timed(cmd))
    return {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
            for name, r in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be at least 5 (medians of at least 5 runs)")
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="plughost-bench-cli-") as name:
        home, installed = Path(name) / "home", 0  # one home, grown from one size to the next
        for size in sorted(sizes):
            start = time.perf_counter()
            populate(home, installed, size)
            installed = size
            print(f"size {size}: installed in {time.perf_counter() - start:.1f} s", flush=True)
            results[size] = measure(home, args.repeat)
    print(f"\nmedians of {args.repeat} rounds (ms), the floor measured in each round")
    print(f"{'installed':>9} | {'pass':>5} {'help':>5} {'list':>6} | {'help/pass':>9} "
          f"{'list/pass':>9} {'list/help':>9} | cpu: {'pass':>5} {'help':>5} {'list':>6} "
          f"{'list/help':>9}")
    for size, r in results.items():
        (pw, pc), (hw, hc), (lw, lc) = r["pass"], r["help"], r["list"]
        print(f"{size:>9} | {pw * 1e3:5.0f} {hw * 1e3:5.0f} {lw * 1e3:6.0f} | {hw / pw:9.2f} "
              f"{lw / pw:9.2f} {lw / hw:9.2f} |      {pc * 1e3:5.0f} {hc * 1e3:5.0f} "
              f"{lc * 1e3:6.0f} {lc / hc:9.2f}")
    print("goals: help <= 150 ms; list <= 300 ms at 100 installed; list/help <= 2 at every size")


if __name__ == "__main__":
    main()
