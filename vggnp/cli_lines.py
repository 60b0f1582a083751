"""The commands' lines: results on stdout (``show``), everything else on stderr (``say``),
each made printable; and what a stdout that cannot take them means (exit 5)."""

import os
import sys

from .files.errors import LINE_LIMIT, printable


def say(line):
    """One line on stderr, control characters escaped and cut at LINE_LIMIT (see
    ``printable``); nothing at all when stderr is closed (never on stdout, where
    ``print(file=None)`` would put it)."""
    if sys.stderr is None:
        return
    try:
        print(printable(line, LINE_LIMIT), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


class StdoutGone(Exception):
    """stdout is closed or full: the results cannot be shown (exit 5, ``run_command``)."""


def show(line, as_is=False):
    """One result line on stdout, made printable as :func:`say` makes its lines (unless
    ``as_is``: JSON); StdoutGone if stdout is closed (print would drop it) or full."""
    if sys.stdout is None:  # fd 1 closed: print would drop the line without a word
        raise StdoutGone()
    try:
        print(line if as_is else printable(line, LINE_LIMIT), flush=True)
    except BrokenPipeError:  # a reader that had enough (| head): exit 5, quietly
        raise
    except (OSError, ValueError) as e:
        raise StdoutGone() from e


def silence_stdout():
    """Point fd 1 at /dev/null so that Python's final flush cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass
