"""docs/observability.md: the documented settings are exactly what the server accepts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from plughost.observability.settings import ObservabilitySettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def test_the_documented_settings_parse_and_match_the_defaults() -> None:
    block = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None
    parsed = ObservabilitySettings.from_mapping(tomllib.loads(block[1]), source="doc")
    defaults = ObservabilitySettings()
    assert parsed.logs == defaults.logs
    assert parsed.health == defaults.health
    assert parsed.alerts.interval == defaults.alerts.interval
    assert parsed.alerts.webhooks == ("https://alerts.example.com/plughost",)
    assert parsed.metrics.public_bind == "127.0.0.1:9464"


def test_the_documented_rule_and_built_in_thresholds_are_the_real_ones() -> None:
    from plughost.observability.alerts import DEFAULT_RULES, parse_rules
    from plughost.observability.figures import FIGURES

    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None
    (rule,) = parse_rules(tomllib.loads(block[1])["alerts"]["rules"])
    assert (rule.name, rule.for_, rule.plugin) == ("slack-errors", 120.0, "notify-slack")
    for default in DEFAULT_RULES:
        assert f"| `{default.name}` |" in text, default.name
    for figure in FIGURES:
        assert f"`{figure}`" in text, figure


async def test_the_tracing_example_runs(tmp_path: Path) -> None:
    from plughost.host import PluginHost

    block = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None and "enable_tracing" in block[1]
    async with PluginHost([tmp_path]) as host:
        await host.start()
        namespace: dict[str, object] = {"host": host}
        exec(compile(block[1], "docs/observability.md", "exec"), namespace)
        undo = namespace["undo"]
        assert callable(undo)
        assert len(host.comms.monitors) >= 1
        undo()
