"""`zsindex serve`: the HTTP API and web app over an index, with uvicorn."""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
from pathlib import Path
from typing import Any

import click

from .clikit import index_option, ranged, root_db
from .errors import UsageError, shown
from .output import warn

ENV_TOKEN = "ZSINDEX_TOKEN"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs --token (or --no-auth-i-know).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port to bind.")
@click.option("--token", envvar=ENV_TOKEN, show_envvar=True,
              help="Require this token on every API route and page (Bearer header or the login page's cookie).")
@click.option("--no-auth-i-know", "no_auth", is_flag=True,
              help="Serve a non-loopback address without a token: anyone who can reach it can use it.")
@click.option("--read-only", is_flag=True, help="Refuse every route that changes the index (403); excludes --watch.")
@click.option("--watch", is_flag=True,
              help="Watch the roots; after changes settle, ingest them and tag with label sets marked --auto "
                   "(not with --read-only).")
@click.option("--root", "roots", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder the server may ingest and watch (repeatable)  [default: the roots recorded in the index]")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="Allow browser pages from this origin to call the API (repeatable)  [default: none]")
@click.option("--max-upload-mb", type=ranged("max_upload_bytes", scale=1e6), default=20.0, show_default=True,
              help="Largest request body accepted (413 beyond).")
@click.option("--max-upload-megapixels", type=ranged("max_upload_megapixels"), default=50.0, show_default=True,
              help="Largest uploaded image accepted (422 beyond).")
@click.option("--compute-threads", type=ranged("compute_threads", integer=True), default=1, show_default=True,
              help="Threads per model or FAISS call (0: the libraries' defaults). One suits a server, whose "
              "concurrent requests already use the cores.")
@click.option("--model", "-m", default=None, help="Model to load  [default: the one recorded in the index]")
@click.option("--pretrained", default=None,
              help="Pretrained tag or checkpoint file of the model (Env ZSINDEX_PRETRAINED)  [default: the one "
              "recorded in the index]")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True)
def serve(index_dir: Path | None, host: str, port: int, token: str | None, no_auth: bool, read_only: bool,
          watch: bool, roots: tuple[Path, ...], cors_origins: tuple[str, ...], max_upload_mb: float,
          max_upload_megapixels: float, compute_threads: int, model: str | None, pretrained: str | None,
          log_level: str) -> None:
    """Serve the index over HTTP: a JSON API (/docs, /openapi.json) and a web app (/).

    Safe by default: binds 127.0.0.1, answers only to loopback host names unless
    a token is set, no CORS, strict security headers. Give --token (or set
    ZSINDEX_TOKEN) to bind another address.

    \b
    Examples:
      zsindex serve --index ./photos-index
      zsindex serve --watch --root ~/Pictures
      ZSINDEX_TOKEN=s3cret zsindex serve --host 0.0.0.0 --read-only
    """
    if compute_threads:
        # Before torch or FAISS load OpenMP: its thread count then holds in every request thread too
        # (a later omp_set_num_threads reaches only the thread that calls it).
        os.environ.setdefault("OMP_NUM_THREADS", str(compute_threads))
    from .library import Library
    from .service import create_app

    if not is_loopback(host) and token is None and not no_auth:
        raise UsageError(f"binding {host} exposes the index beyond this machine: give --token "
                         f"(or {ENV_TOKEN}), or --no-auth-i-know to serve it without authentication")
    if read_only and watch:
        raise UsageError("--read-only and --watch exclude each other: watching ingests the changes, which writes "
                         "to the index; give one")
    # A new index only when given folders; the root --db, like $ZSINDEX_DB, names a database server.
    library = Library(index_dir, model=model, pretrained=pretrained, create=bool(roots), db=root_db())
    if watch and not roots and not library.roots():
        raise UsageError("--watch needs folders to watch: give --root PATH, or ingest a folder first")
    allowed = None if (no_auth or token) else ("127.0.0.1", "localhost", "::1", host.lower().strip("[]"))
    app = create_app(library, token=token, read_only=read_only, roots=[os.fspath(r) for r in roots], watch=watch,
                     cors_origins=cors_origins, allowed_hosts=allowed,
                     max_upload_bytes=int(max_upload_mb * 1_000_000), max_upload_megapixels=max_upload_megapixels,
                     compute_threads=compute_threads or None)
    sock = bind(host, port)  # before saying it serves: a port in use is a message, not a failed start
    where = f"http://{'[' + host.strip('[]') + ']' if ':' in host else host}:{sock.getsockname()[1]}/"
    warn(f"serving {shown(library.folder)} on {where} (API docs at /docs)"
         + (", read-only" if read_only else "") + (", token required" if token else "")
         + (", watching for changes" if watch else ""))
    # Ctrl-C and SIGTERM are a server's normal end: uvicorn shuts down gracefully and the command exits 0.
    # Python's own SIGINT handler (not the CLI's, which would make the signal uvicorn passes on an exit 130)
    # turns the signal uvicorn re-raises after its shutdown into the KeyboardInterrupt run_server takes.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not run_server(app, sock, log_level):
        raise click.ClickException("the server could not start: see the error above")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or the reason there can be none as the CLI's error: a port in use or
    not ours to take is the environment's (exit 1), a host that is no address of this machine a usage error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise UsageError(f"--host {host!r} is neither an address nor a name this machine can resolve "
                         f"({getattr(e, 'strerror', None) or e}); give one of its addresses, e.g. 127.0.0.1 "
                         "(this machine only) or 0.0.0.0 (every address)") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a restart finds it free
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise click.ClickException(f"port {port} on {host} is in use; choose another with --port") from None
        if e.errno == errno.EACCES:
            raise click.ClickException(f"this user may not bind port {port} on {host} (ports below 1024 need "
                                       "administrator rights); choose another with --port") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--host {host} is not an address of this machine; give one of its addresses, "
                             "e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every address)") from None
        raise click.ClickException(f"cannot serve on {host} port {port}: {e.strerror or e}") from None
    return sock


def run_server(app: Any, sock: socket.socket, log_level: str) -> bool:
    """Serve app on the bound socket until Ctrl-C or SIGTERM; False when the app failed to start."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, server_header=False, proxy_headers=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # the Ctrl-C uvicorn passes on after its graceful shutdown (as uvicorn.run takes it): exit 0
    except SystemExit:  # uvicorn's way to end a failed start (its lifespan logged why)
        if server.started:
            raise
    finally:
        sock.close()
    return bool(server.started)


def register(cli: click.Group) -> None:
    cli.add_command(serve)
