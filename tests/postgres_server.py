"""A real, throw-away PostgreSQL server for tests: Debian's binaries, a temporary data folder, 127.0.0.1 only.

PostgreSQL refuses to run as root, so under root the server runs as the `postgres` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """Start a server; yield its base URL (database `postgres`); stop it and remove its files."""
    bindir = binaries()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL binaries not found")
    work = Path(tempfile.mkdtemp(prefix="zsindex-pg-"))
    data, sockets = work / "data", work / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    try:
        subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "zsindex",
                                        "--no-sync", "-E", "UTF8"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(work / "log"), "-w",
                                        "-o", f"-h 127.0.0.1 -p {port} -k {sockets} -F", "start"]),
                       check=True, capture_output=True, timeout=120)
        try:
            yield f"postgresql+psycopg://zsindex@127.0.0.1:{port}"
        finally:
            subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                            "stop"]), capture_output=True, timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def new_database(base_url: str) -> str:
    """A fresh, empty database on the server; returns its URL."""
    from sqlalchemy import create_engine, text

    name = "t_" + uuid.uuid4().hex[:12]
    engine = create_engine(f"{base_url}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{base_url}/{name}"
