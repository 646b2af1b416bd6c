"""The dashboard's first load and refresh in Chromium, beside 10 to 10,000 installed plugins.

Setup per size: a fresh home with N installed plugins (the rows and files an install writes,
from bench_scale.populate), ``plughost serve`` in a subprocess; Debian's Chromium through Playwright.

Measured, median of >= 5 fresh page loads per size:

* interactive: from navigation start until the plugin list shows its first page of rows with
  their buttons ("Showing 1–50 of N"): the ``plugins-usable`` mark the page sets when it
  renders them (the driver's polling would add its own delay);
* bytes: HTML + CSS + JS of the dashboard itself (not /docs, not the lazily loaded chart);
* floor (same run, same browser): navigating to a static file of the same server
  (``/dashboard/app.css``) until it is loaded — the browser's and server's own overhead;
* a refresh, what the page does on every change the server announces (a plugin activated,
  an operation finished): its time until the list, its counts and its health are on screen
  again, the API requests it made and the bytes they answered (a page's worth, whatever is
  installed, is the goal of issue 18).

Goals (issue 13): first load <= 150 KB; interactive <= 300 ms with 1,000 plugins.

    python bench/bench_dashboard.py [--sizes 10,100,1000,10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

GOAL_KB = 150
GOAL_MS = 300.0
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def make_home(home: Path, count: int) -> None:
    """``count`` installed plugins, written as an install writes them (bench_scale's
    ``populate``: the same rows and files as real installs, without minutes of setup)."""
    from bench_scale import populate

    populate(home, 0, count)


def measure(base: str, count: int, runs: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    shown = f"of {count}"
    loads: list[float] = []
    floors: list[float] = []
    refreshes: list[float] = []
    requests: list[int] = []
    answers: list[int] = []
    sizes: dict[str, int] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            for run in range(runs + 1):  # the first run warms the server's caches: not counted
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                if run == 1:
                    def record(response) -> None:  # type: ignore[no-untyped-def]
                        path = urlsplit(response.url).path
                        if path == "/" or path.startswith("/dashboard/"):
                            # a response still arriving as the page closes has no body
                            with contextlib.suppress(Exception):
                                sizes[path] = len(response.body())
                    page.on("response", record)
                page.goto(base + "/")
                page.wait_for_function(
                    "t => (document.getElementById('plugin-range') || {}).textContent?.endsWith(t)"
                    " && document.querySelectorAll('tbody tr[data-plugin] button').length > 0",
                    arg=shown, timeout=60_000)
                # when the page itself saw the list usable (its own mark), not when the
                # test driver's polling noticed
                ms = page.evaluate(
                    "() => performance.getEntriesByName('plugins-usable')[0].startTime")
                api: list[int] = []

                def answered(response, api: list[int] = api) -> None:  # type: ignore[no-untyped-def]
                    if "/api/v1/" in response.url:
                        with contextlib.suppress(Exception):
                            api.append(len(response.body()))
                page.on("response", answered)
                refresh_ms = page.evaluate(
                    "async () => { const t = performance.now(); await App.page.refresh();"
                    " return performance.now() - t; }")
                page.wait_for_timeout(50)  # the last response's body
                page.remove_listener("response", answered)
                t0 = time.perf_counter()
                page.goto(base + "/dashboard/app.css")
                floor = (time.perf_counter() - t0) * 1000
                context.close()
                if run:
                    loads.append(ms)
                    floors.append(floor)
                    refreshes.append(refresh_ms)
                    requests.append(len(api))
                    answers.append(sum(api))
        finally:
            browser.close()
    return {"interactive_ms": statistics.median(loads), "floor_ms": statistics.median(floors),
            "bytes": float(sum(sizes.values())), "refresh_ms": statistics.median(refreshes),
            "refresh_requests": statistics.median(requests),
            "refresh_bytes": statistics.median(answers)}


def main() -> None:
    from tests.interfaces.http._server import running_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'plugins':>8} {'interactive ms':>15} {'floor ms':>9} {'ratio':>6} {'first load KB':>14}"
          f" {'refresh ms':>11} {'requests':>9} {'answer KB':>10}")
    results = {}
    for count in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            t0 = time.perf_counter()
            make_home(home, count)
            setup = time.perf_counter() - t0
            with running_server(home, timeout=300) as server:
                r = measure(server.base_url, count, args.runs)
        results[count] = r
        print(f"{count:>8} {r['interactive_ms']:>15.1f} {r['floor_ms']:>9.1f} "
              f"{r['interactive_ms'] / r['floor_ms']:>6.1f} {r['bytes'] / 1024:>14.1f}"
              f" {r['refresh_ms']:>11.1f} {r['refresh_requests']:>9.0f}"
              f" {r['refresh_bytes'] / 1024:>10.1f}   (setup {setup:.0f} s)", flush=True)
    biggest = results[max(results)]
    print(f"goal: first load <= {GOAL_KB} KB: {biggest['bytes'] / 1024:.1f} KB; interactive "
          f"<= {GOAL_MS:.0f} ms with {max(results)} plugins: {biggest['interactive_ms']:.1f} ms")


if __name__ == "__main__":
    main()
