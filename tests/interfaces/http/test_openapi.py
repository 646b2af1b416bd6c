"""The OpenAPI document: served, committed under docs/, complete (summaries, typed models)."""

from __future__ import annotations

import json
from pathlib import Path

from plughost.interfaces.http.app import openapi_document
from tests.interfaces.http.conftest import Api

COMMITTED = Path(__file__).parents[3] / "docs" / "openapi.json"


def test_committed_openapi_document_is_up_to_date() -> None:
    assert json.loads(COMMITTED.read_text()) == openapi_document(), (
        "docs/openapi.json is stale: run "
        "`PYTHONPATH=src python -m plughost.interfaces.http > docs/openapi.json`")


async def test_openapi_is_served(api: Api) -> None:
    r = await api.client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json()["paths"].keys() == openapi_document()["paths"].keys()


def test_every_operation_has_a_summary_and_typed_responses() -> None:
    doc = openapi_document()
    seen = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            seen.append(f"{method.upper()} {path}")
            assert op.get("summary"), f"{method} {path} has no summary"
            ok = {k: v for k, v in op["responses"].items() if k.startswith("2")}
            assert ok, f"{method} {path} documents no success response"
            for status, response in ok.items():
                if status == "204":
                    continue
                content = response.get("content", {})
                assert content, f"{method} {path} {status} has no content type"
                for media in content.values():
                    schema = media.get("schema", {})
                    assert schema and schema != {}, f"{method} {path} {status} is untyped"
            assert ("422" in op["responses"] and "401" in op["responses"]) or path in (
                "/healthz", "/readyz")
    for route in ("GET /api/v1/plugins", "GET /api/v1/plugins/{plugin_id}",
                  "POST /api/v1/plugins/install", "DELETE /api/v1/plugins/{plugin_id}",
                  "POST /api/v1/plugins/{plugin_id}/enable",
                  "POST /api/v1/plugins/{plugin_id}/disable",
                  "PUT /api/v1/plugins/{plugin_id}", "GET /api/v1/plugins/metrics",
                  "POST /api/v1/plugins/validate-manifest"):
        assert route in seen, f"seed 003's {route} is missing"
