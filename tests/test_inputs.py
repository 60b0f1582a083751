"""Bad and odd images: each ends in a correct result or one clear line on stderr (issue #5).

One CLI run over the whole corpus (tests/corpus.py) -- as a user would pass a folder full of
files -- then a test per case on what that run printed and left on disk; then the pixel
rules of ``vggnp.files.images.read_image`` one by one.
"""

import os

import numpy as np
import pytest
from PIL import Image

from helpers import done_images, outputs_in, run_cam
from vggnp.files.results import RESULTS_NAME
from corpus import CASES, PICTURE, bomb_png, jpeg_bytes, make_corpus, with_orientation
from vggnp.files.images import ImageError, read_image
from vggnp.files.preprocess import load_img


@pytest.fixture(scope="module")
def corpus_run(vgg16_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    out = folder / "out"
    cases = make_corpus(str(folder))
    result = run_cam("--weights", vgg16_file, "--out", str(out), "--json", "--panel",
                     "--", *[path for path, _ in cases])
    return cases, result, {r["image"]: r for r in done_images(result.stdout)}, out


def test_the_run_exits_1_and_never_crashes(corpus_run):
    cases, result, done, out = corpus_run
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(done) == sum(expected[0] == "ok" for _, expected in cases)
    # On disk: exactly the outputs reported (overlay + panel of each image done), no temp files.
    reported = {os.path.basename(f) for r in done.values() for f in r["outputs"].values()}
    assert set(os.listdir(out)) == reported | {RESULTS_NAME} and len(reported) == 2 * len(done)


@pytest.mark.parametrize("name", list(CASES), ids=ascii)
def test_each_input(corpus_run, name):
    cases, result, done, out = corpus_run
    path, (outcome, text) = next(c for c in cases if os.path.basename(c[0]) == name)
    lines = [line for line in result.stderr.splitlines() if path in line]
    if outcome == "fail":
        assert len(lines) == 1 and lines[0].startswith(f"vggnp.cam: {path}: ")
        assert text in lines[0]
        assert path not in done  # and so no file of it (test_the_run_...: only done's files)
        return
    entry = done[path]
    notes = [line for line in lines if ": note: " in line]
    texts = () if text is None else (text,) if isinstance(text, str) else text
    assert len(entry["notes"]) == len(notes) == len(texts), entry["notes"]
    assert all(t in note for t, note in zip(texts, entry["notes"]))
    assert all(t in line for t, line in zip(texts, notes))
    assert all(os.path.isfile(f) for f in entry["outputs"].values())
    with Image.open(entry["outputs"]["overlay"]) as picture:
        expected_size = read_image(path)[0].size
        assert picture.size == expected_size
        values = np.asarray(picture)
        assert values.dtype == np.uint8 and values.shape[2] == 3
    scores = [t["score"] for t in entry["top"]]
    assert np.all(np.isfinite(scores)) and abs(sum(scores)) <= 1


def test_non_utf8_name_gets_its_own_output(corpus_run):
    *_, out = corpus_run
    assert any(name.startswith(b"latin1_caf\xe9_") for name in os.listdir(os.fsencode(out)))


def test_truncated_is_accepted_on_request(vgg16_file, tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_bytes(Image.fromarray(PICTURE))[:1500])
    result = run_cam(str(path), "--weights", vgg16_file, "--out", str(tmp_path / "out"),
                     "--allow-truncated")
    assert result.returncode == 0, result.stderr
    assert len(outputs_in(tmp_path / "out")) == 1


def test_max_pixels(tmp_path):
    small = tmp_path / "small.png"
    Image.fromarray(PICTURE).save(small)
    with pytest.raises(ImageError, match="claims 80x60 = 4,800 pixels, over the limit of 4,000"):
        read_image(small, max_pixels=4000)
    assert read_image(small, max_pixels=4800)[0].size == (80, 60)
    # Raised limit: the 20000x20000 header passes the limit, but 69 bytes cannot hold
    # 400 M pixels (deflate expands at most 1032:1), so it is refused before decoding.
    bomb = tmp_path / "big.png"
    bomb.write_bytes(bomb_png(20000, 20000))
    with pytest.raises(ImageError, match="claims 20000x20000"):
        read_image(bomb)
    with pytest.raises(ImageError, match="400,000,000 pixels in 69 bytes, more than a PNG"):
        read_image(bomb, max_pixels=400_000_000)


def test_usage_errors_exit_2(tmp_path):
    for args in (["--background", "sparkly"], ["--max-pixels", "0"]):
        result = run_cam("x.jpg", *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------
# Pixel rules of read_image
# --------------------------------------------------------------------------------------

def pixels(path, **options):
    image, _ = read_image(path, **options)
    return np.asarray(image).astype(int)


def test_transparency_is_composited_onto_the_background(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 200          # red everywhere, but...
    rgba[:, :3, 3] = 0          # left half fully transparent
    rgba[:, 3:, 3] = 255        # right half opaque
    rgba[0, 0, 3] = 128         # one half-transparent pixel
    Image.fromarray(rgba).save(tmp_path / "a.png")
    white = pixels(tmp_path / "a.png")
    assert (white[:, 1:3] == 255).all() and (white[:, 3:] == [200, 0, 0]).all()
    assert np.abs(white[0, 0] - [227, 127, 127]).max() <= 1   # 200*a + 255*(1-a), a=128/255
    black = pixels(tmp_path / "a.png", background=(0, 0, 0))
    assert (black[:, 1:3] == 0).all() and (black[:, 3:] == [200, 0, 0]).all()
    # Keras drops alpha instead: the transparent pixels would show their hidden red.
    assert (np.asarray(load_img(tmp_path / "a.png", None))[:, 1:3] == [200, 0, 0]).all()

    palette = Image.fromarray(rgba[..., :3]).convert("P")
    palette.save(tmp_path / "p.png", transparency=palette.getpixel((0, 0)))
    assert (pixels(tmp_path / "p.png") == 255).all()  # one colour, and it is transparent


def test_16bit_and_float_are_scaled_not_clipped(tmp_path):
    ramp = np.uint16(np.linspace(0, 65535, 12).reshape(3, 4))
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode == "I;16"
        assert np.asarray(img.convert("RGB")).min() == 0 and \
            (np.asarray(img.convert("RGB"))[1:] == 255).all()  # what Pillow alone gives
    got = pixels(tmp_path / "g16.png")
    assert (got[..., 0] == np.round(ramp / 257)).all() and (got[..., 0] == got[..., 2]).all()

    for values, expected in [(np.linspace(0, 1, 12), np.linspace(0, 255, 12)),
                             (np.linspace(0, 200, 12), np.linspace(0, 200, 12)),
                             (np.linspace(-5, 5, 12), np.linspace(0, 255, 12)),
                             (np.full(12, 7.5), np.full(12, 7.5)),
                             (np.full(12, 300.0), np.full(12, 0.0))]:
        Image.fromarray(np.float32(values.reshape(3, 4))).save(tmp_path / "f.tiff")
        assert np.abs(pixels(tmp_path / "f.tiff")[..., 1].ravel() - expected).max() <= 0.5
    bad = np.float32(np.ones((3, 4)))
    bad[1, 1] = np.inf
    Image.fromarray(bad).save(tmp_path / "inf.tiff")
    with pytest.raises(ImageError, match="NaN or infinite"):
        read_image(tmp_path / "inf.tiff")


def test_cmyk_grey_1bit_progressive(tmp_path):
    red = Image.new("RGB", (16, 16), (255, 0, 0))
    red.convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert np.abs(pixels(tmp_path / "cmyk.jpg") - [255, 0, 0]).max() <= 3  # red stays red
    picture = Image.fromarray(PICTURE)
    picture.convert("L").save(tmp_path / "grey.png")
    grey = pixels(tmp_path / "grey.png")
    assert (grey[..., 0] == np.asarray(picture.convert("L"))).all()
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    picture.convert("1").save(tmp_path / "bits.png")
    assert set(np.unique(pixels(tmp_path / "bits.png"))) <= {0, 255}
    (tmp_path / "base.jpg").write_bytes(jpeg_bytes(picture))
    (tmp_path / "prog.jpg").write_bytes(jpeg_bytes(picture, progressive=True))
    assert np.abs(pixels(tmp_path / "prog.jpg") - pixels(tmp_path / "base.jpg")).max() <= 8
    assert np.abs(pixels(tmp_path / "base.jpg") - PICTURE).mean() <= 3


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    path = tmp_path / "phone.jpg"
    path.write_bytes(with_orientation(Image.fromarray(PICTURE), orientation))
    with Image.open(path) as stored:
        assert stored.size == (60, 80)  # stored on its side
    upright = pixels(path)
    assert upright.shape == PICTURE.shape
    assert np.abs(upright - PICTURE).mean() <= 3


def test_plain_files_give_keras_pixels(tmp_path, photos):
    """No transparency, 8 bits, no EXIF rotation: exactly Keras' load_img picture."""
    Image.fromarray(PICTURE).convert("P").save(tmp_path / "pal.png")
    Image.fromarray(PICTURE).convert("L").save(tmp_path / "grey.png")
    for path in [*photos, tmp_path / "pal.png", tmp_path / "grey.png"]:
        assert np.array_equal(pixels(path), np.asarray(load_img(path, None)))


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.jpg"
    Image.fromarray(PICTURE).save(path)
    if os.geteuid() != 0:  # as root every file is readable: then only the branch below
        path.chmod(0)
        with pytest.raises(ImageError, match="permission denied"):
            read_image(path)
        path.chmod(0o644)
    real_open = open

    def refusing_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    with pytest.raises(ImageError, match="permission denied"):
        read_image(path)


def test_python_api_reads_as_the_command_line(tmp_path):
    """Issue #13: ``vggnp.load_image`` and the command line read a file with the same code,
    so a phone photo stored on its side is upright in both (Keras' load_img is not)."""
    import vggnp
    from corpus import _RGB
    from vggnp.files.preprocess import model_input
    path = tmp_path / "side.jpg"
    path.write_bytes(with_orientation(_RGB, 6))
    upright, _ = read_image(str(path))
    assert upright.size == _RGB.size and load_img(str(path), None).size != _RGB.size
    x = vggnp.load_image(str(path), target_size=(32, 48))
    assert np.array_equal(x[0], model_input(upright, (32, 48), 3, "vgg16"))
    photo, notes = vggnp.read_image(str(path))
    assert photo.size == _RGB.size and notes == []
    grey = vggnp.load_image(str(path), target_size=(32, 48), mode="rescale", channels=1)
    assert np.array_equal(grey[0], model_input(upright, (32, 48), 1, "rescale"))
    assert grey.shape == (1, 32, 48, 1)
    with pytest.raises(ValueError, match="channels must be 1 .grey. or 3 .RGB., not 4"):
        vggnp.load_image(str(path), channels=4)
    for mode in ("caffe", "vgg16", "torch"):  # 3 means would make 3 channels of 1, silently
        with pytest.raises(ValueError, match=f"preprocess {mode} needs 3 channels"):
            vggnp.load_image(str(path), mode=mode, channels=1)
    # a picture already read is taken as it is (it was "stat: path should be string")
    assert np.array_equal(vggnp.load_image(upright, target_size=(32, 48)), x)
    with pytest.raises(TypeError, match="path must be an image file's path or a PIL image, "
                                        "not ndarray"):
        vggnp.load_image(np.asarray(upright))


def test_every_funnel_error_is_caught_as_vggnp_input_error(tmp_path):
    """A Python caller catches any refused file by ``vggnp.InputError`` (or its kind),
    imported from ``vggnp`` itself; every name of ``vggnp.__all__`` is there."""
    import vggnp
    assert all(getattr(vggnp, name) is not None for name in vggnp.__all__)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    for call, kind in ((lambda: vggnp.read_image(str(bad)), vggnp.ImageError),
                       (lambda: vggnp.load_keras_model(str(bad)), vggnp.ModelError)):
        with pytest.raises(kind) as raised:
            call()
        assert isinstance(raised.value, vggnp.InputError)


def test_only_a_cut_file_is_told_to_use_allow_truncated(tmp_path):
    """A file cut short has a readable part; a damaged one (bytes flipped) decodes to
    garbage that a model still classifies confidently (a new user's finding: it was told
    to pass --allow-truncated, and got "square 1.0000" for a blank picture)."""
    cut, flipped = tmp_path / "cut.jpg", tmp_path / "flipped.png"
    cut.write_bytes(jpeg_bytes(Image.fromarray(PICTURE))[:1500])
    Image.fromarray(PICTURE).save(flipped)  # a PNG: zlib and the CRCs see the damage
    data = bytearray(flipped.read_bytes())
    for i in range(100, len(data), 97):
        data[i] ^= 0xFF
    flipped.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"^truncated image \(.*\); pass --allow-truncated \(in "
                                         r"Python: allow_truncated=True\)"):
        read_image(cut)
    with pytest.raises(ImageError) as info:
        read_image(flipped)
    assert str(info.value).startswith("damaged image (") and "--allow-truncated" not in \
        str(info.value)
    # Cut inside the header (a new user's 500 bytes of a photo: Pillow's "Truncated File
    # Read"), nothing decodes, with --allow-truncated or not: neither that advice nor an
    # image editor's helps.
    header = tmp_path / "header.jpg"
    header.write_bytes(jpeg_bytes(Image.fromarray(PICTURE))[:300])
    for allow in (False, True):
        with pytest.raises(ImageError, match=r"^cut off before its pixels \(.*\): nothing "
                                             r"in it decodes; copy or download it again$"):
            read_image(header, allow_truncated=allow)
    # What the message says to do can be done: each command that reads an image, and
    # load_image, take the option (activations and sanity did not).
    import vggnp
    from vggnp import activations, sanity
    assert vggnp.load_image(str(cut), allow_truncated=True).shape == (1, 224, 224, 3)
    from helpers import MODEL
    out = ["--out", str(tmp_path / "out")]
    assert activations.main([str(cut), "--layer", "conv2d_6", *MODEL[:2], *out]) == 1
    assert activations.main([str(cut), "--layer", "conv2d_6", *MODEL[:2], *out,
                             "--allow-truncated"]) == 0
    assert sanity.main([str(cut), *MODEL, *out, "--methods", "saliency", "--depth", "1",
                        "--no-independent", "--allow-truncated", "--quiet"]) == 0
