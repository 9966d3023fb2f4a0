"""One range per numeric parameter, the same on the command line, in the Python API and over HTTP.

`params.RANGES` defines each range once; the CLI's options and the HTTP API's fields are made from it. The
table runs each parameter just outside and at its bounds through every front end that takes it: all refuse
the same values (exit 2, UsageError, 422) and take the same ones; a refused value changes nothing (a cosine
threshold of 2 used to erase every tag of the set from the CLI and the Python API, while HTTP said 422).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import click
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import zsindex
from zsindex.cli import cli
from zsindex.errors import UsageError
from zsindex.params import RANGES, range_of
from zsindex.service import create_app

from .service_world import build_index, wait_job
from .test_cli_rules import leaf_commands

NOT_API = {"port"}  # serve --port: where to listen, no parameter of the library or the API


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_embedder):
    index, pics = build_index(tmp_path_factory.mktemp("ranges"), demo_embedder, copies=1)
    lib = zsindex.open(index, embedder=demo_embedder)
    lib.labels_add("colours", "red,blue,green,yellow")
    lib.tag("colours", mode="multi")
    lib.labels_add("cut", "red,blue")  # the set the threshold cases tag with
    app = create_app(zsindex.open(index, embedder=demo_embedder), roots=[pics], ingest_workers=0)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield index, pics, lib, client


def _http_tag(client: Any, value: float) -> int:
    r = client.post("/api/labels/cut/tag", json={"mode": "multi", "threshold": value})
    if r.status_code == 202:
        assert wait_job(client, r.json()["id"])["state"] == "done"
    return int(r.status_code)


# parameter -> (values outside its range, values at its bounds or inside, CLI args, API call, HTTP call)
# (CLI args and calls take the value; None: that front end has no such parameter)
TABLE: dict[str, tuple[list[float], list[float], Any, Any, Any]] = {
    "threshold": ([-1.01, 2, 1e9], [-1, 0.3, 1],
                  lambda w, v: ["tag", "--labels", "cut", "--mode", "multi", "--threshold", str(v), "-q"],
                  lambda w, v: w[2].tag("cut", mode="multi", threshold=v),
                  lambda w, v: _http_tag(w[3], v)),
    "min_score": ([-1.5, 1.01], [-1, 1],
                  lambda w, v: ["search", "red", "--min-score", str(v)],
                  lambda w, v: w[2].search("red", min_score=v),
                  lambda w, v: w[3].get("/api/search", params={"q": "red", "min_score": v}).status_code),
    "not_weight": ([-0.1, 10.5, 1e39], [0, 10],
                   lambda w, v: ["search", "red", "--not", "blue", "--not-weight", str(v)],
                   lambda w, v: w[2].search("red", not_="blue", not_weight=v),
                   lambda w, v: w[3].get("/api/search", params={"q": "red", "not": "blue",
                                                                 "not_weight": v}).status_code),
    "top_k": ([0, -3], [1, 200],
              lambda w, v: ["search", "red", "-k", str(v)],
              lambda w, v: w[2].search("red", top_k=v),
              lambda w, v: w[3].get("/api/search", params={"q": "red", "k": v}).status_code),
    "offset": ([-1], [0, 3],
               lambda w, v: ["search", "red", "--offset", str(v)],
               lambda w, v: w[2].search("red", offset=v),
               lambda w, v: w[3].get("/api/search", params={"q": "red", "offset": v}).status_code),
    "sidecars_write.min_score": ([-3, -0.01, 1.01, 5], [0, 0.5, 1],  # a tag's score, not a cosine: 0 to 1
                                 lambda w, v: ["sidecars", "write", "--labels", "colours", "--min-score", str(v),
                                               "--dry-run"],
                                 lambda w, v: w[2].sidecars_write("colours", min_score=v, dry_run=True),
                                 None),
    "max_megapixels": ([0.05, 0], [0.1, 1000],
                       lambda w, v: ["ingest", str(w[1]), "--max-megapixels", str(v), "--workers", "0", "-q"],
                       lambda w, v: w[2].ingest([w[1]], max_megapixels=v, workers=0),
                       None),
    "batch_size": ([0], [1],
                   lambda w, v: ["ingest", str(w[1]), "--batch-size", str(v), "--workers", "0", "-q"],
                   lambda w, v: w[2].ingest([w[1]], batch_size=v, workers=0),
                   None),
    "workers": ([-1], [0],
                lambda w, v: ["ingest", str(w[1]), "--workers", str(v), "-q"],
                lambda w, v: w[2].ingest([w[1]], workers=v),
                None),
}


def _cases() -> list[tuple[str, str, float, bool]]:
    out = []
    for name, (bad, good, _, _, http_call) in TABLE.items():
        fronts = ("cli", "api", "http") if http_call is not None else ("cli", "api")
        out += [(name, front, v, False) for v in bad for front in fronts]
        out += [(name, front, v, True) for v in good for front in fronts]
    return out


@pytest.mark.parametrize("name, front, value, allowed", _cases())
def test_every_front_end_takes_the_same_values(world, name, front, value, allowed):
    cli_args, api_call, http_call = TABLE[name][2:]
    tags_before = world[2].tag_counts("colours")
    if front == "cli":
        result = CliRunner().invoke(cli, [*cli_args(world, value), "--index", str(world[0])])
        if allowed:
            assert result.exit_code in (0, 3), result.output  # 3: ingest skipped a file larger than it allows
        else:
            assert result.exit_code == 2 and "Usage:" in result.output, result.output
    elif front == "api":
        if allowed:
            api_call(world, value)
        else:
            with pytest.raises(UsageError, match=f"{name.split('.')[-1]}= must be at (least|most)"):
                api_call(world, value)
    else:
        status = http_call(world, value)
        assert (200 <= status < 300) if allowed else status == 422, status
    assert world[2].tag_counts("colours") == tags_before  # a refused value (or a search) changes no tag


def test_a_refused_threshold_keeps_the_tags(world):
    """The fault: `tag --threshold 2` and lib.tag(..., threshold=2) erased every tag of the set, exit 0."""
    lib = world[2]
    lib.tag("cut", mode="multi")
    before = lib.tag_counts("cut")
    assert sum(before.values()) > 0
    result = CliRunner().invoke(cli, ["tag", "--labels", "cut", "--threshold", "2", "--index", str(world[0])])
    assert result.exit_code == 2 and "--threshold" in result.output, result.output
    with pytest.raises(UsageError, match=r"threshold= must be at most 1 \(a cosine similarity"):
        lib.tag("cut", threshold=2)
    assert world[3].post("/api/labels/cut/tag", json={"threshold": 2}).status_code == 422
    assert lib.tag_counts("cut") == before


def _click_range(param: click.Parameter) -> tuple[float | None, float | None] | None:
    kind = param.type
    if isinstance(kind, (click.IntRange, click.FloatRange)):
        return kind.min, kind.max
    return None


def _range_name(command: str, option: str) -> str:
    named = {("sidecars write", "min_score"): "sidecars_write.min_score",
             ("serve", "max_upload_mb"): "max_upload_bytes"}
    return named.get((command, option), option)


def test_every_numeric_option_is_made_from_the_shared_range():
    """An option of a ranged parameter has exactly that range (a plain float is how --threshold and --min-score
    took anything); every ranged option is a parameter of RANGES (or is no API parameter at all)."""
    seen = set()
    for command_name, command in leaf_commands().items():
        for param in command.params:
            if not isinstance(param, click.Option) or param.name is None:
                continue
            key = _range_name(command_name, param.name)
            shared = range_of(key)
            if shared is None:
                assert _click_range(param) is None or param.name in NOT_API, (command_name, param.name)
                continue
            seen.add(key)
            scale = 1e6 if key == "max_upload_bytes" else 1
            low = None if shared.low is None else shared.low / scale
            high = None if shared.high is None else shared.high / scale
            assert _click_range(param) is not None, (command_name, param.name, "takes any number")
            got_low, got_high = _click_range(param)  # type: ignore[misc]
            assert (got_low is None) == (low is None) and (got_high is None) == (high is None), (command_name, key)
            assert low is None or math.isclose(got_low, low), (command_name, key, got_low, low)
            assert high is None or math.isclose(got_high, high), (command_name, key, got_high, high)
    assert {"threshold", "min_score", "not_weight", "top_k", "offset", "sidecars_write.min_score", "batch_size",
            "workers", "max_megapixels", "max_upload_bytes", "max_upload_megapixels", "compute_threads"} <= seen


def _numeric(param: click.Parameter) -> bool:
    return isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType))


def _api_functions() -> dict[str, Any]:
    from zsindex.library import Library

    found: dict[str, Any] = {name: getattr(Library, name) for name in dir(Library)
                             if not name.startswith("_") and inspect.isfunction(getattr(Library, name))}
    return {**found, "open": zsindex.open, "classify": zsindex.classify, "similarity": zsindex.similarity,
            "create_app": create_app}


def test_every_number_that_a_command_or_the_api_takes_has_a_range():
    """No numeric option of any command and no numeric parameter of any API method takes any number: each has a
    range in RANGES with at least one bound (`sidecars write --min-score 5` and -3 wrote nothing, exit 0, while a
    tag's score lies between 0 and 1)."""
    unbounded = []
    for command_name, command in leaf_commands().items():
        for param in command.params:
            if isinstance(param, click.Option) and param.name is not None and _numeric(param) \
                    and param.name not in NOT_API:
                shared = range_of(_range_name(command_name, param.name))
                if shared is None or (shared.low is None and shared.high is None):
                    unbounded.append(f"zsindex {command_name} --{param.name}")
    for method, func in _api_functions().items():
        for name, p in inspect.signature(func).parameters.items():
            words = str(p.annotation).replace("|", " ").split()
            if "int" in words or "float" in words:
                shared = range_of(name, method)
                if shared is None or (shared.low is None and shared.high is None):
                    unbounded.append(f"{method}({name}=)")
    assert not unbounded, unbounded


# HTTP field -> its parameter in RANGES
HTTP_NAMES = {"k": "k", "offset": "offset", "min_score": "min_score", "not_weight": "not_weight", "like": "image_id",
              "image_id": "image_id", "threshold": "threshold", "size": "size", "t": "at"}


def test_every_http_bound_is_the_shared_range_or_a_server_cap(world):
    """The HTTP API's lower bounds are the shared ones; an upper bound is the shared one, or lower where the
    server caps what one request may ask for (a page of 200 hits)."""
    schema = world[3].get("/openapi.json").json()
    fields: list[tuple[str, dict]] = []
    for path in schema["paths"].values():
        for op in path.values():
            fields += [(p["name"], p.get("schema", {})) for p in op.get("parameters", [])]
    for component in schema["components"]["schemas"].values():
        fields += list(component.get("properties", {}).items())
    checked = set()
    for name, field in fields:
        bounds = [field] + field.get("anyOf", [])
        low = next((b["minimum"] for b in bounds if "minimum" in b), None)
        high = next((b["maximum"] for b in bounds if "maximum" in b), None)
        if low is None and high is None:
            continue
        shared = RANGES[HTTP_NAMES[name]]
        assert low == shared.low, (name, low, shared)
        assert shared.high is None or high == shared.high or (high is not None and high < shared.high), name
        checked.add(name)
    assert {"k", "offset", "min_score", "not_weight", "threshold"} <= checked


@pytest.mark.parametrize("setting, value, flag", [
    ("max_upload_megapixels", 0.001, "--max-upload-megapixels"),
    ("compute_threads", -1, "--compute-threads"),
    ("max_upload_bytes", 0, "--max-upload-mb"),
])
def test_the_servers_settings_have_the_same_ranges(world, setting, value, flag):
    with pytest.raises(UsageError, match=f"{setting}= must be at least"):
        create_app(zsindex.open(world[0]), **{setting: value})
    cli_value = str(value / 1e6) if setting == "max_upload_bytes" else str(value)
    result = CliRunner().invoke(cli, ["serve", "--index", str(world[0]), flag, cli_value, "--port", "0"])
    assert result.exit_code == 2 and flag in result.output, result.output
