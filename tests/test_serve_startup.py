"""Every way `zsindex serve` can fail to start ends with the README's exit code and a message, before it says it
serves: a port in use or not its to take (1), a host that is no address of this machine (2), no index or a file
where the index should be (1, 2), a model that is not the index's or not on this machine (1, the command line's
own words). Server tests bind 127.0.0.1 only and stop every process they start."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from zsindex.cli import cli
from zsindex.errors import ModelMismatchError, ModelUnavailableError
from zsindex.library import Library
from zsindex.service import create_app
from zsindex.service.messages import server_text

from .conftest import REPO
from .service_world import build_index

ENV = {**os.environ, "PYTHONPATH": str(REPO), "ZSINDEX_TOKEN": ""}
LEFTOVER_API_NAME = re.compile(r"(?<![\w/.?&=-])[a-z][a-z0-9_]*=")  # a Python parameter in a message


@pytest.fixture(scope="module")
def built(tmp_path_factory, demo_embedder):
    return build_index(tmp_path_factory.mktemp("serve-start"), demo_embedder, copies=1)


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory, built):
    """A copy of the index that records a model whose weights are not on this machine (the tests run offline)."""
    import shutil

    index = tmp_path_factory.mktemp("elsewhere") / "index"
    shutil.copytree(built[0], index)
    con = sqlite3.connect(index / "index.sqlite")
    con.execute("UPDATE models SET name = 'ViT-B-16', pretrained = 'openai', identity = 'ViT-B-16/openai'")
    con.commit()
    con.close()
    return index


def _serve(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`zsindex serve ARGS` in its own process, expected to end by itself (a failed start); killed otherwise."""
    proc = subprocess.Popen([sys.executable, "-m", "zsindex", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"zsindex serve {' '.join(args)} did not end:\n{err.decode()[-2000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())


def test_a_port_in_use_is_exit_1_before_serving(built):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = _serve("--index", str(built[0]), "--port", str(port))
    assert done.returncode == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is in use; choose another with --port" in done.stderr
    for never in ("serving", "Application startup", "Traceback", "Uvicorn running"):
        assert never not in done.stderr, done.stderr


@pytest.mark.parametrize("host, message", [
    ("192.0.2.1", "--host 192.0.2.1 is not an address of this machine"),  # TEST-NET-1: nobody's address
    ("no-such-host.invalid", "--host 'no-such-host.invalid' is neither an address nor a name"),
])
def test_a_host_that_is_not_this_machines_is_a_usage_error(built, host, message):
    done = _serve("--index", str(built[0]), "--host", host, "--token", "s3cret", "--port", "0")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Usage: zsindex serve" in done.stderr
    assert "serving" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may bind any port")
def test_a_port_this_user_may_not_take_is_exit_1(built):
    start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if start.exists() and int(start.read_text()) <= 1:
        pytest.skip("this machine lets any user bind low ports")
    done = _serve("--index", str(built[0]), "--port", "1")
    assert done.returncode == 1, done.stderr
    assert "may not bind port 1 on 127.0.0.1" in done.stderr and "--port" in done.stderr
    assert "serving" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("case, code, words", [
    ("no index", 1, "no index at"),
    ("a file", 2, "is a file"),
    ("another model", 1, "Use --model demo, or a new index with --index DIR for the other model"),
    ("weights not here", 1, "--model ARCH --pretrained /path/to/checkpoint.pt"),
])
def test_an_index_or_model_problem_stops_the_start_with_the_cli_message(tmp_path, built, elsewhere, case, code, words):
    args = {"no index": ["--index", str(tmp_path / "nothing")],
            "a file": ["--index", str(tmp_path / "file")],
            "another model": ["--index", str(built[0]), "--model", "ViT-B-32"],
            "weights not here": ["--index", str(elsewhere)]}[case]
    (tmp_path / "file").write_text("not an index")
    result = CliRunner().invoke(cli, ["serve", *args, "--port", "0"])
    assert result.exit_code == code, result.output
    assert words in result.output and "serving" not in result.output
    assert not LEFTOVER_API_NAME.search(result.output), result.output  # the CLI's flags, not Python's names


def test_the_model_mismatch_refused_by_serve_in_a_real_process(built):
    """The fault as reported: `serve --model ViT-B-32` on a demo index started, and every search said 409."""
    done = _serve("--index", str(built[0]), "--model", "ViT-B-32", "--port", "0")
    assert done.returncode == 1, done.stderr
    assert "not ViT-B-32" in done.stderr and "Use --model demo" in done.stderr
    assert "serving" not in done.stderr and "Traceback" not in done.stderr


def test_create_app_refuses_the_same_models(built, elsewhere):
    with pytest.raises(ModelMismatchError):
        create_app(Library(built[0], model="ViT-B-32"))
    with pytest.raises(ModelUnavailableError):
        create_app(Library(elsewhere))
    create_app(Library(built[0]))  # the index's own model: fine


def test_server_messages_name_the_servers_options_not_python_parameters(built, elsewhere):
    """Library messages a server passes on (HTTP errors, job errors, its log) name `zsindex serve`'s options."""
    messages = []
    for lib in (Library(built[0], model="ViT-B-32"), Library(elsewhere)):
        with pytest.raises((ModelMismatchError, ModelUnavailableError)) as caught:
            lib.check_model()
        messages.append(str(caught.value))
    assert any("model=" in m for m in messages) and any("folder=" in m for m in messages)  # what the library says
    shown = [server_text(m) for m in messages]
    for text in shown:
        assert not LEFTOVER_API_NAME.search(text), text
    assert "`zsindex serve --model demo`" in shown[0] and "`zsindex serve --index DIR`" in shown[0]
    assert "`zsindex serve --model ARCH --pretrained /path/to/checkpoint.pt`" in shown[1]
    assert "(`zsindex serve --pretrained openai`)" in shown[1]
