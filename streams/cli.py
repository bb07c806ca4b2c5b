"""The ``arscore`` command line: one sub-command per module in :mod:`streams.commands`.

Every failure a user can cause (bad flag, missing file, unreachable broker) ends as a
one-line ``arscore: ...`` message and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("simulate", "replay", "bootstrap", "backtest", "import_ledger",
            "worker", "demo", "produce", "tail", "web")


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog.removeprefix('arscore ')}: {message}")


class _Version(argparse.Action):
    """``arscore --version``: the version and which core runs (imports the core to see)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from models.build import arscore_version, describe

        print(f"arscore {arscore_version()}\n{describe()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="arscore", description="Streaming collections scorer for AR.")
    parser.add_argument("--version", action=_Version,
                        help="print the version and which core runs (compiled or pure Python)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"streams.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"streams.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"arscore: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("arscore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        print(f"arscore: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    # `python -m streams.cli` loads this file as __main__; run the real module's main so
    # CliError raised by commands is the same class this handler catches.
    from streams.cli import main as _main

    sys.exit(_main())
