"""A real two-node Ray cluster on this machine, for tests and benchmarks.

Both nodes are `ray start --block` processes of the `ray` next to this
Python, each the leader of its own session with its own ports (none of Ray's
fixed defaults, so nothing clashes with another cluster on the machine), in a
temporary folder of their own. Stopping the cluster signals those two
sessions, then kills whatever is left in them, by process id: every Ray
process started here ends, even when the test failed, and nothing else is
touched (never `ray stop`, which stops every Ray on the machine).

``hide`` covers a folder with an empty tmpfs for the second node only (a
private mount namespace through `unshare`): files that the driver and the
head node read but the second node cannot, as on a cluster whose file system
is not shared.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")


def available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return RAY.exists()


def can_hide() -> bool:
    """Whether a private mount namespace can be made here (unshare, user namespaces allowed)."""
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_args(cpus: int) -> list[str]:
    ports = ["--node-manager-port", "--object-manager-port", "--metrics-export-port",
             "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port"]
    args = [f"{flag}={_free_port()}" for flag in ports]
    return [*args, "--block", f"--num-cpus={cpus}", "--num-gpus=0",
            "--disable-usage-stats"]


def node_env() -> dict[str, str]:
    """The environment of the nodes: this checkout's zsindex importable, no telemetry, no GPU."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0", "CUDA_VISIBLE_DEVICES": ""}


def _sessions_alive(sids: set[int]) -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) in sids:
                    alive.append(int(entry))
            except OSError:  # gone meanwhile
                pass
    return alive


def _stop(procs: list[subprocess.Popen]) -> None:
    sids = {p.pid for p in procs}
    for p in procs:
        with contextlib.suppress(OSError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10  # Ray ends gracefully in seconds, or not for long: then SIGKILL
    while _sessions_alive(sids) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _sessions_alive(sids):  # a process that ignored SIGTERM or left the process group
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(10)


def _wait_nodes(address: str, n: int, procs: list[subprocess.Popen], logs: Path, timeout: float) -> None:
    """Wait until every node says it started, then until n nodes are alive, asked from a child process
    (this one stays free of a Ray connection; a connection tried before the head listens hangs)."""
    deadline = time.monotonic() + timeout
    started = "Ray runtime started"
    while not all(started in f.read_text(errors="replace") for f in logs.glob("*.log")):
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a Ray node exited with {p.returncode}: {_tail(logs)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray nodes did not start in {timeout:.0f} s: {_tail(logs)}")
        time.sleep(0.5)
    probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
             "print(sum(1 for n in ray.nodes() if n['Alive']))")
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True,
                              env=node_env(), timeout=max(10.0, deadline - time.monotonic()))
        if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster did not reach {n} nodes in {timeout:.0f} s: {_tail(logs)}")


def _tail(logs: Path) -> str:
    return " | ".join(f"{f.name}: {f.read_text(errors='replace')[-800:]}" for f in sorted(logs.glob("*.log")))


@contextlib.contextmanager
def local_cluster(cpus_per_node: int = 2, hide: Path | None = None, timeout: float = 180) -> Iterator[str]:
    """Start a head node and a second node; yield the head's address (HOST:PORT); stop both.

    Ray turns 127.0.0.1 into this machine's own address (what other nodes would reach), so the nodes
    listen there too, on ports of their own."""
    # Ray's socket paths must stay short (108 bytes): a folder of its own under /tmp, not pytest's tmp_path.
    work = Path(tempfile.mkdtemp(prefix="zsray-", dir="/tmp"))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    try:
        head = ["--head", f"--port={port}", f"--temp-dir={work / 't'}", "--include-dashboard=false",
                f"--dashboard-port={_free_port()}", *_node_args(cpus_per_node)]
        with open(work / "head.log", "wb") as log:
            procs.append(subprocess.Popen([str(RAY), "start", *head], env=node_env(), start_new_session=True,
                                          stdout=log, stderr=subprocess.STDOUT, cwd=work))
        _wait_nodes(address, 1, procs, work, timeout)
        second = [str(RAY), "start", f"--address={address}", *_node_args(cpus_per_node)]
        if hide is not None:  # this node alone sees an empty folder where the files are
            second = ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', str(hide), *second]
        with open(work / "second.log", "wb") as log:
            procs.append(subprocess.Popen(second, env=node_env(), start_new_session=True, stdout=log,
                                          stderr=subprocess.STDOUT, cwd=work))
        _wait_nodes(address, 2, procs, work, timeout)
        yield address
    finally:
        _stop(procs)
        shutil.rmtree(work, ignore_errors=True)
