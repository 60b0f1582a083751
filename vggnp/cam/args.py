"""The command line of ``python -m vggnp.cam``: its options and the checks that refuse,
before any work, an option that would be ignored or a value that cannot be used."""


from PIL import ImageColor

from ..nn import spec
from ..cli import (EXIT_CODES, ArgumentParser, check_model_options, int_range, no_conv_layer,
                   prog_name, threads_option)
from ..cli_run import allow_truncated_option
from ..methods.lrp_plan import COMPOSITES, composite_refusal
from ..methods.registry import METHODS, OPTION_DEFAULTS
from ..files.images import MAX_PIXELS
from ..files.imagenet import class_index
from ..files.preprocess import PREPROCESS_MODES
from ..viz.report import INLINE_LIMIT, REPORT_NAME


def parse_args(argv):
    """The command line, checked: an option that does nothing for the chosen method, a
    value out of range or (for VGG16) an unknown layer or class exits 2 with one line."""
    p = parser()
    args = p.parse_args(argv)
    refusal = inapplicable_option(args)
    if refusal:
        p.error(refusal)
    args.alpha = 0.4 if args.alpha is None else args.alpha
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    if args.top < 1:
        p.error("--top must be at least 1")
    if not 0 <= args.alpha <= 1:
        p.error("--alpha must be between 0 and 1")
    if args.max_pixels < 1:
        p.error("--max-pixels must be at least 1")
    if args.box_threshold is not None and not args.box:
        p.error("--box-threshold goes with --box")
    if (args.report_inline or args.report_all_methods) and not args.report:
        p.error("--report-inline and --report-all-methods go with --report")
    if args.scale_max is not None and (args.scale != "raw" or not args.scale_max > 0):
        p.error("--scale-max goes with --scale raw and must be above 0")
    defaults = {**OPTION_DEFAULTS, "box_threshold": 0.15}
    for option, default in defaults.items():  # after inapplicable_option saw what was given
        vars(args)[option] = default if vars(args)[option] is None else vars(args)[option]
    refusal = value_refusal(args)
    if refusal:
        p.error(refusal)
    try:
        args.background = ImageColor.getrgb(args.background)[:3]
    except ValueError:
        p.error(f"--background: unknown colour {args.background!r} (try white, black, #808080)")
    refusal = cluster_refusal(args)
    if refusal:
        p.error(refusal)
    check_model_options(p, args)
    if args.labels and not args.model:
        p.error("--labels goes with --model (VGG16 uses the ImageNet class names)")
    if not args.model:  # VGG16: checked now, before 553 MB of weights are loaded
        if args.layer is not None and args.layer not in spec.CONV_NAMES:
            p.error(no_conv_layer(args.layer, spec.CONV_NAMES))
        if args.class_ is not None:
            try:
                class_index(args.class_)
            except ValueError as e:
                p.error(f"--class: {e}")
    return args


def value_refusal(args):
    """Why a method's option or --box-threshold is out of range, or None."""
    if args.steps < 1 or args.samples < 1 or not 0 <= args.noise <= 10:
        return "--steps and --samples must be at least 1, --noise within 0..10"
    if not 0 < args.box_threshold < 1:
        return "--box-threshold must be between 0 and 1"
    return composite_refusal(args.rule, args.epsilon, args.gamma)


def parser():
    """The argument parser of ``python -m vggnp.cam``."""
    p = ArgumentParser(
        prog=prog_name("vggnp.cam"),
        description="Classify images with VGG16 (ImageNet) and explain the decision with a "
                    "Grad-CAM heatmap overlay, computed by vggnp's own NumPy backward pass.",
        epilog=EXIT_CODES)
    p.add_argument("images", nargs="+", metavar="IMG",
                   help="image files (JPEG, PNG, GIF, WebP, TIFF, BMP, ...), folders of them "
                        "(other files there are skipped), or - to read one path per line "
                        "from stdin; a name that starts with '-' goes after '--'")
    p.add_argument("--recursive", action="store_true",
                   help="also take the images in the folders' subfolders")
    p.add_argument("--weights", metavar="PATH",
                   help="a Keras VGG16 weights file (.h5, .weights.h5, .keras); default: the "
                        "ImageNet weights, downloaded once to $VGGNP_HOME or the user cache")
    p.add_argument("--model", metavar="PATH",
                   help="your own Keras convnet instead of VGG16: a model.save() file "
                        "(.keras, or .h5 from Keras 2 or 3)")
    p.add_argument("--labels", metavar="FILE",
                   help="with --model: class names, one per line or JSON (a single sigmoid "
                        "output has two: class 0, then class 1); default class_0, class_1, ...")
    p.add_argument("--preprocess", choices=PREPROCESS_MODES,
                   help="input scaling the model was trained with, by Keras' names: caffe "
                        "(alias vgg16: VGG16, ResNet50), tf (to [-1, 1]: MobileNet(V2), "
                        "Xception, Inception), torch (ImageNet mean/std: DenseNet); rescale "
                        "(x/255) or none (the model rescales itself: EfficientNet, "
                        "MobileNetV3). Default: none if the model starts by rescaling, else "
                        "the mode of its Keras Applications base (docs/keras-models.md), else "
                        "rescale; caffe for VGG16")
    p.add_argument("--layer",
                   help="layer to explain: VGG16's conv layers, any with a feature map in "
                        "a --model (default: the last conv, block5_conv3, for VGG16 and "
                        "chains; for a graph, the input of its last global pooling)")
    p.add_argument("--class", dest="class_", metavar="IDX|NAME",
                   help="class to explain: an index (386) or a name (African_elephant, or a "
                        "--labels name); default: each image's top-1")
    method_options(p)
    lrp_options(p)
    output_options(p)
    run_options(p)
    return p


def method_options(p):
    """Which map, of which class, at which layer, and what else to report about it."""
    p.add_argument("--target", choices=["logit", "softmax"],
                   help="score to differentiate: the logit before the final softmax or "
                        "sigmoid (default, as the paper) or the output probability; "
                        "scorecam always uses the probability (no gradient); eigencam "
                        "uses no score at all")
    p.add_argument("--method", choices=list(METHODS), default="gradcam", metavar="METHOD",
                   help=f"the map, one of {', '.join(METHODS)}; its cost per image: gradcam "
                        "(default), gradcam++, "
                        "hirescam, xgradcam, layercam, counterfactual: 1 forward + 1 backward "
                        "to the layer; eigencam: 1 forward and an SVD of the layer's "
                        "activations (no gradient, the same map for every class); saliency, "
                        "guided-backprop: 1 forward + 1 backward to the input; "
                        "integrated-gradients: --steps forwards + backwards; smoothgrad: "
                        "--samples; guided-gradcam: 2 forwards + 2 backwards; scorecam: 1 + C "
                        "forwards, C = the layer's channels that are not zero everywhere "
                        "(up to 512 for block5_conv3), no backward; lrp, deep-taylor, "
                        "deconvnet, gradient-x-input: 1 forward + 1 backward to the input")
    p.add_argument("--batch-size", type=int, default=8, metavar="B",
                   help="images per batch through the network (default 8); for scorecam, "
                        "masked images per forward pass; for --metric, curve steps")
    p.add_argument("--steps", type=int, metavar="M",
                   help="integrated-gradients: points on the path from the baseline (default "
                        "64; the JSON's completeness says if more are needed)")
    p.add_argument("--samples", type=int, metavar="N",
                   help="smoothgrad: noisy copies of the image (default 50)")
    p.add_argument("--noise", type=float, metavar="F",
                   help="smoothgrad: noise sigma as a fraction of the image's value range "
                        "(default 0.15)")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1),
                   help="smoothgrad: random seed of the noise (default 0)")
    p.add_argument("--metric", action="store_true",
                   help="also measure the map's faithfulness: deletion and insertion AUC "
                        "(2 x 21 more forward passes per image)")
    p.add_argument("--trace", action="store_true",
                   help="print on stderr, layer by layer: output shapes, im2col sizes, "
                        "parameters, multiply-adds and times of the forward pass, then the "
                        "layers the backward pass visits (gradient shapes and norms) and skips")
    p.add_argument("--diagnose", action="store_true",
                   help="for an empty or odd heatmap: softmax saturation, negative channel "
                        "weights, dead channels, and how the map changes with the target, the "
                        "pooling and the layer, with a suggestion")


def lrp_options(p):
    """The options of --method lrp (``methods/lrp.py``)."""
    p.add_argument("--rule", choices=list(COMPOSITES), metavar="NAME",
                   help="lrp: the rule of each layer, by iNNvestigate's analyzer names without "
                        "'lrp.' (z, epsilon, z_plus, alpha_1_beta_0, alpha_2_beta_1, "
                        "sequential_preset_a, ..., and some _IB / _flat variants) or "
                        "epsilon_gamma_box (default: Montavon et al.'s recipe for VGG16)")
    p.add_argument("--epsilon", type=float, metavar="E",
                   help="lrp: the epsilon of the rule's epsilon layers (default: the rule's; "
                        "epsilon 1e-7, the presets 0.1, epsilon_gamma_box 1e-6)")
    p.add_argument("--gamma", type=float, metavar="G",
                   help="lrp --rule epsilon_gamma_box: the conv layers' gamma (default 0.25)")


def output_options(p):
    """What is written, where and how."""
    p.add_argument("--top", type=int, default=5, metavar="K", help="classes to list (default 5)")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: .)")
    p.add_argument("--alpha", type=float,
                   help="heatmap opacity in the overlay (default 0.4; not for the methods "
                        "that draw a gradient or relevance at the input itself: "
                        + ", ".join(m.name for m in METHODS.values() if m.gives_image) + ")")
    p.add_argument("--format", choices=["jpg", "png"], default="jpg",
                   help="image format of the outputs (default jpg)")
    p.add_argument("--save-heatmap", action="store_true",
                   help="also save the map as float32 .npy: a CAM (h, w) at the layer's "
                        "resolution, saliency, IG and smoothgrad (H, W) at the input's, in "
                        "[0, 1] (--scale raw: the score's units); the other methods (H, W, C) "
                        "gradient or relevance at the input, in its channel order (BGR for "
                        "--preprocess vgg16), not normalised")
    p.add_argument("--scale", choices=["image", "raw"],
                   help="image (default): each map divided by its own max; raw: the map in "
                        "the score's units (logit or probability), on one colour scale for "
                        "the whole run, so that images can be compared ("
                        + ", ".join(m.name for m in METHODS.values() if m.raw_units) + ")")
    p.add_argument("--scale-max", type=float, metavar="V",
                   help="with --scale raw: the value drawn in the hottest colour (default: "
                        "the first non-empty map's max); larger values are clipped")
    p.add_argument("--box", action="store_true",
                   help="draw on the overlay, and give in the JSON, the bounding box of the "
                        "largest region where the map is at least --box-threshold of its max "
                        "(the Grad-CAM paper's localisation), in the image's pixels")
    p.add_argument("--box-threshold", type=float, metavar="T",
                   help="with --box: the fraction of the map's max (default 0.15, the paper's)")
    p.add_argument("--panel", action="store_true",
                   help="also save original | heatmap | overlay side by side with the top-k")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (default: that image fails)")
    p.add_argument("--background", default="white", metavar="COLOR",
                   help="colour behind transparent pixels: a name or #rrggbb (default white)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse images larger than N pixels before decoding them "
                        f"(default {MAX_PIXELS:,}, Pillow's)")
    allow_truncated_option(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per image on stdout (JSON Lines), as each is "
                        "done")
    p.add_argument("--resume", action="store_true",
                   help="skip the images that --out's vggnp-results.jsonl lists as done, "
                        "unchanged (same size and mtime) and with their outputs present")


def run_options(p):
    """How a run reports: progress, the HTML report, tracebacks."""
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--progress", action="store_true",
                       help="show progress when stderr is not a terminal too (a line each 10 s)")
    shown.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--report", action="store_true",
                   help=f"also write {REPORT_NAME} in --out: every image listed in its results "
                        "file with photo, classes, map and notes, sortable and filtered by "
                        "class; opens from disk in any browser, no network")
    p.add_argument("--report-inline", action="store_true",
                   help=f"with --report: one self-contained file, the pictures inside it "
                        f"(at most {INLINE_LIMIT} images)")
    p.add_argument("--report-all-methods", action="store_true",
                   help="with --report: a row of every method's map for each image (costs "
                        "every method's time: Score-CAM alone is up to 513 forward passes "
                        "per image on VGG16)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run on a Dask cluster (tcp://scheduler:8786): its workers read the "
                        "images and write the outputs, at the same paths as here (a shared "
                        "file system); this process keeps the results file, the progress and "
                        "the report. Needs pip install 'vggnp[dask]'")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an internal error (a bug of ours)")
    threads_option(p)


def inapplicable_option(args):
    """Why an option given on the command line does nothing for ``--method``, or None:
    an option that would be silently ignored is refused instead. Read from the method's
    record (``vggnp/methods/registry.py``)."""
    method = METHODS[args.method]
    if args.layer is not None and not method.layer:
        return (f"--layer does not apply to --method {method.name}: it is the gradient "
                "w.r.t. the input image, not a map at a conv layer")
    if args.target is not None and args.target not in method.targets:
        return (f"--target {args.target} does not apply to --method {method.name}: "
                f"{method.why_target}")
    if args.alpha is not None and method.gives_image:
        drawn = "relevance" if method.diverging else "gradient"
        return (f"--alpha does not apply to --method {method.name}: its picture is the "
                f"{drawn} itself, not a heatmap laid over the photo")
    if args.trace and method.backward == "none":
        return (f"--trace does not apply to --method {method.name}: it has no backward pass "
                "to show")
    if args.scale == "raw" and not method.raw_units:
        raw = ", ".join(m.name for m in METHODS.values() if m.raw_units)
        return (f"--scale raw does not apply to --method {method.name}: its map before "
                f"normalisation is not in the score's units (only {raw})")
    if args.trace and method.backward == "many":
        return (f"--trace does not apply to --method {method.name}: it makes one backward "
                "pass per point (--trace with --method saliency shows one)")
    for option in OPTION_DEFAULTS:
        if vars(args)[option] is not None and option not in method.options:
            owner = next(m.name for m in METHODS.values() if option in m.options)
            return f"--{option} does not apply to --method {method.name}, only to {owner}"
    if args.diagnose and (not method.layer or method.backward == "none"):
        return (f"--diagnose reports on a gradient CAM's weights at a conv layer; --method "
                f"{method.name} has {'no layer' if not method.layer else 'no gradient'}")
    return None


def cluster_refusal(args):
    """Why an option cannot run on a cluster (--dask), or None."""
    if args.dask is None:
        return None
    if args.trace:
        return "--trace shows the passes of this process; it does not go with --dask"
    if args.scale == "raw" and args.scale_max is None:
        return ("--scale raw with --dask needs --scale-max: without it the first map sets "
                "the scale, and each worker would set its own")
    return None
