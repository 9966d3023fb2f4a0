"""zsindex against rclip on the same files and the same architecture, alternating, in one run.

    python benchmarks/vs_rclip.py [--rounds 2] [--copies 10] [--precision fp32] [--runtime auto]

Files: ../shared/tools/rclip_bench.sh builds (and keeps) a set of distinct
camera JPEGs, each of the 30 photos of ../shared/data/photos re-encoded
--copies times (300 files by default), and measures rclip 4.0.8 (ONNX Runtime,
untrained ViT-B-32-256 weights) on it: index from empty, query on the warm
index, re-run with nothing changed. zsindex is measured on the same folder
with the same architecture, untrained weights written by
../shared/tools/make_random_ckpt.py as a checkpoint file (--model ViT-B-32-256
--pretrained FILE), at its default settings unless --precision/--runtime say
otherwise:

  ingest from empty   `zsindex ingest SET` into a new index (the ONNX export of
                      the model is made once beforehand and cached, as rclip's
                      model files are; its cost is reported on its own)
  CPU per image       user + system seconds of the ingest (and its workers) per
                      file: what the work costs, whatever else the machine runs
  peak memory         the largest sum of resident memory over the zsindex
                      process and its decode workers, sampled every 20 ms
                      (rclip's figure is the maximum RSS of its one process)
  new text query      `zsindex search TEXT` with a text never asked before (median of 3 texts)
  repeated query      the same again (median of 3)
  repeated query with ZSINDEX_MODEL/ZSINDEX_PRETRAINED naming the checkpoint
  re-run ingest       with nothing changed (median of 3)

Rounds alternate which tool goes first, so that other load on the machine
falls on both alike; figures are medians over rounds and each ratio is
zsindex against rclip. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import REPO, report

SHARED = REPO.parent / "shared"  # the tools and photos beside the checkout (--shared elsewhere)
ARCH = "ViT-B-32-256"


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants, in MB (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(rss.get(p, 0) for p in tree) / 1e6


def timed(cmd: list[str], env: dict[str, str], sample: bool = False) -> dict[str, Any]:
    """Run a command; wall seconds and, if asked, the peak memory of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def watch() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    if sample:
        watcher.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if sample:
        watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the process and the workers it waited for
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "peak_mb": round(peak[0]), "stdout": out, "cpu_seconds": cpu}


def rclip(bench_dir: Path, copies: int) -> dict[str, Any]:
    env = {**os.environ, "RCLIP_BENCH_DIR": str(bench_dir)}
    done = subprocess.run(["bash", str(SHARED / "tools" / "rclip_bench.sh"), str(SHARED / "data" / "photos"),
                           str(copies)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"rclip_bench.sh failed:\n{done.stderr[-2000:]}")
    out = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    times = (bench_dir / "logs" / "index.time").read_text()  # /usr/bin/time -v of its indexing run
    cpu = sum(float(line.rsplit(":", 1)[1]) for line in times.splitlines()
              if line.strip().startswith(("User time", "System time")))
    out["cpu_seconds_per_image"] = round(cpu / out["files"], 4)
    return out


class Zsindex:
    def __init__(self, work: Path, ckpt: Path, extra: list[str]) -> None:
        self.work, self.ckpt, self.extra = work, ckpt, extra
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "ZSINDEX_HOME": str(work / "home"),
                    "HF_HUB_OFFLINE": "1"}
        for name in ("ZSINDEX_MODEL", "ZSINDEX_PRETRAINED", "ZSINDEX_INDEX"):
            self.env.pop(name, None)
        # An installed program runs from compiled bytecode (pip compiles rclip's at install; zsindex's is
        # written on its first run). Where PYTHONDONTWRITEBYTECODE is set, as in some sandboxes, every
        # zsindex run would compile its modules again: about 0.1 s that no installed copy pays.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.rounds = 0

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "zsindex", *args]

    def warm_export(self, files: list[Path]) -> float:
        """Make the cached ONNX export (once per model identity) on a throwaway index of two files."""
        scratch = self.work / "warm"
        scratch.mkdir(exist_ok=True)
        for f in files[:2]:
            (scratch / f.name).symlink_to(f)
        t = timed(self.cli("ingest", str(scratch), "--follow-symlinks", "--index", str(self.work / "warm-index"), "-q",
                           "--model", ARCH,
                           "--pretrained", str(self.ckpt), *self.extra), self.env)
        return round(t["seconds"], 1)

    def measure(self, folder: Path, n_files: int) -> dict[str, Any]:
        self.rounds += 1
        index = self.work / f"index-{self.rounds}"
        ingest = timed(self.cli("ingest", str(folder), "--index", str(index), "-q", "--json", "--model", ARCH,
                                "--pretrained", str(self.ckpt), *self.extra), self.env, sample=True)
        added = json.loads(ingest["stdout"].strip().splitlines()[-1])["added"]
        assert added == n_files, f"zsindex added {added} of {n_files}"
        # Three texts never asked before in this index, then the last one again (repeated).
        new = [timed(self.cli("search", f"a dog number {self.rounds}.{i}", "--index", str(index), "-k", "10"),
                     self.env)["seconds"] for i in range(3)]
        query = ["search", f"a dog number {self.rounds}.2", "--index", str(index), "-k", "10"]
        repeated = [timed(self.cli(*query), self.env)["seconds"] for _ in range(3)]
        with_env = {**self.env, "ZSINDEX_MODEL": ARCH, "ZSINDEX_PRETRAINED": str(self.ckpt)}
        repeated_env = [timed(self.cli(*query), with_env)["seconds"] for _ in range(3)]
        noop = [timed(self.cli("ingest", str(folder), "--index", str(index), "-q"), self.env)["seconds"]
                for _ in range(3)]
        return {"files": added, "index_seconds": round(ingest["seconds"], 2),
                "cpu_seconds_per_image": round(ingest["cpu_seconds"] / added, 4),
                "images_per_second": round(added / ingest["seconds"], 2), "peak_rss_mb": ingest["peak_mb"],
                "new_query_seconds": round(statistics.median(new), 2), "new_query_runs": [round(x, 2) for x in new],
                "query_seconds": round(statistics.median(repeated), 2),
                "query_with_env_checkpoint_seconds": round(statistics.median(repeated_env), 2),
                "noop_reindex_seconds": round(statistics.median(noop), 2)}


def median_of(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--copies", type=int, default=10)
    p.add_argument("--precision", choices=["fp32", "int8"], default=None)
    p.add_argument("--runtime", choices=["auto", "onnx", "torch"], default=None)
    p.add_argument("--bench-dir", default=os.environ.get("RCLIP_BENCH_DIR", "/tmp/rclipbench"),
                   help="where rclip_bench.sh keeps its venvs, model files and the file set")
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="folder with tools/ and data/photos")
    args = p.parse_args()
    global SHARED
    SHARED = args.shared
    extra = [f"--{k}={v}" for k, v in (("precision", args.precision), ("runtime", args.runtime)) if v]
    bench_dir = Path(args.bench_dir)
    work = Path(tempfile.mkdtemp(prefix="zsindex-vs-rclip-"))
    ckpt_dir = bench_dir / "zsindex-ckpt"
    if not (ckpt_dir / "open_clip_pytorch_model.bin").is_file():
        subprocess.run([sys.executable, str(SHARED / "tools" / "make_random_ckpt.py"), ARCH, str(ckpt_dir)],
                       check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(SHARED / "tools")})
    ckpt = ckpt_dir / "open_clip_pytorch_model.bin"
    rows: dict[str, list[dict[str, Any]]] = {"rclip": [], "zsindex": []}
    zs = Zsindex(work, ckpt, extra)
    rows["rclip"].append(rclip(bench_dir, args.copies))  # also builds the file set on a first run
    folder = bench_dir / f"set-{args.copies}"
    files = sorted(f for f in folder.iterdir() if not f.name.startswith("."))
    export_s = zs.warm_export(files)
    rows["zsindex"].append(zs.measure(folder, len(files)))
    for r in range(1, args.rounds):
        order = ("zsindex", "rclip") if r % 2 else ("rclip", "zsindex")
        for tool in order:
            rows[tool].append(zs.measure(folder, len(files)) if tool == "zsindex" else rclip(bench_dir, args.copies))
    keys = ["images_per_second", "cpu_seconds_per_image", "peak_rss_mb", "query_seconds", "noop_reindex_seconds"]
    figures = []
    for key in keys:
        a, b = median_of(rows["zsindex"], key), median_of(rows["rclip"], key)
        figures.append({"figure": key, "zsindex": a, "rclip": b, "ratio_zsindex_to_rclip": round(a / b, 3)})
    for key in ("new_query_seconds", "query_with_env_checkpoint_seconds"):
        a, b = median_of(rows["zsindex"], key), median_of(rows["rclip"], "query_seconds")
        figures.append({"figure": key, "zsindex": a, "rclip_query_seconds": b,
                        "ratio_zsindex_to_rclip": round(a / b, 3)})
    report("vs_rclip", figures, rounds=rows, files=len(files), model=f"{ARCH}, untrained weights",
           zsindex_options=extra or "defaults", zsindex_export_seconds_once=export_s,
           load_average_at_end=os.getloadavg())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
