"""What writing max(x, 0) as ``np.clip(x, 0, inf)`` saves (``activation_functions.relu``):
NumPy's ``maximum`` against a number takes a loop slower than clip's, though both give
the same values. The two forms timed alone on a map, then Grad-CAM at the default layer of
Keras Applications graphs with the ReLU layers and activations in each form, alternating
in one process. First, the ReLU's backward on VGG16's maps as ``FastConv2D`` takes it,
in bands of 1/8 of the rows: the lesson's product with the boolean mask
(``relu_gradient``) against the mask written into dx and multiplied there
(``fast.layers.relu_gradient_into``).

    python -m scripts.relu_bench [--repeats 21] [--models MobileNetV2 ...]

Models as ``scripts.graph_bench`` builds them (realistic random weights). Prints Markdown
tables of medians. Never asserted in a test.
"""

import os
import time

import numpy as np

from scripts.harness import time_interleaved, worker_json
from scripts.graph_bench import ab_bench_args, built_models, photo_input

MODELS = ("ResNet50", "MobileNetV2", "Xception")  # EfficientNetB0 has no ReLU


def alone(repeats):
    """{form: [ms...]} of max(x, 0) on MobileNetV2's largest map, (1, 112, 112, 96)."""
    x = np.random.default_rng(0).standard_normal((1, 112, 112, 96), np.float32)
    out = np.empty_like(x)
    return time_interleaved({"maximum": lambda: np.maximum(x, 0, out=out),
                             "clip": lambda: np.clip(x, 0, np.inf, out=out)}, repeats)


def backward_alone(repeats):
    """{(H, W, C): {form: [ms...]}}: dz = dout * (out > 0) on VGG16's maps of block1,
    block3 and block5, in bands of 1/8 of the rows into one array (``FastConv2D``'s)."""
    from vggnp.fast.layers import relu_gradient_into
    from vggnp.nn.activation_functions import relu_gradient
    r, found = np.random.default_rng(0), {}
    for shape in ((224, 224, 64), (56, 56, 256), (14, 14, 512)):
        dout, out = (r.standard_normal((1, *shape), np.float32) for _ in range(2))
        np.maximum(out, 0, out=out)
        dz, bands = np.empty_like(dout), [slice(k, k + shape[0] // 8)
                                          for k in range(0, shape[0], shape[0] // 8)]

        def lesson():
            for rows in bands:
                relu_gradient(dout[:, rows], out[:, rows], into=dz[:, rows])

        def into():
            for rows in bands:
                relu_gradient_into(dz[:, rows], dout[:, rows], out[:, rows])
        found[shape] = time_interleaved({"boolean mask": lesson, "mask in dx": into},
                                        repeats)
    return found


def maximum_forms():
    """The forward methods as they were before ``relu``: (activation ReLU, ReLU layer)."""
    from vggnp.nn.graph_layers import ReLU
    clip_layer = ReLU.forward  # the layers with a slope or threshold: unchanged

    def activation(self, x, inplace=False):
        self.out = np.maximum(x, 0, out=x if inplace else None)
        return self.out

    def layer(self, x):
        if not self.plain:
            return clip_layer(self, x)
        self.x, out = None, np.maximum(x, 0)
        if self.max_value is not None:
            np.minimum(out, self.max_value, out=out)
        self.out = out
        return out
    return activation, layer


def worker(path, repeats):
    """In a fresh process: {form: [ms of each Grad-CAM]}, the forms alternating."""
    from vggnp import grad_cam, load_keras_model
    from vggnp.nn import activation_functions, graph_layers
    model = load_keras_model(path)
    x = photo_input(model)
    forms = {"clip": (activation_functions.ReLU.forward, graph_layers.ReLU.forward),
             "maximum": maximum_forms()}
    times = {form: [] for form in forms}
    for r in range(repeats):
        for form in (list(forms) if r % 2 else list(forms)[::-1]):
            activation_functions.ReLU.forward, graph_layers.ReLU.forward = forms[form]
            grad_cam(model, x, model.default_layer)
            began = time.perf_counter()
            grad_cam(model, x, model.default_layer)
            times[form].append(1000 * (time.perf_counter() - began))
    return times


def main():
    args = ab_bench_args(__doc__, 21, MODELS, worker)
    if args is None:
        return
    ms = {form: float(np.median(t)) for form, t in alone(args.repeats).items()}
    print(f"max(x, 0) on a (1, 112, 112, 96) float32 map, median of {args.repeats}: "
          f"np.maximum {ms['maximum']:.3f} ms, np.clip {ms['clip']:.3f} ms "
          f"({ms['maximum'] / ms['clip']:.1f}x)\n")
    print(f"ReLU's backward in bands of 1/8 of the rows, median ms of {args.repeats}\n\n"
          "| map | boolean mask ms | mask in dx ms | mask in dx / boolean |\n|---|---|---|---|")
    for shape, times in backward_alone(args.repeats).items():
        lesson, into = (float(np.median(times[f])) for f in ("boolean mask", "mask in dx"))
        print(f"| {'x'.join(map(str, shape))} | {lesson:.3f} | {into:.3f} | "
              f"{into / lesson:.2f} |")
    print()
    with built_models(args.models) as folder:
        print(f"Grad-CAM at the default layer, one photo, median ms of {args.repeats} each "
              "form, alternating in one process\n")
        print("| model | clip ms | maximum ms | clip / maximum |\n|---|---|---|---|")
        for name in args.models:
            times = worker_json("scripts.relu_bench", [os.path.join(folder, f"{name}.keras"),
                                                       str(args.repeats)], "relu_bench")
            clip, maximum = (float(np.median(times[f])) for f in ("clip", "maximum"))
            print(f"| {name} | {clip:.1f} | {maximum:.1f} | {clip / maximum:.2f} |")


if __name__ == "__main__":
    main()
