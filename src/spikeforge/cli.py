"""The ``spikeforge`` command (also ``python -m spikeforge``).

The subcommands are declared by the experiments themselves (a ``COMMANDS`` tuple in each module
of :mod:`spikeforge.experiments`, see :mod:`spikeforge.experiments.registry`); this module only
collects them into one parser. ``spikeforge reproduce --list`` prints every reproduction with its
expected run time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spikeforge.data import DataCorruptError, DataNotFoundError
from spikeforge.experiments.registry import GROUPS, Command, collect_commands

__all__ = ["build_parser", "main"]

DESCRIPTION = "Spiking neural networks in PyTorch: exact TTFS mapping, multi-step neurons."


def _list_commands(parser: argparse.ArgumentParser, commands: list[Command]) -> None:
    """Make ``spikeforge GROUP --list`` print the group's commands with their run times."""
    width = max(len(c.name) for c in commands)
    lines = ["expected run time with 2 cores, then what each command does:"]
    for c in commands:
        lines += [f"  {c.name:<{width}}  {c.runtime or '-'}", f"  {'':<{width}}  {c.help}"]

    def run(args: argparse.Namespace) -> int:
        if not args.list:
            parser.error("choose a command (or --list)")
        print("\n".join(lines))
        return 0

    parser.add_argument(
        "--list", action="store_true", help="list the commands with their expected run time"
    )
    parser.set_defaults(run=run)


def build_parser(commands: Sequence[Command] | None = None) -> argparse.ArgumentParser:
    """The ``spikeforge`` parser of ``commands`` (default: every declared command)."""
    commands = list(collect_commands() if commands is None else commands)
    parser = argparse.ArgumentParser(prog="spikeforge", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in (c for c in commands if c.group is None):  # top-level commands first
        _add_command(sub, cmd)
    for name, (help_text, dest) in GROUPS.items():
        members = [c for c in commands if c.group == name]
        if members:
            group = sub.add_parser(name, help=help_text)
            _list_commands(group, members)
            group_commands = group.add_subparsers(dest=dest)
            for cmd in members:
                _add_command(group_commands, cmd)
    return parser


def _add_command(owner: argparse._SubParsersAction, cmd: Command) -> None:
    command_parser = owner.add_parser(cmd.name, help=cmd.help)
    cmd.add_arguments(command_parser)
    command_parser.set_defaults(run=cmd.run)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DataNotFoundError, DataCorruptError) as exc:
        print(f"spikeforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikeforge: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
