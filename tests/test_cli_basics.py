"""The shim, lazy imports, help text and the README's command list."""

import re
import subprocess
import sys

from click.testing import CliRunner

from zsindex.cli import cli

from .conftest import REPO

HEAVY = ("torch", "open_clip", "faiss", "torchvision", "rawpy", "av", "imagecodecs", "ray")


def test_cli_import_and_help_do_not_load_heavy_modules():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import zsindex, zsindex.cli\n"
        "r = CliRunner().invoke(zsindex.cli.cli, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "for name in zsindex.cli.cli.commands:\n"
        "    r = CliRunner().invoke(zsindex.cli.cli, [name, '--help'])\n"
        "    assert r.exit_code == 0, (name, r.output)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_shim_runs_from_checkout():
    out = subprocess.run([sys.executable, str(REPO / "cli.py"), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "zsindex" in out.stdout and "classify" in out.stdout


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "zsindex", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "zsindex" in out.stdout


def test_every_command_has_an_example_and_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for name in cli.commands:
        help_text = CliRunner().invoke(cli, [name, "--help"]).output
        assert "zsindex " + name in help_text, f"{name} --help has no example"
        assert re.search(rf"zsindex {name}\b", readme), f"README does not show zsindex {name}"


def test_every_command_opening_an_index_uses_the_root_db_option():
    """`zsindex --db URL CMD` must reach every command that opens an index (serve ignored it once): each
    such command opens it through open_library (which reads the root --db) or passes db=root_db()."""
    import ast
    from pathlib import Path

    import zsindex

    src = Path(zsindex.__file__).parent
    missing = []
    for path in sorted(src.glob("cli*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef) or "index_dir" not in {a.arg for a in fn.args.args}:
                continue
            if fn.name in ("open_library",):
                continue
            calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call)]
            names = {getattr(c.func, "id", getattr(c.func, "attr", None)) for c in calls}
            direct = [c for c in calls if getattr(c.func, "id", None) == "Library"]
            if any(not any(k.arg == "db" for k in c.keywords) for c in direct):
                missing.append(f"{path.name}:{fn.name} (Library() without db=)")
            elif "open_library" not in names and "root_db" not in names:
                missing.append(f"{path.name}:{fn.name}")
    assert not missing, missing
