"""docs/services.md: ctx.files, ctx.storage and ctx.http as a plugin uses them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from plughost.errors import PermissionDenied
from plughost.security.permissions import PermissionManager
from plughost.services.hostapi import make_services
from plughost.storage.kv import KeyValueStore


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        perms = PermissionManager(Path(home) / "security.db")
        kv = KeyValueStore(Path(home) / "storage.db")
        ctx = make_services("music", perms, data_dir=Path(home) / "data" / "music", kv=kv)

        ctx.files.write_text("playlists/today.m3u", "a.flac\nb.flac\n")   # private data dir
        playlist = ctx.files.read_text("playlists/today.m3u").split()

        ctx.storage.create_index("by_artist", "artist")
        with ctx.storage.transaction() as tx:                             # all or nothing
            tx.set("t1", {"artist": "Satie", "title": "Gymnopédie No.1"})
            tx.set("t2", {"artist": "Ravel", "title": "Boléro"})
        satie = ctx.storage.query_by_index("by_artist", "Satie")

        try:                                                              # no SSRF
            await ctx.http.get("http://169.254.169.254/latest/meta-data/")
        except PermissionDenied as exc:
            metadata = exc.code

        await ctx.aclose()
        kv.close()
        perms.close()
        return {"playlist": playlist, "satie": list(satie), "metadata": metadata}
