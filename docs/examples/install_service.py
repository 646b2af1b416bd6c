"""Install, update, roll back and uninstall a plugin through PluginService (docs/install.md).

Run: python docs/examples/install_service.py  (everything happens in a temporary home)
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from plughost.security.package import pack
from plughost.security.signing import TrustStore, keygen, sign
from plughost.services.manager import PluginService
from plughost.settings import HostSettings

CODE = '''
from plughost.sdk import Plugin

class Counter(Plugin):
    def activate(self, ctx):
        self.count = getattr(self, "count", 0)

    def tick(self):
        self.count += 1
        return self.count

    def export_state(self):                      # handed to the next version on update
        return {"count": self.count}

    def import_state(self, state, from_version):
        self.count = state["count"]
'''


def build(root: Path, version: str, key: Path) -> Path:
    src = root / f"counter-{version}"
    src.mkdir()
    (src / "plugin.toml").write_text(
        f'id = "counter"\nname = "Counter"\nversion = "{version}"\nentry = "main:Counter"\n')
    (src / "main.py").write_text(CODE)
    return sign(pack(src, root / f"counter-{version}.zip"), key)


async def main(root: Path) -> list[str]:
    private, public = keygen(root / "keys", "publisher")
    settings = HostSettings(home=root / "home")        # SQLite + files under the home
    TrustStore.for_home(settings.home).add(public, "publisher")
    log = []
    async with PluginService(settings) as svc:
        result = await svc.install(build(root, "1.0.0", private))
        log.append(f"installed {result.plugin_id} {result.version}: {result.state}")
        await svc.host.call("counter", "tick")
        await svc.host.call("counter", "tick")
        update = await svc.update("counter", build(root, "1.1.0", private))
        log.append(f"updated {update.from_version} -> {update.to_version}")
        log.append(f"count after update: {await svc.host.call('counter', 'tick')}")
        log.append("kept: " + ", ".join(v.version for v in await svc.versions("counter")))
        back = await svc.rollback("counter")
        log.append(f"rolled back to {back.to_version}")
        await svc.disable("counter")
    async with PluginService(settings) as svc:         # a restart: still disabled
        [info] = (await svc.list_plugins()).items
        log.append(f"after restart: {info.id} {info.version} {info.state}")
        await svc.uninstall("counter")
        log.append(f"installed now: {(await svc.list_plugins()).total}")
    return log


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        for line in asyncio.run(main(Path(tmp))):
            print(line)
