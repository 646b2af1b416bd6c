"""What a plugin author sees: a save to the ``↻ reloaded`` line of ``plughost dev``.

    python bench/bench_dev_reload.py [--saves 5] [--debounce 0.2]

For each template (``plughost new --runtime python|process|wasm``) a real ``plughost dev``
runs on a fresh folder; a line is appended to the plugin's code ``--saves`` times, 0.6 s
apart, and the time from the write to the ``↻ reloaded`` line read from the terminal's pipe
is taken. Printed: its median (and each run), and the median of the ``in N ms`` the loop
prints (the reload itself, without the debounce and the time to notice the save). The load
average is printed before and after: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

SRC = Path(__file__).resolve().parent.parent / "src"
#: The file each template's code is in, and a comment line in its language.
TEMPLATES = {"python": ("plugin.py", "\n# save {}\n"), "process": ("main.js", "\n// save {}\n"),
             "wasm": ("plugin.wat", "\n;; save {}\n")}


def pump(stream: IO[str], lines: queue.Queue[tuple[float, str]]) -> None:
    for line in stream:
        lines.put((time.perf_counter(), line))


def measure(runtime: str, saves: int, debounce: float) -> tuple[list[float], list[float]]:
    """(save → line seconds, the loop's own ``in N ms`` in seconds), one per save."""
    name, comment = TEMPLATES[runtime]
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200"}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "plughost", "new", "greeter", "--runtime",
                        runtime, "--dir", tmp], env=env, check=True, capture_output=True)
        folder = Path(tmp) / "greeter"
        proc = subprocess.Popen(
            [sys.executable, "-m", "plughost", "dev", str(folder), "--debounce", str(debounce),
             "--home", str(Path(tmp) / "home")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=pump, args=(proc.stdout, lines), daemon=True).start()
        totals: list[float] = []
        inside: list[float] = []
        try:
            while "watching" not in lines.get(timeout=60)[1]:
                pass
            for i in range(saves):
                time.sleep(0.6)
                t0 = time.perf_counter()
                with (folder / name).open("a") as fh:
                    fh.write(comment.format(i))
                while True:
                    at, line = lines.get(timeout=60)
                    if "reloaded" in line:
                        found = re.search(r" in (\d+) ms", line)
                        assert found is not None, line
                        totals.append(at - t0)
                        inside.append(int(found.group(1)) / 1000)
                        break
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return totals, inside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--debounce", type=float, default=0.2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"save -> '↻ reloaded' in plughost dev (median of {args.saves}; debounce "
          f"{args.debounce * 1000:.0f} ms)")
    for runtime in TEMPLATES:
        totals, inside = measure(runtime, args.saves, args.debounce)
        runs = ", ".join(f"{t * 1000:.0f}" for t in totals)
        print(f"{runtime:<8} {statistics.median(totals) * 1000:6.0f} ms  (runs {runs}); "
              f"the reload itself {statistics.median(inside) * 1000:.0f} ms")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
