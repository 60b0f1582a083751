"""The colour keys at the top of the HTML report (``report.py``): what the colours of its
maps mean, for the methods its images were explained with."""

from ..methods.registry import METHODS


def colour_keys(images):
    """The colour keys of the maps on the page: the jet heatmaps', and the red-white-blue
    of the signed relevance maps (lrp, deep-taylor, gradient-x-input) if there are any."""
    shown = {image.get("method") for image in images} | \
        {method for image in images for method, _ in image.get("methods", [])}
    signed = [name for name, method in METHODS.items() if method.diverging and name in shown]
    keys = []
    if not signed or shown - set(signed) - {None}:
        keys.append('<p class="scale">Colours of the maps: <span>low</span> '
                    '<span class="colour-bar" title="the jet colour map"></span> '
                    "<span>high</span> (each map divided by its own maximum; with --scale "
                    "raw, one scale in the score's units, written on each overlay)</p>")
    if signed:
        keys.append(f'<p class="scale">Relevance ({", ".join(signed)}): <span>negative</span> '
                    '<span class="colour-bar signed" title="blue, white at zero, red"></span> '
                    "<span>positive</span> (white is zero; each map divided by its largest "
                    "|value|; with --scale raw, one scale for the run in the logit's units)</p>")
    return "\n".join(keys)
