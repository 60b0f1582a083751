"""Helpers the tests share: running a command as a user does, and reference libraries that
skip a test on a developer's machine but fail it in CI (``CI`` set), so that no check is
skipped unseen. (Fixtures are in conftest.py; Keras files in kerasfiles.py; TensorFlow
comparisons in reference_check.py; the bad-input corpus in corpus.py.)"""

import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from shapes_data import LABELS_PATH, MODEL_PATH  # noqa: F401 - shared from here too
from vggnp.files.results import RESULTS_NAME

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# What many tests share, said once: the committed shapes model (made by scripts/shapes.py),
# its three example images, and the narrow VGG16 of the weight-file tests.
SHAPES = [os.path.join(ROOT, "examples", f"{name}.png") for name in ("circle", "square",
                                                                     "triangle")]
MODEL = ["--model", MODEL_PATH, "--labels", LABELS_PATH]    # the command line's options
NARROW_WIDTHS = dict(widths=(4, 4, 8, 8, 8), dense=(16, 16, 10))
NARROW = dict(NARROW_WIDTHS, input_size=(64, 96))


def run_module(module, *args, timeout=600):
    """``python -m module args...`` from the project root; the CompletedProcess, text
    output captured."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def run_cam(*args, timeout=600):
    """``python -m vggnp.cam args...``, as a user runs it."""
    return run_module("vggnp.cam", *args, timeout=timeout)


def reference_module(name, install="pip install -e '.[test]'", load=True):
    """The imported module ``name``; skip locally, fail in CI, when it is missing.
    load=False only finds it (None): iNNvestigate imports only beside the legacy tf_keras,
    in a process of its own."""
    try:
        if not load:
            if importlib.util.find_spec(name) is None:
                raise ImportError(name)
            return None
        return importlib.import_module(name)
    except ImportError:
        missing(name, "the reference tests", install)


def reference_program(*names, install="apt-get install chromium"):
    """The path of the first program of ``names`` on PATH; skip locally, fail in CI."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    missing(names[0], "the browser tests", install)


def missing(name, tests, install, in_ci=True):
    """``name`` is not installed: skip the test here, fail it in CI (CI is set), where
    ``tests`` must run (unless not ``in_ci``: where CI cannot install it either)."""
    if os.environ.get("CI") and in_ci:
        pytest.fail(f"{name} is required in CI: {tests} must run ({install})")
    pytest.skip(f"{name} not installed: {tests} skipped here")


def json_lines(text):
    """The objects of ``vggnp.cam --json`` output: one per line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def done_images(text):
    """The images a ``--json`` run finished (its failed ones carry "error")."""
    return [r for r in json_lines(text) if "error" not in r]


def outputs_in(folder):
    """The files a run wrote into ``folder``, its results file left out."""
    return sorted(name for name in os.listdir(folder) if name != "vggnp-results.jsonl")


def interruptible():
    """A ``preexec_fn`` for a child that a test interrupts with Ctrl-C: SIGINT back to its
    default. A process started with SIGINT ignored (a background job of a shell without
    job control, as a CI script may run pytest) passes that on to its children, and
    Python then leaves it ignored, as a Unix program should: the test's SIGINT would do
    nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def copies(folder, sources, n):
    """n files in ``folder``: the sources again and again, as img_000.png ..."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        source = sources[i % len(sources)]
        path = os.path.join(folder, f"img_{i:03d}{os.path.splitext(source)[1]}")
        shutil.copy(source, path)
        paths.append(path)
    return paths


def records(out):
    """The image records of the results file (the intent lines before them left out)."""
    with open(os.path.join(out, RESULTS_NAME), encoding="utf-8") as f:
        return [r for r in map(json.loads, f) if "writing" not in r]


def spy(monkeypatch, owner, name, note=None):
    """[note(*args, **kwargs) for each call of owner.name from now on (until the test
    ends), or, without note, what the call returned]; the calls themselves unchanged."""
    seen, real = [], getattr(owner, name)

    def spying(*args, **kwargs):
        if note is not None:
            seen.append(note(*args, **kwargs))
            return real(*args, **kwargs)
        seen.append(real(*args, **kwargs))
        return seen[-1]
    monkeypatch.setattr(owner, name, spying)
    return seen


def assert_conv_as_the_lesson(fast, lesson, out, expected, dout, params, dtype, tolerance):
    """A fast conv's forward output ``out`` (N, H', W', F), and its dx (N, H, W, C), dW
    (KH, KW, C, F) and db (F,) for ``dout`` (N, H', W', F; ``params``: a BackwardPass with
    parameter gradients), each within ``tolerance`` of the largest value of the lesson's
    (``expected``: the lesson's forward output; the lesson in float64, the fast conv's
    backward given dout in ``dtype``)."""
    got = [fast.backward(dout.astype(dtype), params), fast.dw, fast.db]
    want = [lesson.backward(dout, params), lesson.dw, lesson.db]
    for mine, truth in zip([out, *got], [expected, *want]):
        assert mine.shape == truth.shape
        assert abs(mine - truth).max() <= tolerance * abs(truth).max()
