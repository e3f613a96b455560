"""The ``melodance`` command line: parse, call library code, print.

Each pipeline package contributes its subcommands through a small
``commands`` module with a ``register(subparsers)`` function. Those modules
import only the standard library at the top so that ``melodance --help``
answers in well under a second; heavy libraries load inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from melodance import __version__
from melodance.errors import MelodanceError

COMMAND_MODULES = (
    "melodance.data.commands",
    "melodance.validate.commands",
    "melodance.features.commands",
    "melodance.train.commands",
    "melodance.evaluate.commands",
    "melodance.tune.commands",
    "melodance.serve.commands",
    "melodance.ablate.commands",
    "melodance.evaluate.validity.commands",
    "melodance.render.commands",
    "melodance.ui.commands",
)

DESCRIPTION = """\
melodance: music-to-dance synthesis as a tracked, reproducible pipeline.

Typical use (in a clone of this repository):
  melodance data synth          write the embedded synthetic corpus into data/
  dvc repro                     the pipeline: validate -> features -> tune -> train
                                -> evaluate -> render -> register (each a command below)
  mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db   compare runs
"""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only where it says something: not when the help text
    already names it, and not for flags and options whose default is "not given"."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, True, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def _use_formatter(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:   # noqa: SLF001 - argparse offers no public walk
        if isinstance(action, argparse._SubParsersAction):   # noqa: SLF001
            for child in action.choices.values():
                if child.formatter_class in (argparse.HelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
                    child.formatter_class = HelpFormatter
                _use_formatter(child)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="melodance", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"melodance {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _use_formatter(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from melodance.tracking import Terminated

    try:
        rc = args.func(args)
    except MelodanceError as e:   # only what the user can fix: a bug prints its traceback
        print(f"melodance {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return 143
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
