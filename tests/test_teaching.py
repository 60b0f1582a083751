"""Issue #8: the trace's counts, docs/math.md's numbers and links, the gradcheck command
(and that it catches a broken backward), and --diagnose on constructed cases."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from helpers import MODEL_PATH, ROOT, run_cam
from vggnp import VGG16, grad_cam
from vggnp.nn import spec
from vggnp import gradcheck
from vggnp.methods.diagnose import diagnose
from vggnp.keras_model import load_keras_model
from vggnp.nn.random_init import random_vgg16_weights
from vggnp.nn.trace import layer_facts, markdown_numbers, parameter_count

DOC = os.path.join(ROOT, "docs", "math.md")


@pytest.fixture(scope="module")
def vgg16():
    return VGG16(random_vgg16_weights(seed=0))


def independent_madds():
    """Multiply-adds of VGG16 from the paper's table alone: 3x3 convs, each at its block's
    resolution (224, halved after every pool), then the three dense layers."""
    total, size, channels = 0, 224, 3
    for filters, convs in spec.BLOCKS:
        for _ in range(convs):
            total += size * size * 3 * 3 * channels * filters
            channels = filters
        size //= 2
    return total + 7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000


def test_trace_counts_equal_independent_values(vgg16):
    rows = []
    vgg16.forward(np.zeros((1, 224, 224, 3), np.float32), trace=rows)
    facts = [layer_facts(row["layer"], row["output"]) for row in rows]
    assert sum(f[0] for f in facts) == parameter_count(vgg16) == 138_357_544
    assert sum(f[1] for f in facts) == independent_madds() == 15_470_264_320
    assert facts[0][2] == (224 * 224, 27) and facts[1][2] == (224 * 224, 576)
    assert [row["output"] for row in rows][-1] == (1, 1000)


def test_trace_counts_no_bias_for_use_bias_false():
    """Keras counts no bias for use_bias=False; vggnp keeps a zero bias to add, not count."""
    from vggnp.nn.layers import Conv2D, Dense
    w = np.ones((3, 3, 2, 4), np.float32)
    assert layer_facts(Conv2D("c", w), (1, 5, 5, 4))[0] == 72
    assert layer_facts(Conv2D("c", w, np.zeros(4, np.float32)), (1, 5, 5, 4))[0] == 76
    assert layer_facts(Dense("d", np.ones((6, 3), np.float32)), (1, 3))[0] == 18


def test_grad_cam_trace_shows_the_path(capsys):
    model = load_keras_model(MODEL_PATH)
    x = np.asarray(Image.open(os.path.join(ROOT, "examples", "circle.png")),
                   dtype=np.float32)[None]
    details = {}
    grad_cam(model, x, details=details, trace=True)
    out = capsys.readouterr().out
    visited = [row["layer"].name for row in details["trace"]["backward"]]
    assert visited == model.names[-1:model.names.index(model.last_conv):-1]
    assert (f"visited {len(visited)} layers, stopped at the output of {model.last_conv} (the "
            f"gradient needed); not run {len(model.names) - len(visited)}") in out
    assert "multiply-adds" in out and "39,518,400" in out  # the shapes model's total


def test_math_doc_numbers_are_the_codes(vgg16):
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"<!-- numbers: begin -->\n(.*)\n<!-- numbers: end -->", text, re.S)
    assert block and block.group(1) == markdown_numbers(vgg16)
    assert "138,357,544 parameters" in block.group(1)


def test_math_doc_links_name_real_functions():
    import importlib
    with open(DOC, encoding="utf-8") as f:
        links = re.findall(r"\[`([\w.]+)`\]\(\.\./vggnp/([\w/]+)\.py\)", f.read())
    assert len(links) >= 10
    for name, module in links:
        obj = importlib.import_module(f"vggnp.{module.replace('/', '.')}")
        for part in name.split("."):
            obj = getattr(obj, part)  # raises if the doc names something that is not there


def test_gradcheck_passes_and_catches_a_broken_backward(monkeypatch, capsys):
    assert gradcheck.main() == 0
    assert "all backward passes agree" in capsys.readouterr().out
    from vggnp.nn.layers import PLAIN, MaxPool2D
    real = MaxPool2D.backward
    monkeypatch.setattr(MaxPool2D, "backward",
                        lambda self, dout, options=PLAIN: 1.01 * real(self, dout, options))
    assert gradcheck.main() == 1
    out = capsys.readouterr().out
    assert re.search(r"MaxPool2D 2x2 .* FAILED", out) and "FAILED" in out.splitlines()[-1]


def shapes_case():
    model = load_keras_model(MODEL_PATH)
    x = np.asarray(Image.open(os.path.join(ROOT, "examples", "circle.png")),
                   dtype=np.float32)[None]
    return model, x


def test_diagnose_names_saturation():
    model, x = shapes_case()
    lines, suggestion = diagnose(model, x)
    assert "saturated" in lines[0] and "saturated" in suggestion


def test_diagnose_suggests_the_counterfactual_when_all_evidence_is_against():
    """Global average pooling then Dense: d logit_c / d A^k = W[k, c] / (h w). With every
    W[:, c] negative, every alpha_k is negative and the Grad-CAM map is empty."""
    model, x = shapes_case()
    dense = model.layers[-1]
    c = 1
    dense.w = dense.w.copy()
    dense.w[:, c] = -np.abs(dense.w[:, c]) - 0.01
    lines, suggestion = diagnose(model, x, class_index=c)
    assert "100% negative" in lines[1] and "EMPTY" in lines[3]
    assert "counterfactual" in suggestion


def test_trace_and_diagnose_from_the_cli(tmp_path):
    from shapes_data import LABELS_PATH
    result = run_cam(os.path.join(ROOT, "examples", "circle.png"), "--model", MODEL_PATH,
                     "--labels", LABELS_PATH, "--out", str(tmp_path), "--trace", "--diagnose",
                     "--json")
    assert result.returncode == 0, result.stderr
    assert "im2col matrix" in result.stderr and "visited 2 layers" in result.stderr
    assert "diagnose" in result.stderr and "suggestion:" in result.stderr
    assert result.stdout.lstrip().startswith("{")  # stdout stays one JSON document


def test_trace_of_a_pass_to_the_input(capsys):
    from vggnp.methods.explain import explain
    model, x = shapes_case()
    explain(model, x, "saliency", trace=True)
    out = capsys.readouterr().out
    assert f"visited {len(model.names)} layers; not run 0: none" in out


FLIPPED_LINES = [f"Conv2D {k}x{k} same, 16 ch, flipped kernel" for k in (3, 5)] + [
    "Conv2D 3x3 valid, 16 ch, flipped kernel"]


def test_gradcheck_checks_the_flipped_kernel_backward(monkeypatch):
    """Issue #12: the >= 16-channel conv backward, dx = correlate(dz, w_flipped), has
    its own float64 lines (dx, dW, db <= 1e-7), and they are the ones that run it. Spies
    on vggnp.fast.layers (correlate, FastConv2D._flipped_kernel) and vggnp.nn.layers
    (col2im) record, check by check, which path each Conv2D backward took."""
    import vggnp.fast.layers as fast_layers
    import vggnp.nn.layers as layers
    seen = {"flipped": [], "correlate": [], "col2im": 0}
    real_flipped, real_correlate, real_col2im = (fast_layers.FastConv2D._flipped_kernel,
                                                 fast_layers.correlate, layers.col2im)

    def flipped(self):
        kernel = real_flipped(self)
        seen["flipped"].append((self.w, kernel))
        return kernel

    def correlate(x, kernel, *args, **kwargs):
        seen["correlate"].append(kernel)
        return real_correlate(x, kernel, *args, **kwargs)

    def col2im(*args, **kwargs):
        seen["col2im"] += 1
        return real_col2im(*args, **kwargs)

    monkeypatch.setattr(fast_layers.FastConv2D, "_flipped_kernel", flipped)
    monkeypatch.setattr(fast_layers, "correlate", correlate)
    monkeypatch.setattr(layers, "col2im", col2im)
    paths = {}
    for name, errors in gradcheck.checks():  # a generator: each check runs before its yield
        paths[name] = (len(seen["flipped"]), seen["col2im"], errors)
        if name in FLIPPED_LINES:
            assert set(errors) == {"dx", "dw", "db"}
            assert all(e <= gradcheck.TOLERANCE for e in errors.values()), (name, errors)
            assert len(seen["flipped"]) == 1 and seen["col2im"] == 0, name
            w, kernel = seen["flipped"][0]
            assert w.shape[2] >= 16 and w.dtype == np.float64
            assert np.array_equal(kernel, w[::-1, ::-1].transpose(0, 1, 3, 2))
            # the kernel the backward hands to correlate is that flipped one
            assert any(k is kernel for k in seen["correlate"])
        if name == FLIPPED_LINES[-1]:
            break
        seen["flipped"].clear()
        seen["correlate"].clear()
        seen["col2im"] = 0
    assert set(FLIPPED_LINES) <= set(paths)
    # the 3-channel conv lines before them exercise col2im only: the new lines add the path
    assert paths["Conv2D 3x3 same, relu"][:2] == (0, 1)


def test_flipped_kernel_check_fails_for_a_broken_backward(monkeypatch, capsys):
    """A kernel transposed in channels but not flipped in space: dx goes wrong (dW, db do
    not use it), the gradcheck lines say FAILED. And a check that would miss the path (8
    channels: dx by planes) is refused rather than passed."""
    from vggnp.fast.layers import FastConv2D
    for k in (3, 5):
        assert max(gradcheck.flipped_kernel_errors(k).values()) <= gradcheck.TOLERANCE
    monkeypatch.setattr(FastConv2D, "_flipped_kernel",
                        lambda self: np.ascontiguousarray(self.w.transpose(0, 1, 3, 2)))
    for k in (3, 5):
        errors = gradcheck.flipped_kernel_errors(k)
        assert errors["dx"] > 1e-2 and max(errors["dw"], errors["db"]) <= gradcheck.TOLERANCE
    monkeypatch.setattr(gradcheck, "whole_net_errors", lambda: {"dx": 0.0})  # not affected
    assert gradcheck.main() == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.endswith("  FAILED")]
    assert [line[:40].strip() for line in failed] == FLIPPED_LINES
    assert out.splitlines()[-1] == f"{len(FLIPPED_LINES)} FAILED"
    monkeypatch.undo()
    with pytest.raises(AssertionError, match="did not call _flipped_kernel"):
        gradcheck.flipped_kernel_errors(3, channels=8)
