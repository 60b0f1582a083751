"""What the command lines share (``vggnp.cam``, ``vggnp.activations``, ``vggnp.filters``):
exit codes, one-line errors, the model options and loading, class names, output checks.
Not a command itself; library modules never import it.
"""

import argparse
import os
import shlex
import sys
import warnings

from .files.download import DownloadError, official_weights
from .files.imagenet import class_index, classes
from .files.model_files import load_keras_model
from .files.outputs import temporary_file
from .files.preprocess import PREPROCESS_MODES
from .files.errors import InputError
from .files.labels import read_labels
from .model import VGG16

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_WEIGHTS, EXIT_OUTPUT = 0, 1, 2, 3, 4
EXIT_STDOUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 5, 130, 143


def command_line(module, argv=None):
    """The command as a user would type it again: ``python -m module`` and its arguments
    (argv, or this process's)."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])


def say(line):
    """One line on stderr; nothing at all when stderr is closed (never on stdout, where
    ``print(file=None)`` would put it)."""
    if sys.stderr is None:
        return
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def warnings_as_notes(name):
    """Show any warning that reaches the command (Pillow's on an odd file, say) as one
    line of ours, ``name: note: message``, once per message: never Python's two-line form
    with a source line."""
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            say(f"{name}: note: {text}")
    warnings.showwarning = show


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error said in one line (exit 2), like every other error."""

    def error(self, message):
        name = self.prog.split()[-1]
        say(f"{name}: {message} (see python -m {name} --help)")
        sys.exit(EXIT_USAGE)


def fail(code, message, name="vggnp.cam"):
    """Say ``name: message`` on stderr; returns ``code`` (the exit code)."""
    say(f"{name}: {message}")
    return code


def check_writable(folder):
    """Create ``folder`` if needed and prove that a file can be created in it."""
    os.makedirs(folder, exist_ok=True)
    fd, probe = temporary_file(folder)
    os.close(fd)
    os.unlink(probe)


def refuse_to_clobber(paths, inputs, overwrite):
    """Why these outputs must not be written, or None: an input is never overwritten, and
    an existing file only with --overwrite."""
    for path in paths:
        if any(os.path.exists(i) and os.path.exists(path) and os.path.samefile(path, i)
               for i in inputs):
            return f"{path} is one of the input images; choose another --out"
        if os.path.lexists(path) and not overwrite:
            return f"{path} exists; pass --overwrite to replace it"
    return None


def load_model(args):
    """(model, class table [(wnid, name)], preprocess mode, model file) for the arguments.
    Raises an InputError (weights, model or labels file) or DownloadError: exit 3."""
    if args.model:
        model = load_keras_model(args.model)
        n = 2 if model.outputs == 1 else model.outputs
        names = read_labels(args.labels, n) if args.labels else [f"class_{i}" for i in range(n)]
        return model, [("", name) for name in names], \
            args.preprocess or model.default_preprocess, args.model
    path = args.weights or official_weights()
    return VGG16.load(path, need_top=True), classes(), args.preprocess or "vgg16", path


def find_class(text, table):
    """A class index from an index or a name in ``table`` [(wnid, name)]."""
    if table is classes():
        return class_index(text)
    if text.strip().isdigit() and int(text) < len(table):
        return int(text)
    for i, (_, name) in enumerate(table):
        if name.lower() == text.strip().lower():
            return i
    raise ValueError(f"unknown class {text!r}; the classes are "
                     f"{', '.join(name for _, name in table)}")


def model_options(p):
    """--weights / --model / --preprocess, as in vggnp.cam."""
    p.add_argument("--weights", metavar="PATH", help="VGG16 weights (default: the official "
                                                     "ImageNet file, downloaded once)")
    p.add_argument("--model", metavar="PATH", help="your own Keras convnet (model.save file)")
    p.add_argument("--preprocess", choices=PREPROCESS_MODES,
                   help="input scaling (default: as vggnp.cam chooses)")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: .)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def model_and_layer(p, argv):
    """Add the model options to the parser ``p``, parse ``argv``, check the output folder,
    load the model and find --layer. Returns (args, (model, preprocess mode, layer)), or
    (args, an exit code) after printing why."""
    model_options(p)
    args = p.parse_args(argv)
    args.labels = None
    if args.model and args.weights:
        p.error("--model and --weights exclude each other")
    try:
        check_writable(args.out)
    except OSError as e:
        return args, fail(EXIT_OUTPUT, f"cannot write to the output folder {args.out}: {e}")
    try:
        model, _, mode, _ = load_model(args)
        return args, (model, mode, model.layer(args.layer))
    except (InputError, DownloadError) as e:
        return args, fail(EXIT_WEIGHTS, str(e))
    except KeyError as e:
        return args, fail(EXIT_USAGE, f"--layer: {e.args[0]}")
