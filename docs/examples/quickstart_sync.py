"""Quickstart: the blocking facade, for applications without an event loop."""

from __future__ import annotations

from pathlib import Path

from plughost import PluginHost, SyncPluginHost

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def main(plugins_dir: Path = EXAMPLES) -> str:
    with SyncPluginHost(PluginHost([plugins_dir])) as host:
        report = host.start()
        if not report.ok:
            for outcome in report.failed:
                print(outcome.plugin_id, outcome.phase, outcome.error, outcome.hint)
        result: str = host.call("hello", "greet", name="Grace")
        return result


if __name__ == "__main__":
    print(main())
