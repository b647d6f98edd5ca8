"""The `auditor` command line: parse arguments, hand over to `auditor.app`.  No logic here.

Each subcommand lives in its own module exposing `register(subparsers)`; the module sets
`func` on its parser to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Callable, Sequence

from auditor import __version__
from auditor.errors import AuditorError

COMMAND_MODULES: tuple[str, ...] = ("run", "audit", "explain", "whatif", "recommend", "report", "record",
                                     "replay_server", "demo")
"""Modules under auditor.cli that register a subcommand, in help order."""


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="auditor",
        description="Explain Cilium/Hubble policy verdicts against the NetworkPolicies in force.",
    )
    parser.add_argument("--version", action="version", version=f"auditor {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"auditor.cli.{name}")
        module.register(subparsers)
    return parser


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> None:
    """Report unknown arguments with the usage of the subcommand they were given to (argparse would print
    the top-level usage), suggesting the closest option of that subcommand; exits 2."""
    command = _subcommand(parser, getattr(args, "command", None)) or parser
    options = [o for action in command._actions for o in action.option_strings]
    hints = [f"{extra} (did you mean {close[0]}?)" for extra in extras if extra.startswith("-")
             for close in [difflib.get_close_matches(extra.split("=", 1)[0], options, n=1)] if close]
    command.error(f"unrecognized arguments: {' '.join(extras)}" + (f"; {'; '.join(hints)}" if hints else ""))


def _subcommand(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            chosen: argparse.ArgumentParser = action.choices[name]
            return chosen
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `auditor` console script."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        _unrecognized(parser, args, extras)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return func(args)
    except AuditorError as exc:
        print(f"auditor {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file or socket problem no command anticipated: still one line, no traceback
        print(f"auditor {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
