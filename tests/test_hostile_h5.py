"""Hostile and damaged .h5 weights (issue #15): a narrow VGG16 (tests/kerasfiles.py) with
bad attributes, bytes written over its HDF5 metadata, finite but huge weights; and the
full-size file with 1e38 weights through the command line. Each refused in one line that
names the file (tests/hostile_checks.py)."""

import os
import shutil

import h5py
import numpy as np
import pytest

from helpers import NARROW, ROOT, run_cam
from hostile_checks import assert_exit_3, refusal, refused_in_child, within
from hostile_files import H5_MUTANTS, HUGE, METADATA, edited_copy, metadata_offsets
from kerasfiles import write_keras1_h5
from vggnp.files.hdf5 import WeightsError
from vggnp.files.weights import read_vgg16_weights
from vggnp.nn.random_init import random_vgg16_weights

GOOD_IMAGE = os.path.join(ROOT, "examples", "circle.png")


# -- .h5 weights: a narrow VGG16 --------------------------------------------------------------

def read_narrow(path):
    return read_vgg16_weights(path, input_size=(64, 96), standard=False, need_top=True)


@pytest.fixture(scope="module")
def narrow_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("narrow") / "vgg16.h5"
    write_keras1_h5(path, random_vgg16_weights(**NARROW))
    read_narrow(path)  # the control: it loads
    return path


@pytest.mark.parametrize("mutant", list(H5_MUTANTS))
def test_h5_mutant_refused(tmp_path, narrow_file, mutant):
    path = edited_copy(narrow_file, tmp_path / f"{mutant}.h5", H5_MUTANTS[mutant])
    refusal(read_narrow, path, WeightsError)


@pytest.mark.parametrize("mutant", list(HUGE))
def test_huge_finite_weights_refused(tmp_path, narrow_file, mutant):
    path = edited_copy(narrow_file, tmp_path / f"{mutant}.h5", HUGE[mutant])
    message = refusal(read_narrow, path, WeightsError)
    assert "block1_conv1" in message and "not a trained model" in message


def h5py_fails(path):
    """Whether h5py itself raises on opening ``path`` and reading all of it."""
    def read(name, item):
        if isinstance(item, h5py.Dataset):
            item[()]
    try:
        with h5py.File(path, "r") as f:
            f.visititems(read)
    except Exception:  # noqa: BLE001 -- whatever h5py raises: the mutant is a real one
        return True
    return False


@pytest.mark.parametrize("where", METADATA)
def test_random_bytes_over_hdf5_metadata_refused(tmp_path, narrow_file, where):
    path = tmp_path / "damaged.h5"
    shutil.copy(narrow_file, path)
    offset = metadata_offsets(path)[where]
    with open(path, "r+b") as f:
        f.seek(offset + 4)  # past a signature or version: 32 random bytes
        f.write(np.random.default_rng(offset).integers(0, 256, 32, np.uint8).tobytes())
    assert h5py_fails(path), "the mutant must damage what h5py reads"
    refusal(read_narrow, path, WeightsError)


def test_full_size_weights_with_1e38_exit_3_via_cli(tmp_path, vgg16_file):
    path = edited_copy(vgg16_file, tmp_path / "vgg16_1e38.h5",
                       HUGE["kernel-1e38"])
    with within():
        result = run_cam(GOOD_IMAGE, "--weights", str(path), "--out",
                         str(tmp_path / "out"), timeout=60)
    assert_exit_3(result, path)
    assert "nan" not in result.stdout.lower()
    assert "not a trained model" in result.stderr


def emptied_free_space(path):
    """The file's global heap collection (keras_version's string) with its free-space
    object's size set to 0: libhdf5 1.14 would step by 0 bytes forever (a fuzz case)."""
    data = bytearray(path.read_bytes())
    start = data.find(b"GCOL")
    size, at = int.from_bytes(data[start + 8:start + 16], "little"), 16
    while int.from_bytes(data[start + at:start + at + 2], "little"):  # to index 0
        at += 16 + -(-int.from_bytes(data[start + at + 8:start + at + 16], "little") // 8) * 8
    assert at < size
    data[start + at + 8:start + at + 16] = bytes(8)
    path.write_bytes(bytes(data))
    return start + at


def test_a_global_heap_that_would_never_end_is_refused(tmp_path, narrow_file):
    """Read in a child process (a hang would end there, not here): one line, within
    SECONDS; the same file with its heap intact loads (the fixture's control)."""
    path = tmp_path / "heap.h5"
    shutil.copy(narrow_file, path)
    where = emptied_free_space(path)
    output = refused_in_child("vggnp.files.weights.read_vgg16_weights",
                              "vggnp.files.hdf5.WeightsError", path)
    assert output.strip() == (f"refused: {path}: damaged HDF5 global heap at byte 2,048 (a "
                              f"free-space object of size 0 at byte {where:,}); reading its "
                              "strings would never end")


def test_every_collection_is_walked_where_it_is(monkeypatch):
    """Two collections 5 MB apart (the scan reads 4 MB blocks, and each walk moves the
    stream): the sound one passes, the damaged one is found at its own offset."""
    import io
    from vggnp.files import hdf5_heaps
    good = bytearray(b"GCOL\x01\x00\x00\x00" + (4096).to_bytes(8, "little") + bytes(4080))
    good[24:32] = (4096 - 16).to_bytes(8, "little")  # index 0: free space to the end
    bad = bytearray(good)
    bad[24:32] = bytes(8)
    data = bytearray(8 << 20)
    data[100:100 + 4096], data[(5 << 20) + 7:(5 << 20) + 7 + 4096] = good, bad
    stream = io.BytesIO(bytes(data))
    starts = list(hdf5_heaps._signatures(stream))
    assert starts == [100, (5 << 20) + 7]
    found = [hdf5_heaps._walk(stream, start, len(data)) for start in starts]
    assert found == [None, f"a free-space object of size 0 at byte {(5 << 20) + 23:,}"]
    monkeypatch.setattr(hdf5_heaps, "reads_the_heap", lambda f: True)  # as a str attribute
    with pytest.raises(ValueError, match=f"damaged HDF5 global heap at byte {(5 << 20) + 7:,}"):
        hdf5_heaps.check_global_heaps(None, stream, "weights.h5", ValueError)


def test_a_heap_walk_reads_headers_only_and_a_bounded_count(monkeypatch):
    """A collection may claim the whole file: the walk reads each object's 16-byte header,
    never the collection whole (largest read: the scan's 4 MB block); and a file whose
    collections hold more objects than MAX_OBJECTS (many collections, each as large as
    the file, could make the check read the file that many times) is refused in one line."""
    import io
    from vggnp.files import hdf5_heaps
    objects = 5000
    heap = bytearray(b"GCOL\x01\x00\x00\x00" + (16 + 16 * objects).to_bytes(8, "little"))
    heap += b"".join(i.to_bytes(2, "little") + bytes(14) for i in range(1, objects + 1))
    data = bytes(heap) + bytes(8 << 20)

    class Reads(io.BytesIO):
        largest = 0

        def read(self, n=-1):
            out = super().read(n)
            Reads.largest = max(Reads.largest, len(out))
            return out
    stream = Reads(data)
    assert hdf5_heaps._walk(stream, 0, len(data)) is None
    assert Reads.largest == 16
    monkeypatch.setattr(hdf5_heaps, "reads_the_heap", lambda f: True)
    hdf5_heaps.check_global_heaps(None, stream, "weights.h5", ValueError)
    assert Reads.largest == 4 << 20
    monkeypatch.setattr(hdf5_heaps, "MAX_OBJECTS", objects - 1)
    with pytest.raises(ValueError) as refused:
        hdf5_heaps.check_global_heaps(None, stream, "weights.h5", ValueError)
    assert str(refused.value) == ("weights.h5: more than 4,999 HDF5 global heap objects to "
                                  "check; not a file Keras writes")
