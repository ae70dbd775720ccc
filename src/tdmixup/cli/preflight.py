"""What the command line checks before it writes anything, and how an error reaches the user.

:func:`check_command_line` runs before a command opens its run folder: every file an option
names exists (id files also parse), and the output folder is a folder this user can write in.
The data files themselves are read and validated by :func:`tdmixup.run.session.open_session`
before it writes ``config.json``, and the config dataclasses refuse impossible values when they
are built, so a refused command leaves nothing behind that would refuse its corrected rerun.

:func:`run_command` turns what goes wrong into one line on stderr: the option, file, row and
field as the user typed them, exit status 2; Ctrl-C says how to resume, exit status 130; an
unexpected error says it is one, exit status 1. ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("tdmixup.cli")

RESUMABLE = {"run", "train", "dynamics", "aum", "experiment"}
"""Commands whose finished stages and epochs survive an interruption."""
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_BUG = 1


class UsageError(ValueError):
    """A command-line value that cannot work; the message names the option as typed."""


def check_command_line(ns: argparse.Namespace) -> None:
    """Refuse, before anything is written, options that name missing files or an unwritable folder.

    Checks ``--train-file``, ``--dev-file``, the paths of ``--test-file [NAME=]PATH``, ``--subset``
    (exists and holds one integer sample id per line), ``--dynamics``, ``--checkpoint`` (a folder),
    ``--output-dir`` (see :func:`check_output_dir`) and that ``--report-to``'s package is
    installed.

    Raises:
        UsageError: naming the first option that fails, with its value as typed.
        tdmixup.training.tracking.TrackingError: ``--report-to``'s package is missing.
    """
    from tdmixup.training.tracking import require_tracker

    require_tracker(getattr(ns, "report_to", "none"))
    for option, value, path in _input_files(ns):
        check_input_file(path, option, shown=value)
    for path in _as_list(getattr(ns, "subset", None)):
        _check_id_file(path)
    checkpoint = getattr(ns, "checkpoint", None)
    if checkpoint is not None and not Path(checkpoint).is_dir():
        what = "is a file, not a checkpoint folder" if Path(checkpoint).exists() else "not found"
        raise UsageError(
            f"--checkpoint {checkpoint}: {what} (pass the checkpoint/ folder of a trained stage)"
        )
    if getattr(ns, "output_dir", None) is not None:
        check_output_dir(ns.output_dir)


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _input_files(ns: argparse.Namespace) -> Iterator[tuple[str, str, str]]:
    """(option, value as typed, path) of every input file the options name."""
    for dest, option in (
        ("data__train_file", "--train-file"),
        ("data__dev_file", "--dev-file"),
        ("dynamics", "--dynamics"),
    ):
        for path in _as_list(getattr(ns, dest, None)):
            yield option, path, path
    for item in _as_list(getattr(ns, "data__test_files", None)):
        from tdmixup.core.config import named_test_file

        try:
            _, path = named_test_file(item)
        except ValueError:  # refused with its own message when the data loads
            continue
        yield "--test-file", item, path


def check_input_file(path: str, option: str, *, shown: str | None = None) -> None:
    """Refuse an input ``path`` that is missing, a folder or unreadable; the message starts with
    ``option`` and ``shown`` (the value as typed; default ``path``)."""
    p, given = Path(path), f"{option} {shown if shown is not None else path}"
    if not p.exists():
        near = (
            f" (the folder {p.parent} holds no such file)"
            if p.parent.is_dir() and str(p.parent) != "."
            else ""
        )
        raise UsageError(f"{given}: file not found{near}")
    if p.is_dir():
        raise UsageError(f"{given}: is a folder, expected a file")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{given}: not readable (check its permissions)")


def _check_id_file(path: str) -> None:
    from tdmixup.dynamics.datamap import read_region_file

    check_input_file(path, "--subset")
    try:
        read_region_file(path)
    except UnicodeDecodeError as err:
        raise UsageError(f"--subset {path}: not a text file of sample ids ({err.reason})") from err
    except ValueError as err:
        raise UsageError(f"--subset {err}") from err


def check_output_dir(path: str, option: str = "--output-dir") -> None:
    """Refuse an output folder that is a file, lies under a file, or cannot be written.

    Writing is probed by creating and removing a temporary file in the folder, or in its nearest
    existing parent when the folder is still to be made, so the check agrees with what the run
    will meet (permissions, read-only file systems, root).
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{option} {path}: is a file, not a folder (choose a folder name)")
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(
            f"{option} {path}: {existing} is a file, so no folder can be made under it"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".tdmixup-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        where = "" if existing == target else f" (its nearest existing parent {existing})"
        raise UsageError(
            f"{option} {path}: cannot write in this folder{where}: {err.strerror}; "
            "choose a folder you can write to"
        ) from err


def run_command(func: Callable[[argparse.Namespace], int], ns: argparse.Namespace) -> int:
    """Run one command; every failure becomes one line on stderr and an exit status.

    Returns:
        the command's status; 2 for a user error (bad option, file, data, or inconsistent run
        folder), 130 after Ctrl-C, 1 for an unexpected error (a bug: ``-v`` shows where).
    """
    verbose = bool(getattr(ns, "verbose", False))
    try:
        import transformers

        # e.g. the unused pooler / cut layers are expected
        transformers.logging.set_verbosity_error()
        check_command_line(ns)
        return int(func(ns))
    except KeyboardInterrupt:
        _traceback(verbose)
        if getattr(ns, "command", None) in RESUMABLE:
            hint = "run the same command again to resume (finished stages and epochs are kept)"
        else:
            hint = "nothing was kept; run the same command again"
        print(f"{_fresh_line()}interrupted: {hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - every error ends as one line; the traceback with -v
        _traceback(verbose)
        if isinstance(err, _user_errors()):
            print(f"{_fresh_line()}error: {one_line(err)}", file=sys.stderr)
            return EXIT_USAGE
        more = (
            "please report it"
            if verbose
            else "run again with -v for the traceback and please report it"
        )
        print(
            f"{_fresh_line()}error: unexpected {type(err).__name__}: {one_line(err)} "
            f"(a bug in tdmixup: {more})",
            file=sys.stderr,
        )
        return EXIT_BUG


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message tells the user what to fix (bad options, files, data, run folders)."""
    from tdmixup.data.schema import DataError
    from tdmixup.model.classifier import ModelLoadError
    from tdmixup.run.pipeline import PipelineError
    from tdmixup.training.loop import TrainingError
    from tdmixup.training.tracking import TrackingError

    return (
        DataError,
        ModelLoadError,
        PipelineError,
        TrackingError,
        TrainingError,
        ValueError,
        OSError,
    )


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line; an OS error as ``PATH: reason``."""
    if isinstance(err, OSError) and err.strerror and not isinstance(err, UsageError):
        target = f"{err.filename}: " if err.filename else ""
        return f"{target}{err.strerror}"
    return " ".join(str(err).split()) or type(err).__name__


def _traceback(verbose: bool) -> None:
    if verbose:
        traceback.print_exc(file=sys.stderr)


def _fresh_line() -> str:
    """A newline when stderr is a terminal (a progress bar may hold the current line)."""
    return "\n" if sys.stderr.isatty() else ""
