"""The colour keys at the top of the HTML report (``report.py``): what the colours of its
maps mean, for the methods its images were explained with."""

from ..methods.registry import METHODS

JET = ('<p class="scale">Colours of the heatmaps{names}: <span>low</span> '
       '<span class="colour-bar" title="the jet colour map"></span> <span>high</span> (each '
       "map divided by its own maximum; with --scale raw, one scale in the score's units, "
       "written on each overlay)</p>")
GRADIENT = ('<p class="scale">Gradient pictures{names}: grey is zero, each colour channel '
            "lighter where the gradient is positive and darker where negative (one standard "
            "deviation = 0.1 about grey)</p>")
SIGNED = ('<p class="scale">Relevance{names}: <span>negative</span> '
          '<span class="colour-bar signed" title="blue, white at zero, red"></span> '
          "<span>positive</span> (white is zero; each map divided by its largest |value|; "
          "with --scale raw, one scale for the run in the logit's units)</p>")


def colour_keys(images):
    """The colour keys of the maps on the page, one per kind of picture it shows: jet
    heatmaps, grey-centred gradients (``gradient_image``), red-white-blue relevance
    (``relevance_picture``); the jet key alone if no method is known."""
    shown = {image.get("method") for image in images} | \
        {method for image in images for method, _ in image.get("methods", [])}
    kinds = {JET: [], GRADIENT: [], SIGNED: []}
    for name, method in METHODS.items():
        if name in shown:
            kind = SIGNED if method.diverging else GRADIENT if method.gives_image else JET
            kinds[kind].append(name)
    if not any(kinds.values()):
        kinds[JET] = [""]
    return "\n".join(key.format(names=f" ({', '.join(names)})" if names != [""] else "")
                     for key, names in kinds.items() if names)
