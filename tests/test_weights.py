"""The weights reader: the Keras 1 layout, and a clear error for every bad file.

Files here are small VGG-shaped models (narrow widths), written by ``kerasfiles``; the
formats Keras itself writes are covered by test_tf_reference.py.
"""

import h5py
import numpy as np
import pytest

from kerasfiles import write_keras1_h5, write_keras3_weights_h5
from helpers import NARROW
from vggnp import VGG16, WeightsError, read_vgg16_weights
from vggnp.nn.random_init import random_vgg16_weights

LOAD = dict(input_size=(64, 96), standard=False)


@pytest.fixture
def narrow_weights():
    return random_vgg16_weights(**NARROW)


def test_keras1_layout_round_trip(tmp_path, narrow_weights):
    path = tmp_path / "vgg16.h5"
    write_keras1_h5(path, narrow_weights)
    read = read_vgg16_weights(path, **LOAD)
    assert set(read) == set(narrow_weights)
    for name, (kernel, bias) in narrow_weights.items():
        assert np.array_equal(read[name][0], kernel) and np.array_equal(read[name][1], bias)


def test_stored_weights_are_mapped_and_handed_on_as_plain_arrays(tmp_path, narrow_weights):
    """Weights stored as Keras writes them (contiguous, uncompressed) are memory-mapped, not
    read into memory, and handed on as plain ndarray views of the np.memmap
    (``weights._values``): a memmap's every slice runs Python code (a conv's kernel taps,
    hundreds a pass). A float32 model keeps them as they are, no copy."""
    path = tmp_path / "vgg16.h5"
    write_keras1_h5(path, narrow_weights)
    for kernel, bias in read_vgg16_weights(path, **LOAD).values():
        for values in (kernel, bias):
            assert type(values) is np.ndarray and isinstance(values.base, np.memmap)
    model = VGG16.load(path, **LOAD)
    assert type(model.layer("block1_conv1").w) is np.ndarray
    assert isinstance(model.layer("block1_conv1").w.base, np.memmap)


@pytest.mark.parametrize("with_names", [True, False])
def test_keras3_layout_by_name_or_by_order(tmp_path, narrow_weights, with_names):
    # 13 convs: h5py lists conv2d_10 before conv2d_2, so mapping by order must sort by number.
    path = tmp_path / "vgg16.weights.h5"
    write_keras3_weights_h5(path, narrow_weights, with_names=with_names)
    read = read_vgg16_weights(path, **LOAD)
    for name, (kernel, bias) in narrow_weights.items():
        assert np.array_equal(read[name][0], kernel) and np.array_equal(read[name][1], bias)


def test_keras3_vgg19_without_names_refused(tmp_path):
    vgg19 = random_vgg16_weights(convs_per_block=(2, 2, 4, 4, 4), **NARROW)
    path = tmp_path / "vgg19.weights.h5"
    write_keras3_weights_h5(path, vgg19, with_names=False)
    with pytest.raises(WeightsError, match="looks like VGG19 .it has 16 conv layers"):
        VGG16.load(path, **LOAD)


def test_notop_serves_features_not_classifier(tmp_path, narrow_weights):
    notop = {k: v for k, v in narrow_weights.items() if k.startswith("block")}
    path = tmp_path / "notop.h5"
    write_keras1_h5(path, notop)
    model = VGG16.load(path, **LOAD)
    assert not model.has_top and model.names[-1] == "block5_pool"
    x = np.random.default_rng(0).standard_normal((1, 64, 96, 3)).astype(np.float32)
    assert model.forward(x, until="block5_conv3").shape == (1, 4, 6, 8)
    with pytest.raises(ValueError, match="notop"):
        model.predict(x)
    with pytest.raises(WeightsError, match="notop"):
        read_vgg16_weights(path, need_top=True, **LOAD)


def expect_error(tmp_path, weights, match, **write_kwargs):
    path = tmp_path / "bad.h5"
    write_keras1_h5(path, weights, **write_kwargs)
    with pytest.raises(WeightsError, match=match) as info:
        VGG16.load(path, **LOAD)
    assert str(path) in str(info.value)


def test_vgg19_refused_as_vgg19(tmp_path):
    vgg19 = random_vgg16_weights(convs_per_block=(2, 2, 4, 4, 4), **NARROW)
    expect_error(tmp_path, vgg19, "looks like VGG19")


def test_channels_first_refused(tmp_path, narrow_weights):
    expect_error(tmp_path, narrow_weights, "channels-first", channels_first=True)


def test_other_model_refused(tmp_path):
    other = {"conv1_conv": (np.ones((7, 7, 3, 4), np.float32), np.ones(4, np.float32)),
             "fc1000": (np.ones((4, 10), np.float32), np.ones(10, np.float32))}
    expect_error(tmp_path, other, "not a VGG16 weights file: it has 2 layers")
    expect_error(tmp_path, other, "; another Keras model is read by --model")


def test_nan_refused(tmp_path, narrow_weights):
    narrow_weights["block3_conv2"][0][0, 0, 0, 0] = np.nan
    expect_error(tmp_path, narrow_weights, "block3_conv2 contains NaN")


def test_float16_refused(tmp_path, narrow_weights):
    k, b = narrow_weights["fc2"]
    narrow_weights["fc2"] = (k.astype(np.float16), b)
    expect_error(tmp_path, narrow_weights, "fc2 is stored as float16")


def test_wrong_shape_refused(tmp_path, narrow_weights):
    k, b = narrow_weights["block2_conv1"]
    narrow_weights["block2_conv1"] = (k[:, :, :3], b)
    expect_error(tmp_path, narrow_weights, "block2_conv1 has kernel")


def test_partial_classifier_refused(tmp_path, narrow_weights):
    del narrow_weights["fc2"]
    expect_error(tmp_path, narrow_weights, "only part of the classifier")


def test_narrow_model_refused_as_standard(tmp_path, narrow_weights):
    path = tmp_path / "narrow.h5"
    write_keras1_h5(path, narrow_weights)
    with pytest.raises(WeightsError, match="other widths"):
        VGG16.load(path, input_size=(64, 96))


def test_not_hdf5_files(tmp_path):
    html = tmp_path / "page.h5"
    html.write_bytes(b"<!DOCTYPE html><html><body>Not Found</body></html>")
    with pytest.raises(WeightsError, match="HTML page"):
        VGG16.load(html)
    with pytest.raises(WeightsError, match="not found"):
        VGG16.load(tmp_path / "missing.h5")
    with pytest.raises(WeightsError, match="directory"):
        VGG16.load(tmp_path)


def test_truncated_file(tmp_path, narrow_weights):
    path = tmp_path / "full.h5"
    write_keras1_h5(path, narrow_weights)
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError):
        VGG16.load(cut, **LOAD)


def test_plain_hdf5_not_keras(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.ones(3)
    with pytest.raises(WeightsError, match="not Keras weights"):
        VGG16.load(path)


def _replace_dataset(path, layer, make):
    """Swap the kernel dataset of ``layer`` in a Keras 1-layout file for make(group, name, data)."""
    with h5py.File(path, "a") as f:
        group = f[layer]
        name = f"{layer}_W_1:0"
        data = group[name][()]
        del group[name]
        make(group, name, data)


@pytest.mark.parametrize("kind", ["external link", "external storage", "virtual dataset"])
def test_datasets_that_read_other_files_are_refused(tmp_path, narrow_weights, kind):
    """A weights file must not make vggnp read another file on the machine."""
    path, other = tmp_path / "vgg16.h5", tmp_path / "elsewhere.h5"
    write_keras1_h5(path, narrow_weights)
    kernel = narrow_weights["block2_conv1"][0]
    with h5py.File(other, "w") as f:
        f["data"] = kernel
    raw = tmp_path / "raw.bin"
    raw.write_bytes(kernel.tobytes())

    def make(group, name, data):
        if kind == "external link":
            group[name] = h5py.ExternalLink(str(other), "/data")
        elif kind == "external storage":
            group.create_dataset(name, data.shape, data.dtype,
                                 external=[(str(raw), 0, data.nbytes)])
        else:
            layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
            layout[...] = h5py.VirtualSource(str(other), "data", shape=data.shape)
            group.create_virtual_dataset(name, layout)

    _replace_dataset(path, "block2_conv1", make)
    with h5py.File(path, "r") as f:  # h5py itself would read the other file's values
        assert np.array_equal(f["block2_conv1/block2_conv1_W_1:0"][()], kernel)
    message = {"external link": "external link to .*elsewhere.h5", "external storage":
               "external files .*raw.bin", "virtual dataset": "virtual dataset"}[kind]
    with pytest.raises(WeightsError, match=message):
        read_vgg16_weights(path, **LOAD)


def test_official_file_with_a_flipped_byte_is_refused(tmp_path, narrow_weights, monkeypatch):
    """The official file is checked by md5; a changed byte in a weight keeps every shape,
    dtype and finite value, so only the md5 can tell."""
    from vggnp.files import official as dl
    path = tmp_path / "vgg16.h5"
    write_keras1_h5(path, narrow_weights)
    monkeypatch.setenv("VGGNP_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(dl, "SIZE", path.stat().st_size)
    monkeypatch.setattr(dl, "MD5", dl.file_md5(path))
    read_vgg16_weights(path, **LOAD)  # intact: accepted
    with h5py.File(path, "r") as f:
        offset = f["block3_conv1/block3_conv1_W_1:0"].id.get_offset()
    data = bytearray(path.read_bytes())
    data[offset + 101] ^= 0x10
    path.write_bytes(bytes(data))
    with h5py.File(path, "r") as f:  # still a valid, finite float32 file
        assert np.isfinite(f["block3_conv1/block3_conv1_W_1:0"][()]).all()
    with pytest.raises(WeightsError, match="not its md5 .* damaged"):
        read_vgg16_weights(path, **LOAD)
