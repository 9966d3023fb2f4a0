"""Run zsindex from a checkout without installing it: python cli.py --help"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zsindex.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
