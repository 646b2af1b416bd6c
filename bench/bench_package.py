"""Package hot path: pack, sign, verify and safe-extract a 1 MiB signed package (~300 files).

Run: python bench/bench_package.py [--files N] [--size BYTES] [--repeat N]

Prints the median of each step and, as the peer, plain ``zipfile.ZipFile.extractall`` (no
checks at all) so the cost of safety is visible as a ratio. The installer's path is
"open + signature + extract": one decompression pass, integrity checked while extracting.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from plughost.security.package import open_package, pack
from plughost.security.signing import (
    SignaturePolicy,
    TrustStore,
    sign,
    verify,
    verify_signature,
)


def make_plugin(root: Path, files: int, size: int) -> None:
    rng = random.Random(42)
    words = [f"name_{i}" for i in range(400)] + ["def", "return", "self", "import", "class"]
    (root / "plugin.toml").write_text('id = "bench-plugin"\nname = "Bench"\nversion = "1.0.0"\n'
                                      'entry = "bench_plugin:Plugin"\n')
    (root / "bench_plugin").mkdir()
    (root / "bench_plugin" / "__init__.py").write_text("class Plugin:\n    pass\n")
    per = size // files
    for i in range(files):
        sub = root / "bench_plugin" / f"pkg{i % 12}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 10 == 0:  # some incompressible assets
            data = rng.randbytes(per)
        else:
            text = " ".join(rng.choice(words) for _ in range(per // 6))
            data = text.encode()[:per]
        (sub / f"mod_{i}.py").write_bytes(data)


def timed(fn: Callable[[], object], repeat: int, setup: Callable[[], None] | None = None) -> float:
    samples = []
    for _ in range(repeat):
        if setup:
            setup()
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="plughost-bench-"))
    try:
        src = work / "src"
        src.mkdir()
        make_plugin(src, args.files, args.size)
        key = Ed25519PrivateKey.generate()
        store = TrustStore(work / "trust.json")
        store.add(key.public_key(), "bench")
        pkg_path = work / "bench-plugin-1.0.0.zip"
        rows: list[tuple[str, float]] = []
        rows.append(("pack", timed(lambda: pack(src, pkg_path), args.repeat)))
        rows.append(("sign", timed(lambda: sign(pkg_path, key), args.repeat)))
        size = pkg_path.stat().st_size
        # Each run extracts into a fresh folder (as the installer's content-addressed cache
        # does); deleting trees between runs would time the file system's deletes instead.
        counter = iter(range(1_000_000))
        dest = work / "out"

        def clean() -> None:
            nonlocal dest
            dest = work / f"out{next(counter)}"

        def open_and_signature() -> None:
            with open_package(pkg_path) as pkg:
                verify_signature(pkg.info, store, SignaturePolicy())

        def install_path() -> None:  # what the installer does: one decompression pass
            with open_package(pkg_path) as pkg:
                verify_signature(pkg.info, store, SignaturePolicy())
                pkg.extract(dest)

        def full_verify_then_extract() -> None:  # `plughost verify` + extract: two passes
            verify(pkg_path, store)
            with open_package(pkg_path) as pkg:
                pkg.extract(dest)

        def peer() -> None:
            with zipfile.ZipFile(pkg_path) as zf:
                zf.extractall(dest)

        rows.append(("open + structure + signature", timed(open_and_signature, args.repeat)))
        rows.append(("verify (all files hashed)", timed(lambda: verify(pkg_path, store),
                                                        args.repeat)))
        install = timed(install_path, args.repeat, clean)
        rows.append(("open + signature + safe extract", install))
        rows.append(("verify + safe extract (2 passes)",
                     timed(full_verify_then_extract, args.repeat, clean)))
        base = timed(peer, args.repeat, clean)
        rows.append(("peer: zipfile.extractall (no checks)", base))
        print(f"package: {args.files} files, {args.size} bytes unpacked, {size} bytes packed; "
              f"median of {args.repeat} on {os.cpu_count()} CPUs")
        print(f"{'step':40} {'ms':>8} {'vs zipfile':>11}")
        for name, ms in rows:
            print(f"{name:40} {ms:8.2f} {ms / base:10.2f}x")
    finally:
        from plughost.security.archive import remove_tree

        remove_tree(work)


if __name__ == "__main__":
    main()
