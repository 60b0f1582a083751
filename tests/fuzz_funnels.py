"""The funnels of the fuzz harness (issue #15) and the outcome of a case: each file kind
run through the funnel the command line uses (RUNNERS), and :func:`judge`, which says what
happened (ok, refused, traceback, wrong exit or over memory; see tests/fuzz.py).
"""

import os
import signal
import time
import traceback

import numpy as np

import vggnp
from vggnp import VGG16, WeightsError
from vggnp.files.errors import InputError, said
from vggnp.files.images import ImageError, read_image
from vggnp.files.labels import LabelsError, read_labels
from vggnp.models.keras_convnet import load_keras_model
from vggnp.files.preprocess import model_input
from vggnp.files.weights import read_vgg16_weights
from vggnp.files.outputs import remove_stale_temps
from vggnp.files.results import RESULTS_NAME, ResultsFile, own_outputs, valid_record
from vggnp.stream.batches import explain_files
from vggnp.viz.report import image_entry, shown_records

PACKAGE = os.path.dirname(os.path.abspath(vggnp.__file__))

try:  # under pytest, and in the worker (tests/ on the path)
    from fuzz_seeds import CIRCLE, H5_INPUT
except ImportError:  # imported as tests.fuzz_funnels by python -m scripts.fuzz
    from tests.fuzz_seeds import CIRCLE, H5_INPUT


EXPECTED = {"image": ImageError, "model": WeightsError, "weights": WeightsError,
            "labels": LabelsError, "results": (), "tempname": (),
            "selftest": ImageError}
MODEL_INPUTS = [((64, 64), 3, "none"), ((30, 41), 1, "rescale"), ((32, 32), 3, "vgg16")]


class Wrong(Exception):
    """What a funnel returned is not usable (its outcome: wrong exit)."""


def run_image(path, context):
    """read_image, model_input for three models, then the stream the command runs."""
    picture, notes = read_image(path)
    if picture.mode != "RGB" or min(picture.size) < 1 or any("\n" in n for n in notes):
        raise Wrong(f"read_image gave a {picture.mode} {picture.size} picture, notes {notes}")
    for size, channels, mode in MODEL_INPUTS:
        x = model_input(picture, size, channels, mode)
        if x.shape != (*size, channels) or x.dtype != np.float32 or not np.isfinite(x).all():
            raise Wrong(f"model_input gave {x.dtype} {x.shape}, finite: {np.isfinite(x).all()}")
    return explained(list(explain_files(context.demo, [path])))


def explained(results):
    """('ok' or 'refused', detail) from explain_files' results for one image."""
    if len(results) != 1:
        raise Wrong(f"explain_files gave {len(results)} results for one image")
    result = results[0]
    if result.error is not None:
        if isinstance(result.error, ImageError):
            return "refused", f"explain: {result.error}"
        raise result.error
    if not (np.isfinite(result.probs).all() and np.isfinite(result.map).all()):
        raise Wrong("explain_files gave non-finite scores or map without an error")
    return "ok", f"class {result.class_index}, p = {result.probs.max():.3f}"


def probe(model):
    """Predict one zero input, then explain examples/circle.png as the command does."""
    bad = [layer.name for layer in model.layers
           if any(not np.isfinite(w).all() for w in layer.weights or ())]
    if bad:
        raise Wrong(f"non-finite weights accepted at load: {bad}")
    model.predict(np.zeros((1, *model.input_size, model.channels), np.float32))
    return explained(list(explain_files(model, [CIRCLE], mode=model.default_preprocess)))


def run_weights(path, context):
    """read_vgg16_weights (narrow VGG16, with its top), then the model it makes."""
    weights = read_vgg16_weights(path, input_size=H5_INPUT, standard=False, need_top=True)
    return probe(VGG16(weights, input_size=H5_INPUT))


def run_labels(path, context):
    names = read_labels(path, 3)
    if len(names) != 3 or not all(isinstance(n, str) and n and "\n" not in n for n in names):
        raise Wrong(f"read_labels gave {names!r:.100}")
    return "ok", ", ".join(names)[:80]


def run_selftest(path, context):
    """The harness's own check: do what the file says (see test_fuzz)."""
    with open(path) as f:
        what = f.read()
    if what == "raise":
        return {}["missing"]
    if what == "sleep":
        time.sleep(3600)
    if what == "allocate":
        return bytearray(1 << 40)
    if what == "rss":
        return "ok", f"{np.ones(400 << 17).nbytes >> 20} MB touched"
    if what == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if what == "wrong kind":
        raise LabelsError(f"--labels {path}: a labels error from the image funnel")
    if what == "two lines":
        raise ImageError("first line\nsecond line")
    if what == "refuse":
        raise ImageError("refused, as it should be")
    return "ok", what


def run_results(path, context):
    """A results file read back as --resume, the ownership check and the report read it:
    never an error, whatever it holds (a FIFO, a link or a folder in its place: the one
    OSError of ResultsFile.check, which names it)."""
    folder = os.path.dirname(path)
    os.rename(path, os.path.join(folder, RESULTS_NAME))
    results = ResultsFile(folder)
    try:
        results.check()
    except OSError as e:  # the command's exit 4, with this one line
        if "\n" in str(e) or results.path not in str(e):
            raise Wrong(f"check() said {str(e)!r:.200}") from None
        return "refused", str(e)
    records = results.records()
    if not all(valid_record(r) for r in records):
        raise Wrong("records() gave a record that valid_record refuses")
    results.done()
    own_outputs(results.entries())
    entries = [image_entry(r, folder) for r in shown_records(records)]
    return "ok", f"{len(records)} records, {results.skipped} skipped, {len(entries)} shown"


def run_tempname(path, context):
    """A planted temporary name (the file's bytes), as a file and as a folder, then the
    clean-up every run does first: never an error; a folder is never removed."""
    with open(path, "rb") as f:
        name = os.fsdecode(f.read().replace(b"/", b"_").replace(b"\0", b"_")[:250])
    name = name if name not in ("", ".", "..") else name + "_"  # a name a file can have
    folder = os.path.join(os.path.dirname(path), "out")
    os.makedirs(os.path.join(folder, name + ".d"))
    open(os.path.join(folder, name), "wb").close()
    removed = remove_stale_temps(folder)
    if not os.path.isdir(os.path.join(folder, name + ".d")):
        raise Wrong("remove_stale_temps removed a folder")
    return "ok", f"{removed} removed"


RUNNERS = {"image": run_image, "results": run_results, "tempname": run_tempname,
           "model": lambda path, context: probe(load_keras_model(path)),
           "weights": run_weights, "labels": run_labels, "selftest": run_selftest}


def _chain(error):
    """The error and those it was raised from or during (even if suppressed)."""
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def signature(error):
    """'Type at vggnp/file.py:line function (raised in lib/file.py:line function)'."""
    frames = traceback.extract_tb(error.__traceback__)
    # vggnp's own frames: those in the package's folder, wherever the clone is (a clone
    # named vggnp has tests/ in a folder called vggnp too)
    ours = [f for f in frames if os.path.abspath(f.filename).startswith(PACKAGE + os.sep)]

    def where(frame):
        name = os.path.abspath(frame.filename)
        short = "vggnp/" + os.path.relpath(name, PACKAGE).replace(os.sep, "/") \
            if frame in ours else "/".join(name.split(os.sep)[-2:])
        return f"{short}:{frame.lineno} {frame.name}"
    text = type(error).__name__
    if ours:
        text += f" at {where(ours[-1])}"
    if frames and frames[-1] not in ours[-1:]:
        text += f" (raised in {where(frames[-1])})"
    return text


def judge(kind, path, context):
    """(outcome, detail, signature or '') of running ``path`` through ``kind``'s funnel."""
    try:
        outcome, detail = RUNNERS[kind](path, context)
        return outcome, detail, ""
    except Wrong as e:
        return "wrong exit", str(e), ""
    except (Exception, SystemExit) as e:
        if any(isinstance(link, MemoryError) for link in _chain(e)):
            return "over memory", said(e), signature(_chain(e)[-1])
        if isinstance(e, EXPECTED[kind]):
            message = str(e)
            if "\n" in message or not message.strip():
                return "wrong exit", f"not one line: {message!r:.300}", ""
            if kind != "image" and kind != "selftest" and path not in message:
                return "wrong exit", f"no path in the message: {message:.300}", ""
            return "refused", message, ""
        if isinstance(e, InputError):
            return "wrong exit", f"{type(e).__name__} from the {kind} funnel: {said(e)}", ""
        return "traceback", said(e), signature(e)
