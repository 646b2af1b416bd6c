"""Pack a plugin, sign it, trust the key, verify and extract — the package workflow in Python."""

from __future__ import annotations

import tempfile
from pathlib import Path

from plughost.security.package import open_package, pack
from plughost.security.signing import SignaturePolicy, TrustStore, keygen, sign, verify

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notify-slack"


def main(plugin_dir: Path = EXAMPLE) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        package = pack(plugin_dir, work)                  # work/notify-slack-<version>.zip
        private_key, public_key = keygen(work / "keys", "acme")
        sign(package, private_key)                        # adds PLUGHOST-SIGNATURE.json

        store = TrustStore.for_home(work / "home")        # <home>/trust.json
        store.add(public_key, "Acme")

        result = verify(package, store, SignaturePolicy("always"))
        with open_package(package) as pkg:                # the installer's single pass:
            pkg.extract(work / "installed")               # integrity checked while extracting
        files = sorted(p.name for p in (work / "installed").iterdir())
        return {"plugin": result.plugin_id, "signed_by": result.key_name, "files": files}


if __name__ == "__main__":
    print(main())
