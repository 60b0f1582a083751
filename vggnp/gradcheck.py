"""python -m vggnp.gradcheck: finite-difference checks of every layer's backward, float64.

The textbook layers' lines come from ``vggnp/nn/gradcheck.py``; this command adds the lines
of the fast paths that the loaded models run (``FastConv2D``'s flipped-kernel backward and
its 3-channel dx by planes, ``FastMaxPool2D``'s backward) and a whole small VGG16 as vggnp
runs it. Exit status 1 if any check fails.
"""

if __name__ == "__main__":  # before the heavy imports below: see startup.py
    from .startup import guard
    guard("vggnp.gradcheck")

import sys

import numpy as np

from .cli import ArgumentParser
from .cli_lines import show
from .cli_run import run_command
from .fast.layers import FastConv2D
from .fast.pooling import FastMaxPool2D
from .models.vgg16 import VGG16
from .nn import gradcheck as textbook, graph_gradcheck
from .nn.gradcheck import TOLERANCE, layer_checks, layer_errors


def checks():
    """(name, errors) for every layer kind, the fast conv path, a whole small VGG16, the
    merge layers and a small graph with a skip connection."""
    for name, errors in layer_checks():
        yield name, errors
        if name == "Conv2D 5x5 stride 2 valid":  # the fast path's lines follow the conv's
            for k in (3, 5):
                yield f"Conv2D {k}x{k} same, 16 ch, flipped kernel", flipped_kernel_errors(k)
            yield ("Conv2D 3x3 valid, 16 ch, flipped kernel",
                   flipped_kernel_errors(3, padding="valid"))
            yield "Conv2D 3x3 same, 3 ch, dx by planes", planes_errors()
            yield "MaxPool2D 2x2, fast backward", fast_pool_errors()
    yield "whole VGG16 (small), logits -> input", whole_net_errors()
    yield from graph_gradcheck.graph_checks()  # merge layers, and a graph whose gradients add


def whole_net_errors():
    """d(logits . g)/d(input) of a small VGG16 as vggnp runs it (``FastConv2D``), float64."""
    return textbook.whole_net_errors(VGG16)


def flipped_kernel_errors(k=3, channels=16, filters=4, padding="same"):
    """dx, dW, db of a k x k stride-1 Conv2D with >= 16 input channels.

    That is the backward VGG16 runs in 12 of its 13 convs: dx = correlate(dz, w_flipped),
    not col2im (which the 3-channel checks above exercise); a "valid" conv's (Xception's
    block1_conv2) is the "full" correlation, with k - 1 zeros each side. The check asserts
    that the backward took that path (it called ``FastConv2D._flipped_kernel``). The input,
    (2, 5, 6, C), is non-square; x, w and b have 2*5*6*16 + k*k*16*4 + 4 elements, each
    perturbed twice (about 0.2 s for k = 3, 0.6 s for k = 5).
    """
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 6, channels))
    w = rng.standard_normal((k, k, channels, filters)) / np.sqrt(k * k * channels)
    b = rng.standard_normal(filters)
    return layer_errors(lambda w_, b_: FastConv2D("c", w_, b_, "relu", padding=padding), x,
                        (w, b), must_call="_flipped_kernel")


def planes_errors():
    """dx, dW, db of a 3x3 "same" FastConv2D with 3 input channels (VGG16's block1_conv1):
    its dx is col2im's sum by planes (``unfold.col2im_planes``; the check asserts that the
    backward took that path). Input (2, 5, 6, 3), non-square."""
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal((2, 5, 6, 3)), rng.standard_normal((3, 3, 3, 4)) / 5,
               rng.standard_normal(4))
    return layer_errors(lambda w_, b_: FastConv2D("c", w_, b_, "relu"), x, (w, b),
                        must_call="_by_planes")


def fast_pool_errors():
    """dx of a 2x2 FastMaxPool2D whose windows tile its (2, 6, 8, 3) input, values all
    distinct (a tie's first maximum is a choice, not a derivative)."""
    x = np.random.default_rng(4).permutation(2 * 6 * 8 * 3).reshape(2, 6, 8, 3) / 10.0
    layer = FastMaxPool2D("p")
    assert layer.forward(x) is not None and layer.tiles(x.shape)
    return layer_errors(lambda: FastMaxPool2D("p"), x)


def main(argv=()):
    ArgumentParser(
        prog="python -m vggnp.gradcheck",
        description="Finite-difference gradient checks of every layer's backward pass, in "
                    "float64, against a relative-error tolerance of %g; exit status 1 if "
                    "any fails." % TOLERANCE).parse_args(argv)
    return run_command("vggnp.gradcheck", print_checks)


def print_checks():
    """Run every check, one table line each; 1 if any fails, else 0."""
    show(f"Finite-difference gradient checks, float64; a backward passes when its relative "
         f"error <= {TOLERANCE:g}")
    show("")
    show(f"{'check':<40}{'dx':>11}{'dW':>11}{'db':>11}  result")
    failed = 0
    for name, errors in checks():
        ok = all(e <= TOLERANCE for e in errors.values())
        failed += not ok
        cells = "".join(f"{errors[k]:>11.1e}" if k in errors else f"{'-':>11}"
                        for k in ("dx", "dw", "db"))
        show(f"{name:<40}{cells}  {'ok' if ok else 'FAILED'}")  # flushed: its progress
    show("")
    show("all backward passes agree" if not failed else f"{failed} FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
