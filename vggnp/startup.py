"""The first instant of a command: a Ctrl-C or SIGTERM while Python is still importing
NumPy, Pillow and the rest (about half a second) ends the process with one line and the
documented exit code (130, 143), not a ``KeyboardInterrupt`` traceback or a silent death.
Nothing has been read or written by then. Only the standard library's ``os`` and
``signal`` are imported here, so the guard is up before anything heavy loads.

It is also the moment to set what NumPy reads as it loads (``COMMAND_ENVIRONMENT``,
where the environment does not say otherwise): NumPy asks the kernel for huge pages for
its large arrays (madvise), and where the kernel then compacts memory at each fault (the
usual default, THP "defrag: madvise"; on this project's machines after other large
processes) a pass stalls: Xception's Grad-CAM read 204-230 ms against TensorFlow's 110-119
in three runs of the graph bench, 159 against 106 with huge pages off; VGG16's forward,
Grad-CAM and input gradient were 3-11 % faster without them (docs/speed.md).

And its last instant (``end_process``): the command's process ends without the
interpreter's teardown once the run has said and written everything."""

import os
import signal
import sys

_CODES = {signal.SIGINT: ("interrupted", 130), signal.SIGTERM: ("terminated", 143)}
COMMAND_ENVIRONMENT = {"NUMPY_MADVISE_HUGEPAGE": "0"}  # read by NumPy when it loads
_GUARDS = []  # the handlers guard() installed: started() replaces only those


def guard(name, environment=True):
    """Install the start-up handlers of the command ``name`` (e.g. "vggnp.cam"); a signal
    that was ignored (nohup, a background job) stays ignored. Returns the handlers it
    replaced, for :func:`started`. With ``environment`` (a command's own process, not a
    call from Python), sets ``COMMAND_ENVIRONMENT``'s variables that are not set already
    and holds the standard descriptors the command started without
    (:func:`hold_standard_descriptors`)."""
    for variable, value in COMMAND_ENVIRONMENT.items() if environment else ():
        os.environ.setdefault(variable, value)
    if environment:
        hold_standard_descriptors()

    def stop(signum, frame):
        word, code = _CODES[signum]
        try:
            os.write(2, f"{name}: {word} while starting; nothing was done\n".encode())
        finally:
            os._exit(code)
    _GUARDS.append(stop)
    previous = {signum: signal.getsignal(signum) for signum in _CODES}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, stop)
    return previous


def hold_standard_descriptors():
    """Point each of fds 0, 1, 2 that the command started without (``>&-``) at /dev/null,
    so that no file the run opens takes that number. Python has set sys.stdout (or
    stdin, stderr) to None by then, so the run still knows it is gone; but an output's
    temporary file that took fd 1 was turned into /dev/null by the run's own
    ``silence_stdout`` (its fsync then failed, EINVAL: one image "not written", in about
    one run in twelve with stdout closed)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def started(previous=None):
    """The imports are done: where the guard is up, the handler it replaced goes back
    (``previous``, from :func:`guard`; by default Python's own: Ctrl-C raises
    KeyboardInterrupt, SIGTERM is the command's to set). Other handlers are left alone."""
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    for signum, handler in (previous or defaults).items():
        if signal.getsignal(signum) in _GUARDS:
            signal.signal(signum, handler if handler is not None else defaults[signum])


def end_process(code):
    """End a command's process with exit code ``code`` once stdout and stderr are flushed,
    skipping the interpreter's teardown: freeing NumPy's, Pillow's and h5py's modules and
    the model's arrays one by one took 40-42 ms of a 0.6 s run (4 ms without it; the kernel
    frees the memory at once: docs/speed.md). Only for a run that has returned: its
    outputs and results file are closed by then (written and renamed whole,
    ``files/outputs.py``), and no thread of its own writes any more. A stdout closed by now
    has had the run's lines (each flushed as written): nothing is left to report; a Ctrl-C
    while a stdout that does not drain holds the flush ends it with 130, not a traceback.
    Under a profiler, a tracer or coverage, which write their files in that teardown, it
    returns ``code`` for the caller's ``sys.exit`` instead."""
    if sys.getprofile() is not None or sys.gettrace() is not None or "coverage" in sys.modules:
        return code
    try:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):  # closed: the run said what it could and knows it
                pass
    except KeyboardInterrupt:
        code = _CODES[signal.SIGINT][1]
    os._exit(code)
