"""The committed Python stubs are what grpcio-tools generates from the committed plughost.proto.

Regenerate with:
    python -m grpc_tools.protoc -Isrc --python_out=src --grpc_python_out=src --pyi_out=src \\
        src/plughost/runtimes/grpc/plughost.proto
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"
PACKAGE = Path("plughost") / "runtimes" / "grpc"
GENERATED = ("plughost_pb2.py", "plughost_pb2.pyi", "plughost_pb2_grpc.py")


def test_generated_stubs_are_current(tmp_path: Path) -> None:
    (tmp_path / PACKAGE).mkdir(parents=True)
    shutil.copy(SRC / PACKAGE / "plughost.proto", tmp_path / PACKAGE / "plughost.proto")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}",
         str(tmp_path / PACKAGE / "plughost.proto")],
        check=True, capture_output=True, text=True)
    for name in GENERATED:
        fresh = (tmp_path / PACKAGE / name).read_text()
        assert (SRC / PACKAGE / name).read_text() == fresh, (
            f"{name} is stale; regenerate it (see this module's docstring)")
