"""The examples of docs/config.md, docs/permissions.md and docs/services.md run as the pages say."""

from __future__ import annotations

from pathlib import Path

from tests.docs.test_quickstart import DOCS, load


async def test_config_example() -> None:
    result = await load("config_listeners").main()
    assert result["errors"] == ["$.channel", "$.retries"]
    assert result["refused"] == "config.rejected"
    assert result["shown"] == {"webhook_url": "***", "channel": "#ops", "retries": 3}
    assert result["history"] == [(1, "set"), (2, "set"), (3, "restore 1")]


def test_permissions_example() -> None:
    result = load("permissions_model").main()
    assert result["before"] is False
    assert result["denied"] == "denied by rule !fs:read:/srv/private"
    assert result["net"] is True
    assert result["audit"] == [("grant", "granted"), ("grant", "granted"),
                               ("check", "deny"), ("request", "pending"),
                               ("resolve", "approved"), ("grant", "granted")]


async def test_services_example() -> None:
    result = await load("services_tour").main()
    assert result == {"playlist": ["a.flac", "b.flac"], "satie": ["t1"],
                      "metadata": "permission.denied"}


def test_examples_are_referenced_by_their_pages() -> None:
    pages = {"config_listeners": "config.md", "permissions_model": "permissions.md",
             "services_tour": "services.md"}
    for example, page in pages.items():
        assert f"examples/{example}.py" in (DOCS / page).read_text(), (example, page)
        assert (Path(DOCS) / "examples" / f"{example}.py").exists()
