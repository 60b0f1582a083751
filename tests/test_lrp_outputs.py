"""LRP's outputs: the command line's options, the red-blue picture, the heatmap behind
--metric and --box, --scale raw, and the docs' tables (``scripts/lrp_tables.py``)."""

import numpy as np
import pytest

from helpers import SHAPES
from vggnp.cam import run as cam
from vggnp.viz.overlay import relevance_picture


@pytest.mark.parametrize("args", [["--rule", "z"], ["--method", "lrp", "--rule", "zz"],
                                  ["--method", "lrp", "--rule", "z", "--epsilon", "1"],
                                  ["--method", "lrp", "--gamma", "-1"],
                                  ["--method", "lrp", "--gamma", "inf"],
                                  ["--method", "lrp", "--rule", "epsilon", "--epsilon", "inf"],
                                  ["--method", "lrp", "--rule", "epsilon", "--epsilon", "-1"],
                                  ["--method", "lrp", "--rule", "epsilon", "--epsilon", "nan"],
                                  ["--method", "lrp", "--rule", "z", "--gamma", "0.5"],
                                  ["--method", "lrp", "--target", "softmax"]])
def test_lrp_options_that_do_not_apply_exit_2(args, capsys):
    with pytest.raises(SystemExit) as info:
        cam.parse_args([SHAPES[0], *args])
    assert info.value.code == 2 and len(capsys.readouterr().err.splitlines()) == 1


def test_relevance_is_drawn_red_and_blue_about_zero():
    r = np.zeros((2, 3, 3))
    r[0, 0, 0], r[1, 2, 1] = 4.0, -2.0
    picture = np.asarray(relevance_picture(r, (3, 2)))
    assert tuple(picture[0, 0]) == (255, 0, 0)          # the largest positive: red
    assert tuple(picture[1, 2]) == (128, 128, 255)      # half as negative: light blue
    assert tuple(picture[0, 1]) == (255, 255, 255)      # zero: white


@pytest.fixture(scope="module")
def lrp_tables():
    from scripts import lrp_tables
    return lrp_tables


@pytest.mark.slow  # seconds: the sanity cascade of eight maps on three photos
def test_the_docs_lrp_tables_hold_what_the_script_measures(lrp_tables):
    """docs/math.md's conservation table and docs/trust.md's sanity table are what
    ``python -m scripts.lrp_tables`` prints, to one unit of the last digit printed (a
    value on a rounding edge, 0.055, prints as 0.05 or 0.06 with the BLAS threads' order
    of summation: seen in CI); and what their prose says holds."""
    import os
    import re
    model = lrp_tables.load_keras_model(lrp_tables.MODEL)
    made = {"conservation": lrp_tables.conservation_table(model),
            "sanity": lrp_tables.sanity_table(model)}
    for name, table in made.items():
        with open(os.path.join(lrp_tables.ROOT, "docs", lrp_tables.DOCS[name])) as f:
            written = lrp_tables.block(name).search(f.read()).group(2)
        numbers = [re.findall(r"-?\d+\.\d+", text) for text in (written, table)]
        assert len(numbers[0]) == len(numbers[1]) > 20, name
        np.testing.assert_allclose(np.float64(numbers[0]), np.float64(numbers[1]),
                                   rtol=0, atol=0.0101, err_msg=name)
    sums = lrp_tables.conservation(model)
    logit = sums["z_plus"]["dense_1"]
    for column in ("z_plus", "deep-taylor"):  # no bias, every z+ > 0: kept to the digit
        assert all(abs(v - logit) < 1e-4 * logit for v in sums[column].values()), column
    scores, _ = lrp_tables.sanity(model)
    deepest = {k: max((i for i, s in enumerate(v) if s >= 0.5), default=-1)
               for k, v in scores.items()}
    assert deepest["z_plus"] == max(deepest.values())  # the last to fall below 0.5
    np.testing.assert_allclose(scores["z"], scores["gradient-x-input"], atol=1e-3)


def test_a_relevance_heatmap_is_its_positive_evidence():
    from vggnp.methods.explain import image_heatmap
    from vggnp.methods.registry import METHODS
    maps = np.zeros((1, 2, 2, 3))
    maps[0, 0, 0], maps[0, 1, 1] = [1.0, 1.0, -0.5], [-3.0, 0.0, 0.0]
    np.testing.assert_allclose(image_heatmap(METHODS["lrp"], maps)[0], [[1, 0], [0, 0]])
    np.testing.assert_allclose(image_heatmap(METHODS["deconvnet"], maps)[0],
                               [[1 / 3, 0], [0, 1]])


def test_scale_raw_puts_every_relevance_on_the_first_ones_scale(tmp_path, capsys):
    """--scale raw: one colour scale for the run in the logit's units, set by the first
    image's largest |channel sum|; --save-heatmap writes the signed relevance itself."""
    import json
    from helpers import MODEL
    assert cam.main([*SHAPES[:2], *MODEL, "--method", "lrp", "--rule", "epsilon",
                     "--scale", "raw", "--save-heatmap", "--json", "--quiet",
                     "--out", str(tmp_path)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    first = np.load(records[0]["outputs"]["heatmap"])
    assert first.ndim == 3 and (first < 0).any() and (first > 0).any()
    top = np.abs(first.sum(axis=2)).max()
    assert [r["scale"]["max"] for r in records] == [pytest.approx(top)] * 2
    assert all(r["scale"]["units"] == "logit" for r in records)
    assert records[0]["rule"] == {"name": "epsilon", "epsilon": None, "gamma": None}
    from vggnp.files.results import valid_record
    assert all(valid_record(r) for r in records)  # as --resume and the report read it


def test_the_report_keys_the_colours_of_the_maps_it_shows():
    """The report's keys: jet for the heatmaps, grey-centred for gradient pictures,
    red-white-blue for relevance maps, each naming its methods; only what the page shows."""
    from vggnp.viz.colour_keys import colour_keys
    jet, signed = 'class="colour-bar"', 'class="colour-bar signed"'
    keys = colour_keys([{"method": "gradcam"}])
    assert "heatmaps (gradcam)" in keys and jet in keys and signed not in keys
    keys = colour_keys([{"method": "lrp"}, {"method": "deep-taylor"}, {"error": "bad"}])
    assert jet not in keys and "Relevance (lrp, deep-taylor): <span>negative</span>" in keys
    keys = colour_keys([{"method": "gradcam", "methods": [["gradcam", "a"], ["lrp", "b"],
                                                          ["guided-backprop", "c"]]}])
    assert jet in keys and "Relevance (lrp)" in keys and "Gradient pictures " \
        "(guided-backprop): grey is zero" in keys
    assert colour_keys([{"error": "bad"}]).startswith("<p class=\"scale\">Colours of the "
                                                       "heatmaps: ")


def test_alpha_is_refused_where_the_picture_is_not_an_overlay(capsys):
    for method, drawn in (("lrp", "relevance"), ("deconvnet", "gradient")):
        with pytest.raises(SystemExit) as info:
            cam.parse_args([SHAPES[0], "--method", method, "--alpha", "0.5"])
        assert info.value.code == 2
        assert f"--alpha does not apply to --method {method}: its picture is the {drawn} " \
            "itself" in capsys.readouterr().err
