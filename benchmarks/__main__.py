"""Run every benchmark and keep its figures: python -m benchmarks [--quick]

Each benchmark script prints one JSON object (figures, machine, date,
commit); this runner saves them to benchmarks/results/<name>.json, where the
README's figures come from.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {
    "ingest": [],
    "search": [],
    "tag": [],
    "serve": [],
    "vs_rclip": [],
    "precision": [],
    "ingest_memory": [],
    "vectors_large": [],
    "media": ["--shots", "12"],
    "ray_ingest": [],
}
QUICK = {
    "ingest": ["--files", "60"],
    "search": ["--sizes", "10000,100000", "--queries", "50"],
    "tag": ["--images", "100000", "--labels", "200"],
    "serve": ["--sizes", "100000", "--queries", "30", "--repeats", "100"],
    "vs_rclip": ["--rounds", "1"],
    "precision": ["--per-pair", "10"],
    "ingest_memory": ["--sizes", "300,3000"],
    "vectors_large": ["--sizes", "100000", "--queries", "50"],
    "media": ["--shots", "3", "--video-minutes", "0.5", "--video-size", "640x360"],
    "ray_ingest": ["--files", "40"],
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes in all")
    p.add_argument("names", nargs="*", help=f"which benchmarks: {', '.join(RUNS)} (default: all)")
    args = p.parse_args()
    unknown = set(args.names) - set(RUNS)
    if unknown:
        p.error(f"unknown benchmark {', '.join(sorted(unknown))}")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    failed = 0
    for name in args.names or list(RUNS):
        extra = QUICK[name] if args.quick else RUNS[name]
        print(f"running {name} {' '.join(extra)}", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *extra], capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            failed += 1
            continue
        result = json.loads(done.stdout[done.stdout.index("{"):])
        (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        for fig in result["figures"]:
            rest = {k: v for k, v in fig.items() if k not in ("figure", "value", "unit")}
            print(f"{name:7s} {fig['figure']:45s} {fig.get('value', '')} {fig.get('unit', '')} {rest or ''}".rstrip())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
