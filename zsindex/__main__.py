"""`python -m zsindex`, and the `zsindex` program: the command line.

A Ctrl-C from the first moment ends it with 130 (interrupts.py), so the handler goes in before the command
line's modules are imported.
"""

from .interrupts import stop_at_once


def main() -> None:
    stop_at_once()
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
