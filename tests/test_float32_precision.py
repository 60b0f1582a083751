"""Float32 where it loses digits: each formula that rounded a small value to 0 (or a
multiple of float32's epsilon) in an earlier version, held to float64 here (found by an
audit of the formulas, 2026-12-03; the first by a CI run, a sigmoid output of 7e-9)."""

import numpy as np
import pytest

from vggnp.nn.activation_functions import ELU, GELU, Sigmoid, Softmax, Swish, Tanh


def rng():
    return np.random.default_rng(7)


def test_sigmoid_keeps_small_values_precise_in_float32():
    """A float32 sigmoid output of 7e-9 (logit -18.8) is 7e-9 to float32's precision, not
    the 3e-8 that (1 + tanh(z / 2)) / 2 rounds it to; its derivative p (1 - p) stays
    positive where p rounds to 1 (the old 1 - p was 0 there)."""
    z = np.array([-18.8, -10.4, -1.0, 0.0, 3.0, 20.0], np.float32)
    exact = 1 / (1 + np.exp(-z.astype(np.float64)))
    sigmoid = Sigmoid()
    p = sigmoid.forward(z)
    assert p.dtype == np.float32
    assert np.abs(p / exact - 1).max() <= 1e-6
    slope = sigmoid.backward(np.ones_like(z))
    assert np.abs(slope / (exact * (1 - exact)) - 1).max() <= 1e-6


def test_softmax_gradient_of_a_sure_class_keeps_its_own_term():
    """p = softmax([20, 0, 2]) has p[0] = 1 - 1.7e-8, 1.0 in float32: the gradient of p[0]
    is p[0] (1 - p[0]) = 1.7e-8 at z[0], which the Jacobian p (dp - sum(dp p)) written
    plainly gives as 0 in float32. Every seed, float32 within 1e-6 of the float64 result
    (relative to its largest entry)."""
    z = np.array([[20.0, 0.0, 2.0], [1.0, 2.0, 3.0]])
    exact, softmax = Softmax(), Softmax()
    exact.forward(z)
    softmax.forward(z.astype(np.float32))
    for seed in (np.eye(3)[[0, 0]], np.eye(3)[[1, 2]], rng().standard_normal((2, 3))):
        truth = exact.backward(seed)
        got = softmax.backward(seed.astype(np.float32))
        assert got.dtype == np.float32
        assert (np.abs(got - truth).max(axis=1) <= 1e-6 * np.abs(truth).max(axis=1)).all()
    assert softmax.backward(np.eye(3, dtype=np.float32)[[0, 0]])[0, 0] > 0


def test_smooth_activations_keep_float32_precision_in_their_tails():
    """tanh's slope at |x| = 9..10, ELU near 0, GELU below -5 and swish's tails (x / (1 +
    exp(-x)), its slope from ``sigmoid``), in float32: within 1e-5
    (relative) of the float64 values, where 1 - t t, e^x - 1 and 1 + erf lost every digit
    (tanh' 0 at 10 for 8.2e-9, ELU 40 % off at -1e-7, GELU 0 at -6 for -5.9e-9)."""
    cases = [(Tanh, [-10.0, -9.0, 0.5, 9.0, 10.0]), (ELU, [-1e-7, -1e-5, -0.5, 2.0]),
             (GELU, [-6.0, -5.0, -4.0, 0.3, 3.0]), (Swish, [-80.0, -30.0, -18.0, -0.2, 18.0])]
    for kind, values in cases:
        x = np.array(values)
        exact, got = kind(), kind()
        out64, out32 = exact.forward(x), got.forward(x.astype(np.float32))
        slope64, slope32 = exact.backward(np.ones_like(x)), got.backward(np.ones_like(out32))
        assert out32.dtype == slope32.dtype == np.float32, kind
        for mine, truth in ((out32, out64), (slope32, slope64)):
            assert (np.abs(mine - truth) <= 1e-5 * np.abs(truth) + 1e-30).all(), (kind, mine)


def test_grad_cam_pp_weights_survive_tiny_gradients_in_float32():
    """Gradients ~1e-25 (a softmax target of a class with p ~ 1e-25): float32 weights within
    1e-5 of float64's, not emptied by g^2 and g^3 underflowing."""
    from vggnp.methods.cams import gradcam_pp_weights
    r = np.random.default_rng(3)
    A = np.maximum(r.standard_normal((2, 5, 4, 6)), 0)
    g = r.standard_normal((2, 5, 4, 6)) * 1e-25
    exact = gradcam_pp_weights(A, g)
    got = gradcam_pp_weights(A.astype(np.float32), g.astype(np.float32))
    assert np.abs(got - exact).max() <= 1e-5 * np.abs(exact).max() and exact.any()


def test_a_sure_binary_classifiers_class_0_keeps_its_small_score():
    """One sigmoid unit at logit ~20 (p = 1 in float32): class 0 scores s(-z) ~ 2e-9, as in
    float64, not float32's 1 - p = 0; its deletion curve is then not zero. Outputs not
    from the last forward (here: edited) are refused, not scored with another batch's z."""
    from vggnp.nn.layers import Conv2D, Dense, Flatten
    from vggnp.nn.network import Network
    r = np.random.default_rng(1)
    w, x = r.standard_normal((3, 3, 3, 4)), np.abs(r.standard_normal((2, 6, 6, 3)))
    dense = r.standard_normal((6 * 6 * 4, 1)) * 0.1

    def model(dtype):
        layers = [Conv2D("conv", w.astype(dtype), np.zeros(4, dtype)), Flatten("flatten"),
                  Dense("out", dense.astype(dtype), np.full(1, 20.0, dtype), "sigmoid")]
        return Network(layers, (6, 6))
    exact, ours = model(np.float64), model(np.float32)
    truth = exact.class_scores(exact.forward(x))
    outputs = ours.forward(x.astype(np.float32))
    scores = ours.class_scores(outputs)
    assert (outputs == 1).all() and (truth[:, 0] < 1e-7).all()
    assert np.abs(scores - truth).max(axis=0)[0] <= 1e-5 * truth[:, 0].max()
    with pytest.raises(ValueError, match="last forward"):
        ours.class_scores(outputs * 0.5)  # not the outputs of its kept logits
    from vggnp.methods.faithfulness import deletion_insertion_curves
    deletion, _ = deletion_insertion_curves(ours, x[0].astype(np.float32), np.ones((6, 6)), 0,
                                            steps=3)
    assert min(deletion) > 0


def test_a_gradient_picture_does_not_depend_on_the_gradients_scale():
    """The same gradient at std 1 and 1e-8 (a softmax target's) gives the same picture
    (grey +- 0.1 per std), not a faded one; a zero gradient is plain grey."""
    from vggnp.viz.overlay import gradient_image
    g = np.random.default_rng(0).standard_normal((6, 5, 3))
    big, small = gradient_image(g), gradient_image(g * 1e-8)
    assert np.abs(big - small).max() <= 1e-6 and big.max() - big.min() > 0.4
    assert np.array_equal(gradient_image(np.zeros((2, 2, 3))), np.full((2, 2, 3), 0.5))


def test_a_single_logit_output_scores_class_0_as_its_negation():
    """A 1-unit model without activation outputs the logit z: class 0's logit is -z (as its
    backward seed has it), so class 1 wins exactly where z > 0 (1 - z chose class 0 at
    z = 0.4)."""
    from vggnp.nn.layers import Dense, Flatten
    from vggnp.nn.network import Network
    model = Network([Flatten("flatten"), Dense("out", np.ones((4, 1)), np.zeros(1), "linear")],
                    (2, 2))
    outputs = model.forward(np.full((3, 2, 2, 1), [[[[-0.1]]], [[[0.1]]], [[[2.0]]]]))
    scores = model.class_scores(outputs)
    assert np.allclose(scores, [[0.4, -0.4], [-0.4, 0.4], [-8, 8]])
    assert list(scores.argmax(axis=1)) == [0, 1, 1]


def test_the_sigmoid_takes_any_shape_and_dtype():
    """A 0-d array, a NumPy or Python scalar, integers: s(z) and s(-z) as the formula
    gives them (float32 stays float32; integers and Python floats give float64)."""
    from vggnp.nn.activation_functions import sigmoid
    for z, dtype in ((np.array(1.0, np.float32), np.float32), (np.float32(1), np.float32),
                     (1.0, np.float64), (np.array([1, -2]), np.float64)):
        p, q = sigmoid(z)
        truth = 1 / (1 + np.exp(-np.asarray(z, np.float64)))
        assert np.asarray(p).dtype == dtype and np.allclose(p, truth, rtol=1e-6)
        assert np.allclose(q, 1 - truth, rtol=1e-6)
