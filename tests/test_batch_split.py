"""A batch's forward with its early layers one image at a time (``vggnp.fast.batch_split``)
gives the outputs and activations of the plain forward; Score-CAM runs its masked images
that way."""

import numpy as np

from vggnp.fast.batch_split import forward_keeping, forward_split
from vggnp.methods.explain import score_cam


def test_split_forwards_equal_the_plain_forward(small_model):
    x = np.random.default_rng(0).uniform(-100, 100, (3, 64, 64, 3)).astype(np.float32)
    plain, kept = small_model.forward(x, keep=("block3_conv2",))
    assert small_model.batch_split == "block4_pool"
    assert np.allclose(forward_split(small_model, x), plain, rtol=1e-6, atol=1e-7)
    outputs, activations = forward_keeping(small_model, x, "block3_conv2")
    assert np.allclose(outputs, plain, rtol=1e-6, atol=1e-7)
    assert np.allclose(activations, kept["block3_conv2"], rtol=1e-6, atol=1e-6)


def test_score_cam_runs_its_batches_split(small_model, monkeypatch):
    """Each batch of masked images goes through forward_split, and the map is the one of
    a plain forward (to float32 rounding)."""
    x = np.random.default_rng(1).uniform(-100, 100, (1, 64, 64, 3)).astype(np.float32)
    c = [int(small_model.predict(x).argmax())]
    seen = []

    def spy(model, batch):
        seen.append(len(batch))
        return forward_split(model, batch)
    monkeypatch.setattr("vggnp.methods.scorecam.forward_split", spy)
    split = score_cam(small_model, x, "block5_conv3", c, batch_size=3, skip_dead=False)
    assert seen and max(seen) == 3 and sum(seen) == 8  # block5_conv3 has 8 channels
    monkeypatch.setattr("vggnp.methods.scorecam.forward_split", lambda m, b: m.forward(b))
    plain = score_cam(small_model, x, "block5_conv3", c, batch_size=3, skip_dead=False)
    assert np.abs(split - plain).max() <= 1e-5
