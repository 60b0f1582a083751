"""python -m vggnp.trace: the per-layer numbers of docs/math.md, and the paths this machine runs.

    python -m vggnp.trace            # Markdown: each layer's output, im2col matrix, parameters,
                                     # multiply-adds (the table docs/math.md quotes)
    python -m vggnp.trace --paths    # which conv sum each VGG16 layer takes, forward and
                                     # backward, and which GEMM ``matmul_add`` runs

Both from a VGG16 with random weights (the numbers depend on the shapes only).
"""

if __name__ == "__main__":  # before the heavy imports below: see startup.py
    from .startup import guard
    guard("vggnp.trace")

import sys

from .cli import ArgumentParser
from .cli_lines import show
from .cli_run import run_command
from .fast import gemm
from .fast.layers import FastConv2D
from .models.vgg16 import VGG16
from .nn import spec
from .nn.random_init import random_vgg16_weights
from .nn.trace import markdown_numbers


def conv_paths(model):
    """Lines: each conv layer's forward and backward (dx) path for one image of the
    model's input size, then the GEMM in use."""
    lines = [f"{'layer':<16}{'input':>16}  {'forward':<10}{'backward dx':<12}"]
    shape = (1, *model.input_size, model.channels)
    for layer in model.layers:
        if isinstance(layer, FastConv2D):
            lines.append(f"{layer.name:<16}{'x'.join(map(str, shape)):>16}  "
                         f"{layer.path(shape):<10}{layer.path(shape, backward=True):<12}")
            shape = layer.output_shape(shape)
        elif layer.name.endswith("_pool"):
            shape = (shape[0], shape[1] // 2, shape[2] // 2, shape[3])
    lines.append(f"GEMM: {gemm.path()}")
    return "\n".join(lines)


def main(argv=()):
    p = ArgumentParser(prog="python -m vggnp.trace", description=__doc__.split("\n")[0])
    p.add_argument("--paths", action="store_true",
                   help="print which conv sum and GEMM each layer runs on this machine")
    args = p.parse_args(argv)

    def trace():
        model = VGG16(random_vgg16_weights(seed=0), input_size=spec.INPUT_SIZE)
        for line in (conv_paths(model) if args.paths else markdown_numbers(model)).split("\n"):
            show(line, as_is=True)
        return 0
    return run_command("vggnp.trace", trace)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
