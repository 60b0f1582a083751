"""Shared test setup.

TensorFlow is the reference. Its default CPU path (oneDNN) reorders float32 sums enough to
differ from an exact implementation by 2e-2 on input gradients, so the reference runs on
the Eigen path: TF_ENABLE_ONEDNN_OPTS=0 must be set before TensorFlow is imported.
"""

import os

import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tf():
    """The tensorflow module. Missing TensorFlow skips locally but fails in CI (CI is set)."""
    try:
        import tensorflow
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("TensorFlow is required in CI: the reference tests must run "
                        "(pip install -e '.[test]')")
        pytest.skip("TensorFlow not installed: reference test skipped")
    return tensorflow
