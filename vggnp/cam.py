"""Command line: top-5 ImageNet classes and a Grad-CAM heatmap overlay for each image.

    python -m vggnp.cam elephant.jpg          # -> ./elephant_African_elephant_cam.jpg

Exit codes: 0 all done; 1 some images failed (the others were processed); 2 usage
error; 3 weights missing or invalid; 4 output location unusable.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import warnings

import numpy as np
from PIL import Image, ImageColor

from . import spec
from .diagnose import diagnose
from .download import DownloadError, official_weights
from .explain import (IMAGE_METHODS, INPUT_METHODS, METHODS, TARGETS, empty_map_message,
                      explain, gradient_image)
from .faithfulness import deletion_insertion
from .gradcam import EmptyMapWarning
from .images import MAX_PIXELS, ImageError, read_image
from .imagenet import class_index, classes
from .keras_model import load_keras_model
from .layers import Conv2D
from .model import VGG16
from .overlay import overlay, panel, save_array, save_image
from .preprocess import PREPROCESS_MODES, preprocess
from .weights import WeightsError

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_WEIGHTS, EXIT_OUTPUT = 0, 1, 2, 3, 4


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m vggnp.cam",
        description="Classify images with VGG16 (ImageNet) and explain the decision with a "
                    "Grad-CAM heatmap overlay, computed by vggnp's own NumPy backward pass.")
    p.add_argument("images", nargs="+", metavar="IMG",
                   help="image files (JPEG, PNG, GIF, WebP, TIFF, BMP, ...); a name that "
                        "starts with '-' goes after '--'")
    p.add_argument("--weights", metavar="PATH",
                   help="a Keras VGG16 weights file (.h5, .weights.h5, .keras); default: the "
                        "official ImageNet weights, downloaded once to the cache ($VGGNP_HOME)")
    p.add_argument("--model", metavar="PATH",
                   help="your own Keras convnet instead of VGG16: a model.save() file "
                        "(.keras, or .h5 from Keras 2 or 3)")
    p.add_argument("--labels", metavar="FILE",
                   help="with --model: class names, one per line (a single sigmoid output "
                        "has two: class 0, then class 1); default class_0, class_1, ...")
    p.add_argument("--preprocess", choices=PREPROCESS_MODES,
                   help="input scaling the model was trained with: vgg16 (Keras caffe mode; "
                        "the default for VGG16 and models with a VGG16 base), rescale (x/255; "
                        "the default otherwise) or none (the model has a Rescaling layer: "
                        "then the default)")
    p.add_argument("--layer",
                   help="conv layer to explain (default: the last, block5_conv3 for VGG16)")
    p.add_argument("--class", dest="class_", metavar="IDX|NAME",
                   help="class to explain: an index (386) or a name (African_elephant, or a "
                        "--labels name); default: each image's top-1")
    p.add_argument("--target", choices=["logit", "softmax"],
                   help="score to differentiate: the logit before the final softmax or "
                        "sigmoid (default, as the paper) or the output probability; "
                        "scorecam always uses the probability (no gradient)")
    p.add_argument("--method", choices=METHODS, default="gradcam",
                   help="the map: gradcam (default), gradcam++, hirescam, layercam, scorecam "
                        "(forward passes only), guided-backprop, guided-gradcam, "
                        "counterfactual (what argues against the class), saliency")
    p.add_argument("--batch-size", type=int, metavar="B",
                   help="scorecam only: masked images per forward pass (default 32)")
    p.add_argument("--metric", action="store_true",
                   help="also measure the map's faithfulness: deletion and insertion AUC "
                        "(one extra batch of forward passes per image and curve)")
    p.add_argument("--trace", action="store_true",
                   help="print on stderr, layer by layer: output shapes, im2col sizes, "
                        "parameters, multiply-adds and times of the forward pass, then the "
                        "layers the backward pass visits (gradient shapes and norms) and skips")
    p.add_argument("--diagnose", action="store_true",
                   help="for an empty or odd heatmap: softmax saturation, negative channel "
                        "weights, dead channels, and how the map changes with the target, the "
                        "pooling and the layer, with a suggestion")
    p.add_argument("--top", type=int, default=5, metavar="K", help="classes to list (default 5)")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: .)")
    p.add_argument("--alpha", type=float,
                   help="heatmap opacity in the overlay (default 0.4; not for the guided "
                        "methods, which draw the gradient itself)")
    p.add_argument("--format", choices=["jpg", "png"], default="jpg",
                   help="image format of the outputs (default jpg)")
    p.add_argument("--save-heatmap", action="store_true",
                   help="also save the method's map as .npy: the CAMs (h, w) at the layer's "
                        "resolution and saliency (H, W) at the model input's, both in [0, 1]; "
                        "guided-backprop and guided-gradcam (H, W, C) signed gradients w.r.t. "
                        "the model input, in its channel order (BGR for --preprocess vgg16)")
    p.add_argument("--panel", action="store_true",
                   help="also save original | heatmap | overlay side by side with the top-k")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (default: that image fails)")
    p.add_argument("--background", default="white", metavar="COLOR",
                   help="colour behind transparent pixels: a name or #rrggbb (default white)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse images larger than N pixels before decoding them "
                        f"(default {MAX_PIXELS:,}, Pillow's)")
    p.add_argument("--allow-truncated", action="store_true",
                   help="use the readable part of a truncated image instead of failing it")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    args = p.parse_args(argv)
    refusal = inapplicable_option(args)
    if refusal:
        p.error(refusal)
    args.batch_size = 32 if args.batch_size is None else args.batch_size
    args.alpha = 0.4 if args.alpha is None else args.alpha
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    if args.top < 1:
        p.error("--top must be at least 1")
    if not 0 <= args.alpha <= 1:
        p.error("--alpha must be between 0 and 1")
    if args.max_pixels < 1:
        p.error("--max-pixels must be at least 1")
    try:
        args.background = ImageColor.getrgb(args.background)[:3]
    except ValueError:
        p.error(f"--background: unknown colour {args.background!r} (try white, black, #808080)")
    if args.model and args.weights:
        p.error("--model and --weights exclude each other")
    if args.labels and not args.model:
        p.error("--labels goes with --model (VGG16 uses the ImageNet class names)")
    if not args.model:  # VGG16: checked now, before 553 MB of weights are loaded
        if args.layer is not None and args.layer not in spec.CONV_NAMES:
            p.error(f"--layer must be a conv layer: {', '.join(spec.CONV_NAMES)}")
        if args.class_ is not None:
            try:
                class_index(args.class_)
            except ValueError as e:
                p.error(f"--class: {e}")
    return args


def inapplicable_option(args):
    """Why an option given on the command line does nothing for ``--method``, or None:
    an option that would be silently ignored is refused instead."""
    method = args.method
    if args.layer is not None and method in INPUT_METHODS:
        return (f"--layer does not apply to --method {method}: it is the gradient w.r.t. "
                "the input image, not a map at a conv layer")
    if args.target is not None and args.target not in TARGETS[method]:
        return (f"--target {args.target} does not apply to --method {method}: Score-CAM "
                "weighs channels by the class probability of masked images, with no gradient")
    if args.batch_size is not None and method != "scorecam":
        return f"--batch-size applies to --method scorecam only, not {method}"
    if args.alpha is not None and method in IMAGE_METHODS:
        return (f"--alpha does not apply to --method {method}: its picture is the gradient "
                "itself, not a heatmap laid over the photo")
    if args.trace and method == "scorecam":
        return "--trace does not apply to --method scorecam: it has no backward pass to show"
    if args.diagnose and method in INPUT_METHODS:
        return (f"--diagnose reports on a CAM at a conv layer; --method {method} has no "
                "layer")
    return None


def needs_probabilities(args, model):
    """Why --target softmax or --metric cannot be used with this model, or None: both need
    the output probability, which a model ending in a linear layer does not give."""
    if model.output_activation in ("softmax", "sigmoid"):
        return None
    what = "--target softmax" if args.target == "softmax" else "--metric" if args.metric \
        else None
    if what:
        return (f"{what} needs class probabilities, but the model's last layer "
                f"({model.names[-1]}) is {model.output_activation}: its outputs are logits")
    return None


def load_model(args):
    """(model, class table [(wnid, name)], preprocess mode, model file) for the arguments.
    Raises WeightsError or DownloadError (exit 3), ValueError for bad --labels (exit 2)."""
    if args.model:
        model = load_keras_model(args.model)
        n = 2 if model.outputs == 1 else model.outputs
        names = read_labels(args.labels, n) if args.labels else [f"class_{i}" for i in range(n)]
        return model, [("", name) for name in names], \
            args.preprocess or model.default_preprocess, args.model
    path = args.weights or official_weights()
    return VGG16.load(path, need_top=True), classes(), args.preprocess or "vgg16", path


def read_labels(path, n):
    """n class names from a text file, one per line (blank lines ignored)."""
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--labels {path}: cannot be read ({e})") from None
    if len(names) != n:
        raise ValueError(f"--labels {path}: has {len(names)} names, the model has {n} "
                         "classes" + (" (one sigmoid unit: class 0, then class 1)" if n == 2
                                      else ""))
    return names


def find_class(text, table):
    """A class index from an index or a name in ``table`` [(wnid, name)]."""
    if table is classes():
        return class_index(text)
    if text.strip().isdigit() and int(text) < len(table):
        return int(text)
    for i, (_, name) in enumerate(table):
        if name.lower() == text.strip().lower():
            return i
    raise ValueError(f"unknown class {text!r}; the classes are "
                     f"{', '.join(name for _, name in table)}")


def top_classes(probs, table, k):
    """probs: (N, K) -> for each image, the top-k [(index, wnid, name, score), ...]."""
    best = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(int(i), *table[i], float(row[i])) for i in order]
            for row, order in zip(probs, best)]


def model_input(picture, model, mode):
    """A PIL RGB picture -> (H, W, C) float32 input: resized to the model's input size with
    nearest-neighbour sampling (as Keras' load_img), then scaled by ``mode``."""
    h, w = model.input_size
    resized = picture.resize((w, h), Image.NEAREST)
    if getattr(model, "channels", 3) == 1:
        return preprocess(np.asarray(resized.convert("L"))[..., None], mode)
    return preprocess(np.asarray(resized), mode)


def entry(index, wnid, name, score=None):
    """A class for the JSON report; ImageNet classes also carry their WordNet id."""
    fields = {"index": index, "wnid": wnid, "name": name, "score": score}
    return {k: v for k, v in fields.items() if v not in ("", None)}


def gradient_picture(gradient, mode, size):
    """A gradient (H, W, C) w.r.t. the model input as an RGB picture of ``size`` (W, H)."""
    picture = gradient_image(gradient)
    if mode == "vgg16":
        picture = picture[..., ::-1]  # caffe inputs are BGR
    if picture.shape[2] == 1:
        picture = np.repeat(picture, 3, axis=2)
    return Image.fromarray(np.uint8(np.round(255 * picture))).resize(size, Image.BILINEAR)


def fail(code, message):
    print(f"vggnp.cam: {message}", file=sys.stderr)
    return code


def output_stems(paths):
    """'<image stem>' for each input, made unique among the inputs before any work starts:
    a/cat.jpg and b/cat.jpg (or the same file twice, or cat.jpg and cat.png) give 'cat'
    and 'cat_2', so no output of this run overwrites another."""
    stems, taken = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        unique, n = stem, 2
        while unique in taken:
            unique, n = f"{stem}_{n}", n + 1
        taken.add(unique)
        stems.append(unique)
    return stems


def check_writable(folder):
    """Create ``folder`` if needed and prove that a file can be created in it."""
    os.makedirs(folder, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".vggnp-probe-")
    os.close(fd)
    os.unlink(probe)


def refuse_to_clobber(paths, inputs, overwrite):
    """Why these outputs must not be written, or None: an input is never overwritten, and
    an existing file only with --overwrite."""
    for path in paths:
        if any(os.path.exists(i) and os.path.exists(path) and os.path.samefile(path, i)
               for i in inputs):
            return f"{path} is one of the input images; choose another --out"
        if os.path.lexists(path) and not overwrite:
            return f"{path} exists; pass --overwrite to replace it"
    return None


def too_big_for_jpeg(size, args):
    """Why this image's outputs cannot be JPEGs (65,500 pixels a side at most), or None."""
    width, height = size
    widest = 3 * width if args.panel else width
    if args.format == "jpg" and max(widest, height) > 65500:
        return (f"{width}x{height} is too large for a JPEG output (65,500 pixels a side); "
                "use --format png")
    return None


def main(argv=None):
    # File names may hold bytes that are not UTF-8; show them escaped rather than crash.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    args = parse_args(argv)
    try:  # before the weights: a bad output folder should not cost a 553 MB load
        check_writable(args.out)
    except OSError as e:
        return fail(EXIT_OUTPUT, f"cannot write to the output folder {args.out}: {e}")

    try:
        model, table, mode, weights_path = load_model(args)
    except (WeightsError, DownloadError) as e:
        return fail(EXIT_WEIGHTS, str(e))
    except ValueError as e:
        return fail(EXIT_USAGE, str(e))
    refusal = needs_probabilities(args, model)
    if refusal:
        return fail(EXIT_USAGE, refusal)
    target = args.target or TARGETS[args.method][0]
    layer = None  # the input methods have none
    try:
        if args.method not in INPUT_METHODS:
            layer = args.layer or model.last_conv
            if not isinstance(model.layer(layer), Conv2D):
                raise KeyError(layer)
        chosen_class = None if args.class_ is None else find_class(args.class_, table)
        if mode == "vgg16" and getattr(model, "channels", 3) != 3:
            raise ValueError("--preprocess vgg16 needs a model with 3 input channels")
    except KeyError:
        convs = [n for n, l in zip(model.names, model.layers) if isinstance(l, Conv2D)]
        return fail(EXIT_USAGE, f"--layer must be a conv layer of the model: {', '.join(convs)}")
    except ValueError as e:
        return fail(EXIT_USAGE, f"--class: {e}" if args.class_ else str(e))

    photos, inputs, failed = [], [], 0
    for path, stem in zip(args.images, output_stems(args.images)):
        try:
            original, notes = read_image(path, background=args.background,
                                         max_pixels=args.max_pixels,
                                         allow_truncated=args.allow_truncated)
        except ImageError as e:
            failed += 1
            fail(EXIT_SOME_FAILED, f"{path}: {e}")
            continue
        for note in notes:
            print(f"vggnp.cam: note: {path}: {note}", file=sys.stderr)
        photos.append((path, stem, original, notes))
        inputs.append(model_input(original, model, mode))
    if not photos:
        return EXIT_SOME_FAILED

    details = {}
    x = np.stack(inputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", EmptyMapWarning)  # said below, per image by name
        maps, chosen = explain(model, x, args.method, layer=layer, class_index=chosen_class,
                               target=target, batch_size=args.batch_size,
                               details=details, trace=sys.stderr if args.trace else False)
    for w in caught:
        print(f"vggnp.cam: warning: {w.message}", file=sys.stderr)
    empty = ~maps.reshape(len(maps), -1).any(axis=1)
    for n in np.flatnonzero(empty):
        path, cls = photos[n][0], chosen[n]
        print(f"vggnp.cam: warning: {path}: "
              + empty_map_message(args.method, f"{table[cls][1]} ({cls})", layer),
              file=sys.stderr)
    top = top_classes(details["probs"], table, args.top)
    if args.diagnose:
        for n, (path, *_), cls in zip(range(len(x)), photos, chosen):
            lines, suggestion = diagnose(model, x[n:n + 1], layer, cls)
            print(f"vggnp.cam: diagnose {path}:", *lines, f"suggestion: {suggestion}",
                  sep="\n  ", file=sys.stderr)
    suffix = "cam" if args.method == "gradcam" else args.method

    results = []
    for n, ((path, stem, original, notes), cls, top_k) in enumerate(zip(photos, chosen, top)):
        name = table[cls][1]
        safe_name = re.sub(r"[^\w.-]", "_", name)  # a --labels name may hold / or spaces
        base = os.path.join(args.out, f"{stem}_{safe_name}_{suffix}")
        written = {"overlay": f"{base}.{args.format}"}
        if args.panel:
            written["panel"] = f"{base}_panel.{args.format}"
        if args.save_heatmap:
            written["heatmap"] = f"{base}.npy"
        refusal = (refuse_to_clobber(written.values(), args.images, args.overwrite)
                   or too_big_for_jpeg(original.size, args))
        if refusal:
            failed += 1
            fail(EXIT_SOME_FAILED, f"{path}: not written: {refusal}")
            continue
        heatmap = maps[n]
        if args.method in IMAGE_METHODS:  # a gradient image, not a heatmap
            heatmap = np.abs(maps[n]).max(axis=2)
            heatmap /= heatmap.max() if heatmap.max() > 0 else 1
        scores = {}
        if args.metric:
            scores = dict(zip(("deletion_auc", "insertion_auc"),
                              deletion_insertion(model, x[n], heatmap, cls)))
        try:
            if args.method in IMAGE_METHODS:
                picture = gradient_picture(maps[n], mode, original.size)
            else:
                picture = overlay(original, heatmap, alpha=args.alpha)
            save_image(picture, written["overlay"])
            if args.panel:
                lines = [f"{i + 1}. {n} {s:.3f}" for i, (_, _, n, s) in enumerate(top_k)]
                shown = "Grad-CAM" if args.method == "gradcam" else args.method
                lines.append(f"{shown}: {name} ({cls})" + (f" at {layer}" if layer else ""))
                save_image(panel(original, heatmap, picture, lines), written["panel"])
            if args.save_heatmap:
                save_array(maps[n].astype(np.float32), written["heatmap"])
        except OSError as e:
            if e.errno is not None:  # disk full, permissions...: the folder is the problem
                return fail(EXIT_OUTPUT, f"cannot write {base}.*: {e}")
            failed += 1  # an encoder error: this image only
            fail(EXIT_SOME_FAILED, f"{path}: cannot encode the output: {e}")
            continue
        results.append({"image": path,
                        "top": [entry(*t) for t in top_k],
                        "class": entry(int(cls), *table[cls]),
                        "method": args.method, **({"layer": layer} if layer else {}),
                        "target": target, "empty": bool(empty[n]), **scores, "notes": notes,
                        "outputs": written})

    if args.json:
        json.dump({"weights": os.path.abspath(weights_path), "images": results}, sys.stdout,
                  indent=2)
        print()
    else:
        for r in results:
            print(f"{r['image']}")
            for rank, t in enumerate(r["top"], 1):
                source = f", {t['wnid']}" if "wnid" in t else ""
                print(f"  {rank}. {t['name']:<28} {t['score']:.4f}  ({t['index']}{source})")
            if "deletion_auc" in r:
                print(f"  faithfulness: deletion AUC {r['deletion_auc']:.3f} (lower is "
                      f"better), insertion AUC {r['insertion_auc']:.3f} (higher is better)")
            shown = "Grad-CAM" if r["method"] == "gradcam" else r["method"]
            where = f" at {r['layer']}" if "layer" in r else ""
            print(f"  {shown} of {r['class']['name']}{where}: " + ", ".join(r["outputs"].values()))
    return EXIT_SOME_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
