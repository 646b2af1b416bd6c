"""Load, inspect, serialise and validate manifests from Python."""

import json
from pathlib import Path

from plughost.core.manifest import (
    load_manifest,
    manifest_from_dict,
    parse_manifest,
    validate_manifest_file,
)
from plughost.errors import ManifestError

here = Path(__file__).parent

m = load_manifest(here / "lyrics-finder")  # a plugin folder, or the manifest file itself
print(m.id, m.version, m.dependencies["music-source"])  # lyrics-finder 1.2.0 ^2.0
print(m.is_lazy, m.limits.memory, m.limits.declared() == {"timeout", "memory", "open_files"})

arcade = load_manifest(here / "slack-notify" / "manifest.json")
print(arcade.id, arcade.type, arcade.runtime, arcade.host)  # slack-notify notify native >=1.0.0

# to_dict() is the native shape, JSON-serialisable, and reads back to an equal manifest.
assert manifest_from_dict(json.loads(json.dumps(m.to_dict()))) == m

# Every problem is reported at once, each with its path and a stable code.
try:
    parse_manifest(
        'id = "demo"\nversion = "1.0"\nentry = "demo:Plugin"\nruntime = "pyton"\n'
        '[limits]\nmemory = "lots"\n',
        format="toml",
        source="demo/plugin.toml",
    )
except ManifestError as exc:
    for problem in exc.problems:
        print(problem.path, problem.code)

print(validate_manifest_file(here / "slack-notify"))  # [] when valid
