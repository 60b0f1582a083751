"""Shared test setup, and the two tiers of the suite.

- the fast tier, ``python -m pytest -m "not slow"``: NumPy only, in-process, after each
  change (docs/testing.md gives its time);
- the full suite, ``python -m pytest``: also every test marked ``slow`` -- the TensorFlow
  reference, the command line end to end (subprocesses), the browser, the full-size VGG16.
A test is slow when it uses a fixture of ``SLOW_FIXTURES``, when its code starts a process
(``run_cam``, ``run_module``, ``subprocess``), or when it says so (``@pytest.mark.slow``).

TensorFlow is the reference, on its Eigen CPU path: TF_ENABLE_ONEDNN_OPTS=0 must be set
before TensorFlow is imported. The default oneDNN path reorders float32 sums and routes
near-tied max-pool windows differently: its input gradients differ from Eigen's by 5e-2
(``python -m scripts.tf_paths``).
"""

import inspect
import os

import numpy as np
import pytest

from kerasfiles import write_keras1_h5
from helpers import reference_module
from vggnp.fast.blocks import BLOCKS
from vggnp.fast.threads import use_threads
from vggnp.nn.random_init import random_vgg16_weights

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Fixtures that bring TensorFlow, a browser, a full-size VGG16 file or a whole command run.
SLOW_FIXTURES = {"tf", "keras_files", "full_size", "vgg16_file", "weights_file", "saved_models",
                 "playwright", "run_folder", "corpus_run", "narrow_file", "fresh"}
STARTS_A_PROCESS = ("run_cam(", "run_module(", "subprocess.", "refused_in_child(")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: the full suite only (TensorFlow, subprocesses, "
                                       "browser, full-size VGG16); skip with -m 'not slow'")


def _is_slow(item):
    if item.get_closest_marker("slow") or SLOW_FIXTURES & set(item.fixturenames):
        return True
    try:
        source = inspect.getsource(item.function)
    except (OSError, TypeError):
        return False
    return any(call in source for call in STARTS_A_PROCESS)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _test_process_heap_as_it_is(monkeypatch):
    """Commands run in this process (``cam.main``) leave glibc's heap as pytest has it: the
    commands' setting (``fast.threads.keep_freed_memory``) is process-wide and would keep
    up to 256 MB freed for the rest of the suite. Its own tests call it where they mean to
    (``tests/test_process_settings.py``, in a subprocess)."""
    import vggnp.cli
    monkeypatch.setattr(vggnp.cli, "keep_freed_memory", lambda: False)


@pytest.fixture(scope="session")
def tf():
    """The tensorflow module. Missing TensorFlow skips locally but fails in CI (CI is set)."""
    return reference_module("tensorflow")


EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


@pytest.fixture(scope="session")
def photos():
    """The two real photos shipped in examples/ (CC0, from scikit-image): a cat, a coffee cup."""
    return [os.path.join(EXAMPLES, name) for name in ("chelsea.jpg", "coffee.jpg")]


@pytest.fixture(scope="module")
def small_model():
    """A narrow VGG16 (widths 4-8, 64x64 input, 5 classes) with realistic random weights."""
    from vggnp import VGG16
    weights = random_vgg16_weights(widths=(4, 6, 8, 8, 8), dense=(8, 8, 5),
                                   input_size=(64, 64), seed=1)
    return VGG16(weights, input_size=(64, 64))


@pytest.fixture(scope="session")
def shapes_model():
    """The committed shapes model (weights/), loaded once. Tests that change its weights
    put them back (the sanity checks' ``randomised`` does, and asserts it)."""
    from vggnp import load_keras_model
    from helpers import MODEL_PATH
    return load_keras_model(MODEL_PATH)


@pytest.fixture(scope="session")
def vgg16_file(tmp_path_factory):
    """A full-size VGG16 with realistic random weights, in the official file's layout."""
    path = tmp_path_factory.mktemp("weights") / "vgg16.h5"
    write_keras1_h5(path, random_vgg16_weights(seed=0))
    return str(path)


@pytest.fixture(scope="session")
def keras_files(tf, tmp_path_factory, photos):
    """The full-size VGG16 with realistic random weights, saved in every supported format.

    Returns (folder of the files, the photos as a preprocessed batch, TF reference values
    for the top-1 and for chosen classes, the Keras model).
    """
    import keras
    import tf_keras

    from tf_reference import reference, set_weights

    folder = tmp_path_factory.mktemp("keras_files")
    weights = random_vgg16_weights(seed=0)
    model = keras.applications.VGG16(weights=None)
    set_weights(model, weights)
    model.save_weights(folder / "keras3.weights.h5")
    model.save(folder / "keras3_model_save.h5")
    model.save(folder / "keras3.keras")
    write_keras1_h5(folder / "keras1_official_layout.h5", weights)
    model2 = tf_keras.applications.VGG16(weights=None)
    set_weights(model2, weights)
    model2.save_weights(str(folder / "keras2_save_weights.h5"))
    model2.save(str(folder / "keras2_model_save.h5"))
    del model2

    x = np.concatenate([
        keras.applications.vgg16.preprocess_input(
            keras.utils.img_to_array(keras.utils.load_img(p, target_size=(224, 224)))[None])
        for p in photos])
    refs = {"top": reference(tf, keras, model, x),
            "chosen": reference(tf, keras, model, x, class_indices=[386, 285])}
    return folder, x, refs, model


@pytest.fixture
def two_threads():
    """vggnp's block threads and the BLAS on two threads (VGG16's layers cut for two, as
    the commands run them on two cores), as before after."""
    before = BLOCKS.count
    restore = use_threads(2)
    yield BLOCKS
    BLOCKS.use(before)
    restore()
