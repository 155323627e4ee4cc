"""The HTTP API cannot drift silently: the live OpenAPI schema must equal the checked-in copy.

``tests/fixtures/openapi.json`` was written from the server before it was split into routers;
a change to a route, a parameter, a description or a default shows up here as a diff.  When a
change is intended, rewrite the copy with ``SOUNDSEEK_WRITE_OPENAPI=1 pytest
tests/test_server_openapi.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi.testclient import TestClient

from soundseek.server import ServerConfig, create_app

FIXTURE = Path(__file__).parent / "fixtures" / "openapi.json"


class _NoIndex:
    """The schema does not depend on the index: an object that is never queried will do."""

    has_text_model = False

    def __len__(self):
        return 0


def _schema(config: ServerConfig | None = None) -> dict:
    with TestClient(create_app(_NoIndex(), config), base_url="http://127.0.0.1:8000") as c:
        r = c.get("/api/openapi.json")
        assert r.status_code == 200
        return r.json()


def _text(schema: dict) -> str:
    return json.dumps(schema, sort_keys=True, indent=2) + "\n"


def test_openapi_schema_matches_the_checked_in_copy():
    live = _text(_schema())
    if os.environ.get("SOUNDSEEK_WRITE_OPENAPI"):
        FIXTURE.write_text(live)
    assert live == FIXTURE.read_text(), "the API changed; see this file's docstring"


def test_schema_lists_every_route_in_order():
    paths = list(_schema()["paths"])
    assert paths == ["/api/health", "/api/stats", "/api/search", "/api/search/audio", "/api/items/{item_id}",
                     "/api/items/{item_id}/audio", "/api/items/{item_id}/similar", "/api/items/{item_id}/waveform.png"]


def test_k_default_and_range_follow_the_config():
    schema = _schema(ServerConfig(default_k=5, max_k=50))
    ks = {}
    for path, ops in schema["paths"].items():
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["name"] == "k":
                    ks[path] = (p["schema"]["default"], p["description"])
    assert ks == {
        "/api/search": (5, "number of results, 1..50"),
        "/api/search/audio": (5, "number of results, 1..50"),
        "/api/items/{item_id}/similar": (5, "1..50"),
    }
