"""What the main command writes for one image: its output names (unique within a run,
safe characters), the overlay or gradient picture, the panel, the raw map."""

import os
import re

import numpy as np
from PIL import Image

from ..methods.registry import METHODS
from ..viz.overlay import draw_box, overlay, panel, save_array, save_image, signed_picture
from ..viz.report import THUMBNAIL_SIDE


def output_stems(paths):
    """'<image stem>' for each input, made unique among the inputs before any work starts:
    a/cat.jpg and b/cat.jpg (or the same file twice, or cat.jpg and cat.png) give 'cat'
    and 'cat_2', so no output of this run overwrites another."""
    taken = UniqueNames()
    return [taken.claim(os.path.splitext(os.path.basename(path))[0]) for path in paths]


class UniqueNames:
    """Names handed out once each: ``name``, then ``name_2``, ``name_3``... (the first
    free one). Each name keeps the number it got to, so n equal names cost n steps, not
    n^2 / 2 (20,000 identical stems took 67 s that way: #27)."""

    def __init__(self):
        self._used, self._next = set(), {}

    def claim(self, name):
        unique, n = name, self._next.get(name, 2)
        while unique in self._used:
            unique, n = f"{name}_{n}", n + 1
        self._next[name] = n
        self._used.add(unique)
        return unique


THUMBNAILS = "thumbnails"  # the report's pictures, in this subfolder of --out


def output_paths(args, stem, class_name, taken=None):
    """{"overlay": path, ["panel": path], ["heatmap": path]} for one image, absolute (the
    results file is read again from anywhere). taken: the run's ``UniqueNames`` of output
    bases, or None: "photo" + "sea_lion" and "photo_sea" + "lion" get distinct names."""
    safe_name = re.sub(r"[^\w.-]", "_", class_name)  # a --labels name may hold / or spaces
    suffix = "cam" if args.method == "gradcam" else args.method
    base = os.path.join(os.path.abspath(args.out), f"{stem}_{safe_name}_{suffix}")
    if taken is not None:
        base = taken.claim(base)
    written = {"overlay": f"{base}.{args.format}"}
    if args.panel:
        written["panel"] = f"{base}_panel.{args.format}"
    if args.save_heatmap:
        written["heatmap"] = f"{base}.npy"
    if args.report:  # the pictures the report shows: small, so that its pages open fast,
        # in a folder of their own, so that --out holds the outputs a person looks for
        small = os.path.join(os.path.dirname(base), THUMBNAILS, os.path.basename(base))
        written["thumbnail"] = f"{small}_thumb.jpg"
        written["photo_thumbnail"] = f"{small}_input_thumb.jpg"
        for method in (METHODS if args.report_all_methods else ()):
            written[f"map_{method}"] = f"{small}_{method}_thumb.jpg"
    return written


def too_big_for_jpeg(size, args):
    """Why this image's outputs cannot be JPEGs (65,500 pixels a side at most), or None."""
    width, height = size
    widest = 3 * width if args.panel else width
    if args.format == "jpg" and max(widest, height) > 65500:
        return (f"{width}x{height} is too large for a JPEG output (65,500 pixels a side); "
                "use --format png")
    return None


def save_pictures(args, run, pictures):
    """Write the overlay (or gradient picture, with the box drawn if there is one), the
    panel, the raw map and the report's thumbnails as asked (``pictures``: a
    ``state.Pictures``): all of them, or (an error) none that this call created; a file it
    replaced stays, whole, with its new content (deleting it would lose both versions)."""
    done, existed = [], {p for p in pictures.written.values() if os.path.lexists(p)}
    try:
        picture = _save_each(args, run, pictures, done)
        if args.report:
            _save_thumbnails(pictures, done,
                             {"thumbnail": picture, "photo_thumbnail": pictures.original,
                              **(pictures.method_maps or {})})
    except BaseException:
        for path in (p for p in done if p not in existed):
            try:
                os.unlink(path)
            except OSError:
                pass
        raise


def _save_each(args, run, pictures, done):
    """The overlay, panel and raw map of one image; each path written is added to done."""
    p = pictures
    original, raw_map, heatmap, written, scale = (p.original, p.raw_map, p.heatmap,
                                                  p.written, p.scale)
    if METHODS[args.method].gives_image:
        picture = signed_picture(raw_map, run.mode, original.size,
                                 METHODS[args.method].diverging,
                                 top=scale["max"] if scale else None)
    else:
        picture = overlay(original, heatmap, alpha=args.alpha)
    if p.box is not None:
        draw_box(picture, p.box)
    save_image(picture, written["overlay"], written["overlay"] in p.replace)
    done.append(written["overlay"])
    if args.panel:
        lines = [f"{i + 1}. {name} {s:.3f}" for i, (_, _, name, s) in enumerate(p.top_k)]
        lines.append(f"{method_title(args.method)}: {run.table[p.cls][1]} ({p.cls})"
                     + (f" at {run.layer}" if run.layer else ""))
        bar = (scale["max"], scale["units"]) if scale else None
        save_image(panel(original, heatmap, picture, lines, bar), written["panel"],
                   written["panel"] in p.replace)
        done.append(written["panel"])
    if args.save_heatmap:
        save_array(raw_map.astype(np.float32), written["heatmap"],
                   written["heatmap"] in p.replace)
        done.append(written["heatmap"])
    return picture


def _save_thumbnails(pictures, done, shown):
    """The report's small pictures (THUMBNAIL_SIDE a side at most): shown is {output key:
    picture}, the overlay, the photo and, with --report-all-methods, each method's map."""
    written = pictures.written
    for key, full in shown.items():
        save_image(thumbnail(full), written[key], written[key] in pictures.replace)
        done.append(written[key])


def thumbnail(picture, side=THUMBNAIL_SIDE):
    """``picture`` shrunk to at most ``side`` pixels a side (never enlarged), a new image."""
    scale = min(1.0, side / max(picture.size))
    size = tuple(max(1, round(n * scale)) for n in picture.size)
    return picture.resize(size, Image.BICUBIC, reducing_gap=2.0)


def on_raw_scale(raw, shared, target):
    """A CAM in the score's units on the run's one colour scale. raw: (h, w) >= 0; shared:
    the run's scale, {"max": value or None}, set by the first non-empty map if not given.
    Returns (heatmap = min(raw / max, 1) for the pictures, the JSON's "scale" record)."""
    if shared["max"] is None and raw.max() > 0:
        shared["max"] = float(raw.max())
    top = shared["max"] or 1.0
    units = "logit" if target == "logit" else "probability"
    return np.minimum(raw / top, 1), {
        "kind": "raw", "units": units, "max": top, "map_min": float(raw.min()),
        "map_max": float(raw.max()), "clipped": float(np.mean(raw > top))}


def relevance_scale(relevance, shared):
    """--scale raw for a signed relevance (H, W, C): the run's one colour scale, +-max of
    its sum over channels, set by the first non-empty map if not given (shared: {"max":
    value or None}). Returns the JSON's "scale" record, in the logit's units."""
    r = relevance.sum(axis=2, dtype=np.float64)
    if shared["max"] is None and np.abs(r).max() > 0:
        shared["max"] = float(np.abs(r).max())
    top = shared["max"] or 1.0
    return {"kind": "raw", "units": "logit", "max": top, "map_min": float(r.min()),
            "map_max": float(r.max()), "clipped": float(np.mean(np.abs(r) > top))}


def method_title(method):
    return "Grad-CAM" if method == "gradcam" else method


def entry(index, wnid, name, score=None):
    """A class for the JSON report; ImageNet classes also carry their WordNet id."""
    fields = {"index": index, "wnid": wnid, "name": name, "score": score}
    return {k: v for k, v in fields.items() if v not in ("", None)}
