"""bench/bench_market.py's pip peer: its local index server keeps quiet (the bench's output is
its table, not one stderr line per request pip makes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_market.py"


def test_the_pip_peer_prints_its_row_and_no_request_log(tmp_path: Path,
                                                        capfd: pytest.CaptureFixture[str]
                                                        ) -> None:
    spec = importlib.util.spec_from_file_location("bench_market_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    try:
        spec.loader.exec_module(bench)
        bench.bench_pip(tmp_path, 1)  # a real pip download of six wheels over loopback HTTP
    finally:
        del sys.modules[spec.name]
    out, err = capfd.readouterr()
    assert "pip download" in out
    assert "GET /" not in err and err == "", err
