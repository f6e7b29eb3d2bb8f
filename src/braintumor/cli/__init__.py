"""Command-line interface: the only place that parses argv; one module per command group.

Commands parse flags, call one library function and print its result; work is done in the library.
"""

from __future__ import annotations

import argparse
import sys

from braintumor import DISCLAIMER, PATH_ERRORS, __version__
from braintumor.cli import data, evaluate, explain, predict, serve, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="braintumor",
        description=f"Brain-tumour MRI classification toolkit. {DISCLAIMER}",
    )
    parser.add_argument("--version", action="version", version=f"braintumor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    data.add_parsers(sub)
    train.add_parsers(sub)
    explain.add_parsers(sub)
    evaluate.add_parsers(sub)
    predict.add_parsers(sub)
    serve.add_parsers(sub)
    return parser


def _tolerant_streams() -> None:
    """Output never fails on a file name that is not valid UTF-8: stdout writes its bytes back unchanged
    (like the lists the commands write), stderr escapes them."""
    for stream, errors in ((sys.stdout, PATH_ERRORS), (sys.stderr, "backslashreplace")):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=errors if encoding == "utf8" else "backslashreplace")


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command `args` was parsed for, e.g. that of `data audit`."""
    for dest in ("command", "data_command"):
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or getattr(args, dest, None) not in sub.choices:
            break
        parser = sub.choices[getattr(args, dest)]
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `braintumor` command."""
    from braintumor.io import ScanReadError
    from braintumor.models.pretrained import PretrainedWeightsUnavailable

    _tolerant_streams()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the usage of the command that was given, not the top-level one
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args) or 0)
    except (ScanReadError, FileNotFoundError, ValueError, PretrainedWeightsUnavailable) as exc:
        print(f"braintumor: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an --out that is a file, a folder where a file goes, a full disk, permissions
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"braintumor: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("braintumor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
