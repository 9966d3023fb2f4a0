"""Fuzz every API operation from its OpenAPI schema (hypothesis): no input gives a 5xx.

Requests are drawn per operation from the schema's own parameters and bodies,
mixed with hostile values (traversal strings, huge numbers, NaN, odd unicode,
wrong types, extra fields). A bounded number of examples, derandomised so that
CI runs the same ones every time.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zsindex
from zsindex.service import create_app

from .service_world import build_index

HOSTILE = st.sampled_from(["..", "../../etc/passwd", "..%2f..%2f", "/etc/passwd", "\x00", "%00", "a,b", " ", "",
                           "🙂", "\u202e", "' OR 1=1 --", "<script>", "*", "?", "#", "\\", "nan", "inf", "-1", "0",
                           "1" * 30, "x" * 3000])
TEXT = st.one_of(HOSTILE, st.text(max_size=40))
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False,
                      allow_infinity=False), TEXT)
JSON_ANY = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(TEXT, inner, max_size=4)), max_leaves=8)


def value_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    kinds = [schema.get("type")] + [s.get("type") for s in schema.get("anyOf", [])]
    options: list[st.SearchStrategy[Any]] = [TEXT]
    if "integer" in kinds:
        options += [st.integers(-5, 300), st.integers(-(2**70), 2**70)]
    if "number" in kinds:
        options += [st.floats(), st.sampled_from(["nan", "inf", "-inf", "1e999"])]
    if "array" in kinds:
        options += [st.lists(TEXT, max_size=3)]
    if "boolean" in kinds:
        options += [st.booleans()]
    if "enum" in schema:
        options += [st.sampled_from(schema["enum"])]
    return st.one_of(options)


def body_for(op: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    content = op.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content:
        ref = content["multipart/form-data"]["schema"].get("$ref", "")
        props = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
        names = sorted(p for p in props if p != "file")
        fields = st.dictionaries(st.sampled_from(names) | TEXT if names else TEXT,
                                 st.one_of(TEXT, st.integers().map(str)), max_size=5)
        files = st.one_of(st.none(), st.binary(max_size=300).map(lambda b: {"file": ("f.png", b)}))
        return st.builds(lambda d, f: {"data": d, "files": f}, fields, files)
    if "application/json" in content:
        schema = content["application/json"]["schema"]
        ref = (schema.get("$ref") or next((s.get("$ref") for s in schema.get("anyOf", []) if "$ref" in s), "")) or ""
        props = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
        shaped = st.fixed_dictionaries({}, optional={name: st.one_of(value_for(p), JSON_ANY)
                                                     for name, p in props.items()})
        return st.one_of(shaped, JSON_ANY).map(lambda b: {"content": json.dumps(b),
                                                          "headers": {"Content-Type": "application/json"}})
    return st.just({})


def request_for(path: str, method: str, op: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[Any]:
    params = op.get("parameters", [])
    path_params = {p["name"]: st.one_of(value_for(p.get("schema", {})), TEXT).map(lambda v: quote(str(v), safe=""))
                   for p in params if p["in"] == "path"}
    query = st.fixed_dictionaries({}, optional={p["name"]: value_for(p.get("schema", {}))
                                                for p in params if p["in"] == "query"})
    extra = st.dictionaries(TEXT, TEXT, max_size=2)

    def build(pp: dict[str, str], q: dict[str, Any], x: dict[str, str], body: dict[str, Any]) -> tuple:
        url = path
        for name, value in pp.items():
            url = url.replace("{" + name + "}", value or "%20")
        return method, url, {**x, **q}, body

    return st.builds(build, st.fixed_dictionaries(path_params), query, extra, body_for(op, components))


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory, demo_embedder):
    index, pics = build_index(tmp_path_factory.mktemp("fuzz"), demo_embedder, copies=1)
    lib = zsindex.open(index, embedder=demo_embedder)
    lib.labels_put("shapes", ["circle", "square"])
    app = create_app(lib, roots=[pics], ingest_workers=0)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        yield client, app


def operations(app: Any) -> list[tuple[str, str, dict[str, Any]]]:
    schema = app.openapi()
    return [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()
            if path.startswith("/api/")]


def test_schema_covers_the_api(fuzz_client):
    _, app = fuzz_client
    ops = {(m, p) for p, m, _ in operations(app)}
    assert len(ops) >= 18 and ("get", "/api/search") in ops and ("post", "/api/classify") in ops


def test_no_input_gives_a_server_error(fuzz_client):
    client, app = fuzz_client
    schema = app.openapi()
    components = schema.get("components", {}).get("schemas", {})
    requests = st.one_of([request_for(p, m, op, components) for p, m, op in operations(app)])
    seen: dict[int, int] = {}

    @settings(max_examples=250, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(requests)
    def check(request: tuple) -> None:
        method, url, query, body = request
        r = client.request(method.upper(), url, params=query, **body)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, (method, url, query, body, r.status_code, r.text[:300])
        if r.headers.get("content-type", "").startswith("application/json") and r.status_code >= 400:
            assert set(r.json()) == {"error"}
            assert "Traceback" not in r.text

    check()
    print('fuzz statuses', sorted(seen.items()))
    assert any(code < 300 for code in seen) and any(400 <= code < 500 for code in seen), seen
    client.app.state.service.jobs.wait_idle(60)
