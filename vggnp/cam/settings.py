"""What a ``vggnp.cam`` run resolves before its first image (``prepare``: the model, the
layer, the class, the BLAS threads), on this machine and on each worker of a cluster run,
and how a run stops early (``Stop``, the errors that say the output folder is unusable)."""

import contextlib
import errno
import signal
import threading
import time

from .state import RunSettings
from ..cli import (EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, EXIT_WEIGHTS,
                   apply_process_settings, cam_layer, fail, find_class, load_model)
from ..cli_run import Terminated
from ..fast.threads import BusyCores
from ..files.download import DownloadError
from ..files.errors import InputError
from ..files.preprocess import channels_refusal
from ..methods.lrp import input_bounds, model_refusal
from ..methods.registry import METHODS

# Errors that say the output folder is unusable (the run stops, exit 4); any other error
# while writing (a name too long, a character the file system refuses) fails one image.
FOLDER_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.EIO, errno.EFBIG, errno.ENOENT}


def folder_unusable(error):
    """True if ``error`` (raised while writing an image's outputs, or None) says the
    output folder is unusable, not this image (``FOLDER_ERRORS``)."""
    return isinstance(error, OSError) and error.errno in FOLDER_ERRORS


class Stop(Exception):
    """Ends the run early with an exit code, after its one line was printed."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def prepare(args, command, stop_wait):
    """Load the model, resolve --layer, --target and --class: the run's settings."""
    busy = BusyCores()  # the loading is free_cores' sample
    try:
        model, table, mode, weights_path = load_model(args.model, args.weights, args.labels,
                                                      args.preprocess, "vggnp.cam")
    except (InputError, DownloadError) as e:  # weights, model or labels file
        raise Stop(fail(EXIT_WEIGHTS, str(e), advice=e.advice))
    refusal = needs_probabilities(args, model)
    if refusal:
        raise Stop(fail(EXIT_USAGE, refusal))
    try:  # the input methods have no layer
        layer = cam_layer(model, args.layer) if METHODS[args.method].layer else None
    except ValueError as e:
        raise Stop(fail(EXIT_USAGE, str(e)))
    try:
        chosen_class = None if args.class_ is None else find_class(args.class_, table)
    except ValueError as e:
        raise Stop(fail(EXIT_USAGE, f"--class: {e}"))
    if channels_refusal(mode, model.channels):
        raise Stop(fail(EXIT_USAGE, "--" + channels_refusal(mode, model.channels)))
    refusal = lrp_refusal(args, model, mode)
    if refusal:
        raise Stop(fail(EXIT_USAGE, refusal))
    threads = apply_process_settings(args, busy)
    return RunSettings(model=model, own_model=model.replica(), table=table, mode=mode,
                       weights_path=weights_path, layer=layer,
                       target=args.target or METHODS[args.method].targets[0],
                       chosen_class=chosen_class, began=time.time(), command=command,
                       threads=threads, stop_wait=stop_wait)


def stream_options(args):
    """The keyword arguments of ``explain_files`` that come from the command line alone:
    --batch-size, how images are read, and the method's options."""
    return dict(batch_size=args.batch_size,
                read_options={"background": args.background, "max_pixels": args.max_pixels,
                              "allow_truncated": args.allow_truncated},
                method_options={name: vars(args)[name]
                                for name in METHODS[args.method].options})


def each_until_stopped(out, items, step):
    """``step(item)`` for each of ``items`` until the run stops: stdout closed, a stop
    set on ``out`` (e.g. the output folder unusable), Ctrl-C or SIGTERM (their exit code
    set on ``out.stop``)."""
    with stops_noted(out):
        for item in items:
            step(item)
            if out.lines.broken or out.stop:
                break


@contextlib.contextmanager
def stops_noted(out):
    """A Ctrl-C or SIGTERM inside ``with`` ends the block, its exit code set on
    ``out.stop`` unless the run had stopped already (that first reason stands)."""
    try:
        yield
    except KeyboardInterrupt:
        out.stop = out.stop or EXIT_INTERRUPTED
    except Terminated:
        out.stop = out.stop or EXIT_TERMINATED


@contextlib.contextmanager
def signals_ignored():
    """Ctrl-C and SIGTERM ignored meanwhile (a run's last outputs and records are being
    finished), then back as they were; nothing changes outside the main thread, where
    Python does not allow it (``main`` called from a thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


def needs_probabilities(args, model):
    """Why --target softmax, --metric or --method scorecam (its only target is softmax)
    cannot be used with this model, or None: they need the output probability, which a
    model ending in a linear layer does not give."""
    if model.output_activation in ("softmax", "sigmoid"):
        return None
    what = "--target softmax" if args.target == "softmax" else "--metric" if args.metric \
        else "--method scorecam" if args.method == "scorecam" else None
    if what:
        return (f"{what} needs class probabilities, but the model's last layer "
                f"({model.names[-1]}) is {model.output_activation}: its outputs are logits")
    return None


def lrp_refusal(args, model, mode):
    """Why --method lrp, deep-taylor or deconvnet cannot explain this model, or None
    (``lrp.model_refusal``): said once, before any image."""
    if args.method not in ("lrp", "deep-taylor", "deconvnet"):
        return None
    return model_refusal(model, args.method, args.rule, input_bounds(mode, model.channels),
                         args.epsilon, args.gamma)
