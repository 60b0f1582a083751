"""What the command lines share (``vggnp.cam``, ``vggnp.activations``, ``vggnp.filters``):
exit codes, one-line errors, the model options and loading, class names, output checks.
Not a command itself; library modules never import it.
"""

import argparse
import errno
import os
import shlex
import sys
import warnings

from .files.download import DownloadError, official_weights
from .files.imagenet import class_index, classes
from .models.keras_convnet import load_keras_model
from .files.outputs import temporary_file
from .files.preprocess import PREPROCESS_MODES, channels_refusal
from .cli_lines import say, silence_stdout
from .files.errors import InputError, did_you_mean
from .files.labels import read_labels
from .methods.gradcam import conv_layer, last_names
from .fast import gemm
from .fast.threads import cores, free_cores, keep_freed_memory, use_threads
from .models.vgg16 import VGG16
from . import __version__

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_WEIGHTS, EXIT_OUTPUT = 0, 1, 2, 3, 4
EXIT_STDOUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 5, 130, 143
EXIT_CODES = (  # the end of vggnp.cam --help; docs/cli.md says each in full
    f"exit codes: {EXIT_OK} every image done, {EXIT_SOME_FAILED} some images failed (each "
    f"said why) or an internal error, {EXIT_USAGE} usage, {EXIT_WEIGHTS} the weights, "
    f"--model or --labels file, {EXIT_OUTPUT} the output folder, {EXIT_STDOUT} stdout closed "
    f"or full, {EXIT_INTERRUPTED} Ctrl-C, {EXIT_TERMINATED} SIGTERM (docs/cli.md)")


def command_line(module, argv=None):
    """The command as a user would type it again: ``python -m module`` and its arguments
    (argv, or this process's)."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])


def int_range(low, high):
    """An argparse type: an integer in low..high, or the usage error that says so."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value
    return parse


def warnings_as_notes(name):
    """Show any warning that reaches the command (Pillow's on an odd file, say) as one line,
    ``name: note: message``, once per message, not Python's two lines with a source line."""
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            say(f"{name}: note: {text}")
    warnings.showwarning = show


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (exit 2) as every error, and --version."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"vggnp {__version__}")

    def error(self, message):
        say(f"{self.prog.split()[-1]}: {message} (see {self.prog} --help)")
        sys.exit(EXIT_USAGE)

    def parse_known_args(self, args=None, namespace=None):
        """argparse's, then the environment every command reads: VGGNP_GEMM
        (``fast.gemm.choice``), refused as a usage error (exit 2) before any work."""
        parsed = super().parse_known_args(args, namespace)
        try:
            gemm.choice()
        except ValueError as e:
            say(f"{self.prog.split()[-1]}: {e}")
            sys.exit(EXIT_USAGE)
        return parsed

    def _print_message(self, message, file=None):
        """--help and --version: a stdout that cannot take the text (closed, full) is exit
        5, as in a run, not exit 0 with the text lost."""
        file = file or sys.stderr
        if file is None:  # no stderr at all (closed): nowhere to say it, as argparse
            return
        try:  # argparse's own passes over an OSError: the text is lost, exit 0
            file.write(message)
            file.flush()
        except OSError:  # BrokenPipeError too
            if file is not sys.stdout:
                return
            silence_stdout()
            sys.exit(EXIT_STDOUT)


def prog_name(module):
    """How the command was called: ``python -m vggnp.cam``, or ``vggnp-cam`` (the installed
    script), for its usage line and messages."""
    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    script = module.replace(".", "-")
    return script if called == script else f"python -m {module}"


def fail(code, message, name="vggnp.cam", advice=()):
    """Say ``name: message`` on stderr, then each line of ``advice`` (each made printable
    on its own: a name in a message can never start a line); returns ``code``."""
    say(f"{name}: {message}")
    for line in advice:
        say(line)
    return code


def check_writable(folder):
    """Create ``folder`` if needed and prove that a file can be created in it; OSError
    if it cannot, its text what went wrong and what to do (os.makedirs' own for a file of
    that name is "File exists", and the probe's errors name the probe: said plainly)."""
    path = folder.rstrip(os.sep) or folder  # "file/" names the file too
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OSError(f"{path} exists and is not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = temporary_file(folder)
    except OSError as e:
        why = "free space or " if e.errno == errno.ENOSPC else ""
        raise OSError(f"{e.strerror or e} ({why}choose another folder with --out)") from e
    os.close(fd)
    os.unlink(probe)


def file_ids(paths):
    """{(device, inode)} of the files among ``paths``: what no output may replace."""
    ids = set()
    for path in paths:
        try:
            info = os.stat(path)
            ids.add((info.st_dev, info.st_ino))
        except (OSError, ValueError):  # ValueError: a name with a NUL byte
            pass
    return ids


def refuse_to_clobber(paths, input_ids, overwrite, own=frozenset()):
    """Why these outputs must not be written, or None: an input (its (device, inode) in
    ``input_ids``, see :func:`file_ids`) is never overwritten, and an existing file only
    with --overwrite or when it is vggnp's own earlier output of the same input (its
    absolute path in ``own``, see ``files.results.own_outputs``)."""
    for path in paths:
        if file_ids([path]) & input_ids:
            return f"{path} is one of the input images; choose another --out"
        if os.path.lexists(path) and not overwrite and os.path.abspath(path) not in own:
            return f"{path} exists; pass --overwrite to replace it, or choose another --out"
    return None


def load_model(model=None, weights=None, labels=None, preprocess=None, command="vggnp"):
    """(model, class table [(wnid, name)], preprocess mode, model file) for the options
    --model, --weights (default: the official file), --labels and --preprocess. A
    preprocessing the model does not say is a guess, and ``command`` says so in a note.
    Raises an InputError (weights, model or labels file) or DownloadError: exit 3."""
    if model:
        network = load_keras_model(model)
        if preprocess is None and network.preprocess_guessed:
            say(f"{command}: note: {model}: --preprocess rescale (pixels / 255) assumed: the "
                "model neither rescales its input nor holds a Keras Applications model; pass "
                "--preprocess (tf, caffe, torch, none) if it was trained otherwise")
        n = network.class_count
        names = read_labels(labels, n) if labels else [f"class_{i}" for i in range(n)]
        return network, [("", name) for name in names], \
            preprocess or network.default_preprocess, model
    path = weights or official_weights()
    return VGG16.load(path, need_top=True), classes(), preprocess or "vgg16", path


def cam_layer(model, layer):
    """--layer of a CAM: the conv layer given, or the model's last; ValueError with the
    command line's one line if it is not a conv layer of the model."""
    try:
        return conv_layer(model, layer)
    except ValueError:
        if model.map_names == model.conv_names:  # VGG16: its feature maps are its convs
            raise ValueError(no_conv_layer(layer, model.map_names)) from None
        raise ValueError(no_feature_map(layer, model)) from None


def no_feature_map(layer, model):
    """The one line for a --layer of a graph that is not one of its feature maps."""
    maps = model.map_names
    shown = last_names(maps) + (" (--trace lists them all)" if len(maps) > 12 else "")
    what = (f"layer {layer!r} has no feature map (an (N, h, w, C) output)"
            if layer in model.names else f"no layer {layer!r}{did_you_mean(layer, maps)}")
    return f"--layer: {what}; the layers with one: {shown}"


def no_conv_layer(layer, conv_names):
    """The one line for a --layer of a chain that is not one of its ``conv_names``."""
    return (f"--layer: no conv layer {layer!r}{did_you_mean(layer, conv_names)}; the conv "
            f"layers: {', '.join(conv_names)}")


def find_class(text, table):
    """A class index from an index or a name in ``table`` [(wnid, name)]."""
    if table is classes():
        return class_index(text)
    if text.strip().isdigit() and int(text) < len(table):
        return int(text)
    found = [i for i, (_, name) in enumerate(table) if name.lower() == text.strip().lower()]
    if len(found) > 1:  # a labels file may name two classes alike
        raise ValueError(f"class {text!r} names classes {', '.join(map(str, found))}: pass "
                         "its index")
    if found:
        return found[0]
    raise ValueError(f"unknown class {text!r}{did_you_mean(text, [n for _, n in table])}; "
                     f"the classes are {', '.join(name for _, name in table)}, or an index "
                     f"0..{len(table) - 1}")


def model_options(p):
    """--weights / --model / --preprocess, as in vggnp.cam."""
    p.add_argument("--weights", metavar="PATH", help="VGG16 weights (default: the official "
                                                     "ImageNet file, downloaded once)")
    p.add_argument("--model", metavar="PATH", help="your own Keras convnet (model.save file)")
    p.add_argument("--preprocess", choices=PREPROCESS_MODES,
                   help="input scaling (default: as vggnp.cam chooses)")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: .)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    threads_option(p)


def threads_option(p):
    """--threads N, for every command (see ``apply_process_settings``)."""
    p.add_argument("--threads", type=int_range(1, 1024), metavar="N",
                   help=f"threads (default: the cores this process may use, {cores()} "
                        "here: its CPU affinity and cgroup quota; for the BLAS, less those "
                        "that other work keeps busy when the command starts)")


def apply_process_settings(args, busy=None):
    """A command's settings for its passes. Limit the BLAS to --threads (default:
    ``free_cores()``, the cores this process may use that other work does not keep busy
    now; busy: its ``BusyCores``, begun before the model loaded) and VGG16's block threads
    to --threads (default: ``cores()``: a thread on a busy core takes fewer blocks, where
    two BLAS threads wait for it at every product: docs/speed.md); keep freed memory for
    the next pass (``threads.keep_freed_memory``). Returns the BLAS count."""
    keep_freed_memory()
    count = args.threads or free_cores(busy=busy)
    use_threads(count, blocks=args.threads or cores())
    return count


def check_model_options(p, args):
    """The model options' own rule, for every command: one model, from one file."""
    if args.model and args.weights:
        p.error("--model and --weights exclude each other")


def model_and_layer(p, argv):
    """Add the model options to the parser ``p``, parse ``argv``, check the output folder,
    load the model and find --layer. Returns (args, (model, preprocess mode, layer)), or
    (args, an exit code) after printing why."""
    model_options(p)
    args = p.parse_args(argv)
    check_model_options(p, args)
    apply_process_settings(args)
    name = p.prog.split()[-1]
    try:
        check_writable(args.out)
    except OSError as e:
        return args, fail(EXIT_OUTPUT, f"cannot write to the output folder {args.out}: {e}",
                          name)
    try:
        model, _, mode, _ = load_model(args.model, args.weights, None, args.preprocess, name)
    except (InputError, DownloadError) as e:
        return args, fail(EXIT_WEIGHTS, str(e), name, e.advice)
    if channels_refusal(mode, model.channels):
        return args, fail(EXIT_USAGE, "--" + channels_refusal(mode, model.channels), name)
    if args.layer not in model.names:
        return args, fail(EXIT_USAGE, f"--layer: no layer {args.layer!r}"
                          f"{did_you_mean(args.layer, model.names)}; layers: "
                          f"{', '.join(model.names)}", name)
    return args, (model, mode, model.layer(args.layer))
