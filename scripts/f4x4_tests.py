"""A pytest plugin that runs the tests with Winograd F(4x4, 3x3) on VGG16's block3 and
block4 (``scripts/conv_paths.F4x4Layers``: forward and dx, kernels transformed in each
call), to see whether the TensorFlow reference tests hold with its float32 rounding:

    python -m pytest -p scripts.f4x4_tests tests/test_tf_reference.py tests/test_explain.py \\
        tests/test_gradcam.py tests/test_attribution.py

Not part of the suite; docs/speed.md says what it found.
"""

import pytest


@pytest.fixture(autouse=True, scope="session")
def f4x4_on_block3_and_block4():
    from scripts.conv_paths import NETWORK_LAYERS, F4x4Layers
    with F4x4Layers(NETWORK_LAYERS) as f4x4:
        f4x4.on = True
        yield
