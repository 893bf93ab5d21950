"""The subcommands experiments declare, collected by :mod:`spikeforge.cli`.

Every module (or package) of :mod:`spikeforge.experiments` that offers commands lists them in a
module-level ``COMMANDS`` tuple of :class:`Command`; :func:`collect_commands` imports each module
of the package in name order and gathers them. A new reproduction therefore adds one module and
no line to ``cli.py``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["GROUPS", "Command", "collect_commands"]

GROUPS: dict[str, tuple[str, str]] = {
    "reproduce": ("reproduce a paper experiment", "experiment"),
    "data": ("data set utilities", "action"),
    "files": ("file metadata: scan a tree, build debfiles, train and apply classifiers", "action"),
    "control": ("SNN controllers: train a host, run it with DWAM under degradations", "action"),
}
"""Command groups: name -> (help, argparse ``dest`` of the chosen subcommand)."""


@dataclass(frozen=True)
class Command:
    """One subcommand: ``spikeforge NAME`` (``group=None``) or ``spikeforge GROUP NAME``.

    ``add_arguments(parser)`` declares its options; ``run(args)`` executes it and returns the
    exit status. ``runtime`` is the expected run time of the default settings, shown by
    ``spikeforge GROUP --list``.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    group: str | None = None
    runtime: str = ""

    def __post_init__(self) -> None:
        if self.group is not None and self.group not in GROUPS:
            raise ValueError(f"command {self.name!r}: unknown group {self.group!r}")


def collect_commands() -> list[Command]:
    """Every ``COMMANDS`` entry of the modules directly inside :mod:`spikeforge.experiments`,
    modules in name order, commands in their declared order. Raises ``ValueError`` on a
    repeated ``(group, name)``."""
    import spikeforge.experiments as package

    commands: list[Command] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name == "registry":
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        commands += getattr(module, "COMMANDS", ())
    seen: set[tuple[str | None, str]] = set()
    for cmd in commands:
        key = (cmd.group, cmd.name)
        if key in seen:
            raise ValueError(f"two experiments declare the command {' '.join(filter(None, key))}")
        seen.add(key)
    return commands
