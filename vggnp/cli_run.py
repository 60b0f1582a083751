"""How a command runs, for every command line: the one error funnel (``run_command``), the
signals it turns into exit codes, and progress lines (``step_progress``). Beside
``cli.py``, which holds what the commands' parsers and messages share.
"""

import contextlib
import os
import signal
import sys
import threading
import time

from .cli import (EXIT_INTERRUPTED, EXIT_OUTPUT, EXIT_SOME_FAILED, EXIT_STDOUT, EXIT_TERMINATED,
                  fail, say, warnings_as_notes)
from .cli_lines import StdoutGone, silence_stdout
from .startup import started


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt: no ``except Exception`` swallows it."""


def raise_terminated(signum, frame):
    raise Terminated()


class DeferredSignals:
    """Ctrl-C and SIGTERM held back inside ``with`` and delivered at its end, to the
    handlers that were there before: for steps that must not be cut apart (an image's
    record in the results file and its lines on stdout: a Ctrl-C between them listed 116
    images as done and printed 115). Inside ``at_once()`` a signal is delivered at once:
    a write that may block (stdout, when the reader of its pipe stops reading) must stay
    interruptible. In the main thread only, where Python runs signal handlers; a handler
    set from C (``getsignal`` None) is left alone."""

    def __init__(self):
        self.caught, self.previous, self.holding = [], {}, False

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        self.holding = True
        try:
            for number in (signal.SIGINT, signal.SIGTERM):
                handler = signal.getsignal(number)
                if handler is not None:
                    self.previous[number] = handler
                    signal.signal(number, self._hold)
        except BaseException:  # a signal between the two: both handlers back first
            self.__exit__()
            raise
        return self

    def _hold(self, number, frame):
        if self.holding:
            self.caught.append(number)
            return
        handler = self.previous[number]  # this stand-in outlived the block: pass it on
        if callable(handler):
            handler(number, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(number, signal.SIG_DFL)
            signal.raise_signal(number)

    @contextlib.contextmanager
    def at_once(self):
        held, self.holding = self.holding, False
        try:
            yield
        finally:
            self.holding = held

    def __exit__(self, *exc):
        self.holding = False
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        if self.caught:
            signal.raise_signal(self.caught[0])


def cwd_gone(name):
    """EXIT_OUTPUT, after one line, if the working folder was deleted (every relative path,
    the default --out "." among them, would fail there); else None."""
    try:
        os.getcwd()
    except FileNotFoundError:
        return fail(EXIT_OUTPUT, "the current folder no longer exists (deleted?); cd to one "
                    "that does and run again", name)
    return None


def run_command(name, body):
    """The one error funnel of the commands: ``body()`` returns the exit code, and whatever
    it raises becomes one line on stderr and a documented exit code, never a traceback.
    The errors a command expects (a bad image, a missing file) it says itself, with more
    context; this is what is left: Ctrl-C, SIGTERM, a closed stdout, an output the system
    refuses (a name too long, a full disk), and our own bugs."""
    started()  # the imports are done: Ctrl-C is a KeyboardInterrupt again
    warnings_as_notes(name)
    gone = cwd_gone(name)
    if gone:
        return gone
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        return body()
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted; any output is whole or absent", name)
    except Terminated:
        return fail(EXIT_TERMINATED, "terminated; any output is whole or absent", name)
    except BrokenPipeError:
        silence_stdout()
        return EXIT_STDOUT
    except StdoutGone:
        silence_stdout()
        return fail(EXIT_STDOUT, "stdout was closed or full: the results could not all be "
                    "shown", name)
    except OSError as e:  # reading or writing: the system's own words, and the file
        where = f"{e.filename}: " if e.filename else ""
        return fail(EXIT_OUTPUT, f"{where}{e.strerror or e}", name)
    except MemoryError:
        return fail(EXIT_SOME_FAILED, "out of memory; try a smaller size or fewer items", name)
    except Exception as e:
        return fail(EXIT_SOME_FAILED, f"internal error ({type(e).__name__}: {e}); please "
                    "report it", name)
    finally:
        signal.signal(signal.SIGTERM, previous)


def progress_options(p):
    """--progress / --quiet: a line per step on stderr (by default on a terminal only)."""
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--progress", action="store_true",
                       help="a line per step on stderr even when it is not a terminal")
    shown.add_argument("--quiet", action="store_true", help="no progress lines")


def allow_truncated_option(p):
    """--allow-truncated, for each command that reads an image (``images.read_image``)."""
    p.add_argument("--allow-truncated", action="store_true",
                   help="use the readable part of a truncated image instead of failing it")


def step_progress(args, name, describe):
    """A callback ``(done, total, *what)`` that says one stderr line per step done: which
    (``describe(*what)``), how many, and the time left from the mean step so far; or None
    when no progress is wanted (``progress_options``)."""
    wanted = args.progress or (not args.quiet and sys.stderr is not None
                                and sys.stderr.isatty())
    if not wanted:
        return None
    started = time.monotonic()

    def said(done, total, *what):
        left = int((time.monotonic() - started) / done * (total - done))
        say(f"{name}: step {done}/{total} ({describe(*what)}) done; about {left // 60}:"
            f"{left % 60:02d} left")
    return said
