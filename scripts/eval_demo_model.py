"""Measure the shipped demo model on freshly drawn shapes (the figures in the README).

    python scripts/eval_demo_model.py [--model demo] [--per-pair 50]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsindex.demo import measure_quality  # noqa: E402
from zsindex.embedder import load_embedder  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--per-pair", type=int, default=50, help="fresh images per colour+shape pair")
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args()
    embedder = load_embedder(args.model, device="cpu")
    result = measure_quality(embedder, args.per_pair, args.seed)
    print(json.dumps({"model": embedder.identity, "per_pair": args.per_pair, "top1": result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
