"""Pixels: the jet table, the bilinear resize, the overlay."""

import numpy as np
import pytest
from PIL import Image

from helpers import reference_module
from vggnp.files.outputs import write_new
from vggnp.viz.overlay import colorize, jet_picture, jet_table, overlay, panel, save_image
from vggnp.methods.resize import resize_bilinear


def test_jet_equals_matplotlib():
    matplotlib = reference_module("matplotlib")
    reference = matplotlib.colormaps["jet"](np.arange(256))[:, :3]
    assert np.abs(jet_table() - reference).max() <= 1 / 255
    assert np.abs(colorize(np.linspace(0, 1, 256)[None]).astype(float) / 255
                  - reference[None]).max() <= 1 / 255


def test_one_hot_cell_upsamples_to_its_16x16_region():
    for r, c in [(0, 0), (5, 9), (13, 13)]:
        cam = np.zeros((14, 14))
        cam[r, c] = 1
        up = resize_bilinear(cam, (224, 224))
        rows, cols = up.max(axis=1), up.max(axis=0)
        # The separable tent is >= 0.5 exactly on the cell's rows and columns...
        assert np.flatnonzero(rows >= 0.5).tolist() == list(range(16 * r, 16 * r + 16))
        assert np.flatnonzero(cols >= 0.5).tolist() == list(range(16 * c, 16 * c + 16))
        # ...and, away from the border, centred on the region's centre.
        if 0 < r < 13 and 0 < c < 13:
            ii, jj = np.indices(up.shape)
            assert np.isclose((ii * up).sum() / up.sum(), 16 * r + 7.5)
            assert np.isclose((jj * up).sum() / up.sum(), 16 * c + 7.5)


def test_resize_non_square_and_constant():
    up = resize_bilinear(np.full((3, 5), 0.25), (40, 70))
    assert up.shape == (40, 70) and np.allclose(up, 0.25)


def float_overlay(photo, heatmap, alpha=0.4):
    """The overlay formula in float64, as the chapter writes it: rescale(alpha * jet + photo)."""
    jet = colorize(resize_bilinear(heatmap, photo.shape[:2])).astype(float)
    mixed = alpha * jet + photo
    return np.round((mixed - mixed.min()) / (mixed.max() - mixed.min()) * 255)


@pytest.mark.parametrize("size", [(451, 300), (1000, 37), (2048, 1536)])
def test_overlay_is_within_two_levels_of_the_float_formula(size):
    rng = np.random.default_rng(size[0])
    photo = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    photo[: size[1] // 2] //= 3  # a darker half, so that min and max are not 0 and 255+
    for alpha, levels in [(0.4, 2), (1.0, 3)]:
        heatmap = rng.random((14, 14))
        fast = np.asarray(overlay(Image.fromarray(photo), heatmap, alpha), float)
        assert np.abs(fast - float_overlay(photo, heatmap, alpha)).max() <= levels


def test_jet_picture_resizes_as_resize_bilinear_then_colours():
    heatmap = np.random.default_rng(1).random((14, 14))
    for size in [(224, 224), (451, 300), (7, 1000), (1, 1)]:
        picture = np.asarray(jet_picture(heatmap, size), int)
        expected = colorize(resize_bilinear(heatmap, size[::-1])).astype(int)
        # Pillow's float resize differs from ours by rounding only: one level at most, and
        # neighbouring levels of the jet table differ by at most 5 (of 255).
        assert picture.shape == expected.shape
        assert np.abs(picture - expected).max() <= 5


def test_overlay_has_the_photos_size(tmp_path):
    photo = Image.new("RGB", (451, 300), (120, 80, 40))
    heatmap = np.random.default_rng(0).random((14, 14))
    picture = overlay(photo, heatmap)
    assert picture.size == (451, 300) and picture.mode == "RGB"
    assert panel(photo, heatmap, picture, ["1. tabby 0.9"]).size[0] == 3 * 451
    for name in ("o.png", "o.jpg"):
        save_image(picture, tmp_path / name)
        with Image.open(tmp_path / name) as im:
            assert im.size == (451, 300)
    with pytest.raises(ValueError, match="must end in"):
        save_image(picture, tmp_path / "o.bmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jpg", "o.png"]  # no temp files


def test_failed_save_leaves_the_existing_file_untouched(tmp_path):
    path = tmp_path / "result.jpg"
    path.write_bytes(b"the previous result")

    def write_half_then_fail(f):
        f.write(b"half a JPEG")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_new(path, write_half_then_fail, overwrite=True)
    assert path.read_bytes() == b"the previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["result.jpg"]  # no temp file left


def test_tiny_image_panel_is_wide_enough_for_its_text():
    photo = Image.new("RGB", (1, 1), "orange")
    heatmap = np.ones((14, 14))
    picture = overlay(photo, heatmap)
    assert picture.size == (1, 1) and np.isfinite(np.asarray(picture)).all()
    lines = ["1. goldfish 0.512", "Grad-CAM: goldfish (1) at block5_conv3"]
    assert panel(photo, heatmap, picture, lines).size[0] > 150


@pytest.mark.parametrize("image, heatmap, error, words", [
    (np.zeros((8, 8, 3), np.uint8), np.zeros((2, 2)), TypeError,
     "image must be a PIL image (vggnp.read_image(path)[0]), not ndarray"),
    ("cat.jpg", np.zeros((2, 2)), TypeError, "image must be a PIL image"),
    (None, np.zeros((1, 2, 2)), ValueError, "heatmap must be one map (h, w) of numbers, not "
     "float64 (1, 2, 2) (a batch's maps: overlay each, heatmaps[0])"),
    (None, np.zeros((2, 2, 3)), ValueError, "heatmap must be one map (h, w)"),
    (None, np.full((2, 2), np.nan), ValueError, "heatmap holds NaN or infinite values")])
def test_overlay_refuses_what_it_cannot_draw_naming_it(image, heatmap, error, words):
    """A new user's trial: an array or a path as the photo (AttributeError: no 'mode'), a
    batch of maps (PIL's 'Cannot handle this data type'), a NaN map (a cast warning)."""
    import re
    image = Image.new("RGB", (8, 8)) if image is None else image
    with pytest.raises(error, match=re.escape(words)):
        overlay(image, heatmap)
