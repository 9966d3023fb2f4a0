"""Decode and embed on a Ray cluster: the one step of an ingest that leaves the driver.

The ingest itself (scan, plan, one transaction per batch, the run record, the
report) stays in ingest.py and runs in the driver, the store's only writer.
This module replaces only its decode threads and its model: files are decoded
by CPU tasks spread over the nodes, embedded by a pool of actors that hold the
model (one per GPU, else one per two CPUs), and come back to the driver as the
same ``Work`` items, carrying vectors instead of pixels, in the order of the
plan. Killing the driver ends its tasks and actors (Ray ties them to the
job), and the next run plans again from the store, as after any interrupted
ingest: what was committed is unchanged, the rest is done once.

Every node reads the files itself, under the path the driver scanned, so the
files must be on a shared file system mounted at the same place on every
node. A node that cannot read a file this machine can read stops the run
with a ``ClusterError`` naming the node and the file (checked on a sample
before the first batch, and on every file as it goes).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from . import frames
from .errors import ClusterError, ModelMismatchError
from .ingest import Work, _work
from .scan import FileEntry

RAY_EXTRA = "pip install 'zsindex[ray]'"
SAMPLE = 16  # files each node is asked to open before the run starts
START_TIMEOUT_S = 900.0  # actors load the model (a download, an ONNX export) before the first batch

Decoded = tuple[str, list[Work], list[str]]  # (node, work items, paths that node could not read)


def require_ray() -> None:
    """Refuse early, with the command that installs Ray, when it is missing."""
    try:
        import ray  # noqa: F401 - about a second; only a run that asked for a cluster pays it
    except ImportError:
        raise ClusterError(f"ray_address= needs Ray, which is not installed: {RAY_EXTRA}") from None


def node_name() -> str:
    """The node this runs on, as a person finds it: host name, IP address and Ray node id."""
    import socket

    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return f"{socket.gethostname()} {ray.util.get_node_ip_address()} (Ray node {node_id[:12]})"


# -- run on the nodes -------------------------------------------------------------------------------
def decode_chunk(entries: Sequence[FileEntry], known: frozenset[str], target: int, max_mp: float) -> Decoded:
    """A CPU task: read, hash and decode a chunk of files exactly as the local decode threads do (the bomb
    guard is max_mp alone, not the node's Pillow setting, so both ingests skip the same files)."""
    works = [_work(e, known, target, max_mp) for e in entries]
    unread = [w.entry.path for w in works if w.error is not None and not os.access(w.entry.path, os.R_OK)]
    return node_name(), works, unread


def unreadable_here(paths: Sequence[str]) -> tuple[str, list[tuple[str, str]]]:
    """(node, [(path, reason)]) of the paths this node cannot open."""
    bad = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as e:
            bad.append((path, e.strerror or str(e)))
    return node_name(), bad


class EmbedWorker:
    """An actor holding the model; it embeds decoded chunks and sends back vectors, not pixels."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from .embedder import load_embedder

        self.embedder = load_embedder(**spec)

    def info(self) -> tuple[str, int, str]:
        return self.embedder.identity, int(getattr(self.embedder, "image_size", 224)), node_name()

    def embed(self, decoded: Decoded) -> Decoded:
        node, works, unread = decoded
        need: dict[str, Any] = {}
        for w in works:
            for key, pixels in frames.pixels_needed(w):
                if pixels is not None and key not in need:
                    need[key] = pixels
        started = time.perf_counter()
        vecs = dict(zip(need, self.embedder.embed_images(list(need.values())))) if need else {}
        share = (time.perf_counter() - started) / max(len(works), 1)
        for w in works:
            w.vectors = {key: vecs[key] for key, _ in frames.pixels_needed(w) if key in vecs}
            w.embed_seconds = share
            w.image = None
            if w.frames is not None:
                w.frames = [(pos, sec, None) for pos, sec, _ in w.frames]
        return node, works, unread


# -- the driver's side ------------------------------------------------------------------------------
def _unreadable_message(node: str, path: str, reason: str) -> str:
    return (f"node {node} cannot read {path} ({reason}), which this machine can read: on a Ray cluster "
            "every node reads the files itself, so they must be on a shared file system mounted at the "
            "same path on every node (or drop ray_address= to ingest on this machine)")


class RaySource:
    """Decode + embed on a Ray cluster for an ``Ingester`` (see ingest.py); ``close`` when done.

    ``spec`` are the ``load_embedder`` arguments each actor loads the model with;
    ``identity`` is the index's model, which every actor must turn out to hold.
    """

    def __init__(self, address: str, spec: dict[str, Any], identity: str, chunk: int) -> None:
        require_ray()
        self.address, self.spec, self.identity, self.chunk = address, spec, identity, chunk
        self.actors: list[Any] = []
        self.cpus = 0
        self._connected_here = False

    def _connect(self) -> Any:
        import logging

        import ray

        if not ray.is_initialized():
            self._check_reachable()
            try:
                ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ClusterError(f"cannot reach the Ray cluster at {self.address}: {e}; start a head node "
                                   "with Ray's `ray start` command or give its address (ray_address=HOST:PORT)"
                                   ) from None
            self._connected_here = True
        return ray

    def _check_reachable(self) -> None:
        """Refuse an address nothing listens on at once: Ray itself would retry it for minutes."""
        import socket

        if self.address == "auto":
            return  # $RAY_ADDRESS or this machine's cluster: Ray says at once when there is none
        host, _, port = self.address.split("://")[-1].rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
        except (OSError, ValueError) as e:
            raise ClusterError(f"cannot reach the Ray cluster at {self.address} ({e}); start a head "
                               "node with Ray's `ray start` command or give its HOST:PORT (ray_address=)") from None

    def open(self, todo: Sequence[FileEntry]) -> int:
        """Connect, check that every node reads a sample of the files, start the model actors.

        Returns the image size the model looks at (what the decoders need).
        """
        ray = self._connect()
        resources = ray.cluster_resources()
        self.cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
        self._check_nodes(ray, [todo[i].path for i in range(0, len(todo), max(1, len(todo) // SAMPLE))])
        n = gpus or max(1, self.cpus // 2)
        options: dict[str, Any] = {"num_gpus": 1} if gpus else {}
        options["num_cpus"] = 1 if self.cpus >= 2 * n else 0  # a CPU always left for the decode tasks
        spec = self.spec
        if gpus and not spec.get("device") and spec.get("precision") in (None, "fp32"):
            spec = {**spec, "device": "cuda"}  # auto would pick ONNX Runtime on the CPU and leave the GPU idle
        actor = ray.remote(EmbedWorker).options(scheduling_strategy="SPREAD", **options)
        self.actors = [actor.remote(spec) for _ in range(n)]
        infos = self._get(ray, [a.info.remote() for a in self.actors], START_TIMEOUT_S)
        for identity, _size, node in infos:
            if identity != self.identity:
                raise ModelMismatchError(f"node {node} loaded the model as {identity}, but the index holds "
                                         f"vectors of {self.identity}: every node needs the same model files")
        return int(infos[0][1])

    def _check_nodes(self, ray: Any, sample: list[str]) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        check = ray.remote(unreadable_here)
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        refs = [check.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                .remote(sample) for node in nodes]
        for node, bad in self._get(ray, refs, START_TIMEOUT_S):
            for path, reason in bad:
                if os.access(path, os.R_OK):  # gone for this machine too: a bad file, reported as such later
                    raise ClusterError(_unreadable_message(node, path, reason))

    def _get(self, ray: Any, refs: Any, timeout: float | None = None) -> Any:
        try:
            return ray.get(refs, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(f"the Ray cluster at {self.address} did not answer in {timeout:.0f} s "
                               "(are its nodes busy, or short of the CPUs or GPUs asked for?)") from None
        except ray.exceptions.RayError as e:
            raise ClusterError(f"the Ray cluster failed: {e}; zsindex[ray] must be installed, at the "
                               "same version, on every node") from None

    def decoded(self, entries: Sequence[FileEntry], known: frozenset[str], target: int,
                max_mp: float) -> Iterator[Work]:
        """The plan's files decoded and embedded on the cluster, in order, with a bounded window."""
        import ray

        decode = ray.remote(decode_chunk).options(num_cpus=1, scheduling_strategy="SPREAD")
        known_ref = ray.put(known)  # sent once, not with every task
        window: deque[Any] = deque()
        ahead = 2 * (len(self.actors) + max(self.cpus, 1))
        try:
            for i, start in enumerate(range(0, len(entries), self.chunk)):
                chunk = list(entries[start:start + self.chunk])
                pixels = decode.remote(chunk, known_ref, target, max_mp)
                window.append(self.actors[i % len(self.actors)].embed.remote(pixels))
                if len(window) >= ahead:
                    yield from self._take(ray, window.popleft())
            while window:
                yield from self._take(ray, window.popleft())
        finally:
            for ref in window:
                ray.cancel(ref)

    def _take(self, ray: Any, ref: Any) -> list[Work]:
        node, works, unread = self._get(ray, ref)
        for path in unread:
            if os.access(path, os.R_OK):
                reason = next((w.error for w in works if w.entry.path == path), None) or "cannot read"
                raise ClusterError(_unreadable_message(node, path, reason.removeprefix("cannot read: ")))
        return works

    def close(self) -> None:
        if not self._connected_here:
            for actor in self.actors:
                import ray

                ray.kill(actor)
            return
        import ray

        ray.shutdown()  # ends this job's actors and tasks
