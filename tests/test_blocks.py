"""vggnp's own threads (``vggnp/fast/blocks.py``): every block once, BLAS on one thread
meanwhile and as before after, a failing block raised, a second caller never waiting; and
the products cut into blocks (``direct_conv.correlate``, ``FastDense``) equal to the
uncut ones."""

import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from vggnp import grad_cam
from vggnp.fast import direct_conv
from vggnp.fast.blocks import BLOCKS
from vggnp.fast.direct_conv import correlate
from vggnp.fast.layers import FastDense
from vggnp.fast.threads import SharedBlasThreads, use_threads
from vggnp.nn.im2col import im2col
from vggnp.nn.layers import Dense


def count_tasks(threads, monkeypatch):
    """[number of tasks of each of threads' runs from now on]."""
    counts, run = [], threads.run

    def counting(tasks):
        tasks = list(tasks)
        counts.append(len(tasks))
        run(tasks)
    monkeypatch.setattr(threads, "run", counting)
    return counts


def blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_every_block_runs_once_on_two_threads(two_threads):
    ran, lock = [], threading.Lock()

    def task(k):
        time.sleep(0.002)  # long enough that the second thread takes some
        with lock:
            ran.append((k, threading.get_ident()))
    two_threads.run([lambda k=k: task(k) for k in range(20)])
    assert sorted(k for k, _ in ran) == list(range(20))
    assert len({thread for _, thread in ran}) == 2


def test_blas_runs_on_one_thread_inside_a_run_and_as_before_after(two_threads):
    before, inside = blas_threads(), []
    assert before and max(before) == 2
    two_threads.run([lambda: inside.append(blas_threads())] * 4)
    assert inside == [[1] * len(before)] * 4
    assert blas_threads() == before


def test_a_failing_block_is_raised_and_the_threads_work_after(two_threads):
    def fail():
        raise ArithmeticError("block 3")
    with pytest.raises(ArithmeticError, match="block 3"):
        two_threads.run([lambda: None] * 3 + [fail] + [lambda: None] * 3)
    ran = []
    two_threads.run([lambda: ran.append(1)] * 5)
    assert ran == [1] * 5 and max(blas_threads()) == 2


def test_a_second_caller_runs_its_blocks_itself(two_threads):
    """While one run waits on its blocks, another thread's run does not wait for it."""
    release, started, done = threading.Event(), threading.Event(), []

    def held():
        started.set()
        release.wait(10)
    first = threading.Thread(target=two_threads.run, args=([held, held],))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: two_threads.run([lambda: done.append(1)] * 3))
    second.start()
    second.join(10)
    assert done == [1] * 3 and not second.is_alive()  # while the first still waits
    release.set()
    first.join(10)
    assert not first.is_alive()


def test_a_stream_of_two_workers_multiplies_on_one_thread_each(two_threads):
    shared = SharedBlasThreads(2)
    assert BLOCKS.count == 1 and max(blas_threads()) == 1
    shared.restore()
    assert BLOCKS.count == 2 and max(blas_threads()) == 2


@pytest.mark.parametrize("min_block_rows", [0, 10 ** 9], ids=["4 a thread", "1 a thread"])
@pytest.mark.parametrize("pads, k", [(((1, 1), (1, 1)), 3), (((0, 0), (0, 0)), 3),
                                      (((0, 0), (0, 0)), 1)])
def test_a_conv_cut_into_blocks_equals_im2col(two_threads, monkeypatch, min_block_rows,
                                              pads, k):
    """Four blocks of rows a thread (as VGG16's early layers) or one (its block3 to
    block5: ``direct_conv.MIN_BLOCK_ROWS``), on two threads: the sum of
    im2col(x) @ W + b, in float64 to rounding."""
    monkeypatch.setattr(direct_conv, "MIN_BLOCK_ROWS", min_block_rows)
    tasks = count_tasks(two_threads, monkeypatch)
    r = np.random.default_rng(3)
    x, w, b = r.standard_normal((2, 9, 11, 5)), r.standard_normal((k, k, 5, 16)), \
        r.standard_normal(16)
    z = correlate(x, w, {}, pads, bias=b, threads=two_threads)
    # the padded copy's bands of rows (9 rows, 2 a band), then the sum's blocks
    assert tasks == ([5, 2] if min_block_rows else [5, 8])
    expected = im2col(x, k, k, pads, (1, 1)) @ w.reshape(-1, 16) + b
    np.testing.assert_allclose(z.reshape(-1, 16), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rows, f, itemsize, threads, sizes", [
    (3248, 256, 4, 2, [1624] * 2),          # VGG16's block3 at 224: one block a thread
    (3248, 256, 8, 2, [812] * 4),           # in float64: block_bytes asks for more
    (12768, 128, 4, 2, [1596] * 8),         # block2: four a thread, each >= 1024 rows
    (50624, 64, 4, 1, [7232] * 7),          # one thread: at most block_bytes each
    (12996, 128, 4, 2, [1625] * 7 + [1621]),
    (5, 64, 4, 3, [2, 2, 1]), (3, 512, 4, 2, [2, 1]), (1, 64, 4, 2, [1]), (0, 64, 4, 2, [])])
def test_a_conv_is_cut_into_equal_blocks_of_enough_rows(rows, f, itemsize, threads, sizes):
    """``direct_conv.blocks``: contiguous blocks covering every row once, as many a thread
    as leave MIN_BLOCK_ROWS rows each (four at most, one at least), of one size; rows are
    the flat output rows ``correlate`` sums (H' * (W + 2) at batch 1, "same")."""
    parts = direct_conv.blocks(rows, f, itemsize, 2 << 20, threads)
    assert [stop - start for start, stop in parts] == sizes
    if rows:
        assert parts[0][0] == 0 and parts[-1][1] == rows
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


def test_an_empty_batch_is_an_empty_map_on_two_threads(two_threads):
    x = np.zeros((0, 4, 4, 3))
    z = correlate(x, np.ones((1, 1, 3, 2)), {}, ((0, 0), (0, 0)), threads=two_threads)
    assert z.shape == (0, 4, 4, 2)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_a_dense_layer_cut_into_blocks_equals_one_product(two_threads, monkeypatch, dtype,
                                                          tolerance):
    monkeypatch.setattr(FastDense, "MIN_SPLIT_BYTES", 0)
    r = np.random.default_rng(4)
    w, b = r.standard_normal((301, 40)).astype(dtype), r.standard_normal(40).astype(dtype)
    x, dz = r.standard_normal((3, 301)).astype(dtype), r.standard_normal((3, 40)).astype(dtype)
    fast, plain = FastDense("d", w, b, "linear", two_threads), Dense("d", w, b, "linear")
    assert len(fast._row_blocks()) == 8
    for ours, theirs in ((fast.pre_activation(x), plain.pre_activation(x)),
                         (fast.input_gradient(dz), plain.input_gradient(dz))):
        assert ours.dtype == dtype
        scale = np.abs(theirs).max()
        np.testing.assert_allclose(ours / scale, theirs / scale, rtol=0, atol=tolerance)


@pytest.mark.parametrize("min_block_rows", [0, 10 ** 9], ids=["4 a thread", "1 a thread"])
def test_grad_cam_is_the_same_on_blocks(small_model, monkeypatch, min_block_rows):
    """A whole Grad-CAM of a narrow VGG16 (its backward through the dense layers and
    block5_pool only), every conv and dense product cut, against one thread."""
    x = np.random.default_rng(5).uniform(-100, 100, (2, 64, 64, 3)).astype(np.float32)
    one, classes = grad_cam(small_model, x)
    assert isinstance(small_model.layers[-1], FastDense)
    monkeypatch.setattr(direct_conv, "MIN_BLOCK_ROWS", min_block_rows)
    monkeypatch.setattr(FastDense, "MIN_SPLIT_BYTES", 0)
    before = BLOCKS.count
    BLOCKS.use(2)
    try:
        cut, cut_classes = grad_cam(small_model, x)
    finally:
        BLOCKS.use(before)
    assert one.max() > 0 and np.array_equal(cut_classes, classes)
    np.testing.assert_allclose(cut, one, rtol=0, atol=1e-5)


@pytest.mark.parametrize("strides, c, back", [((2, 2), 6, "im2col"), ((1, 1), 3, "planes")])
def test_an_im2col_conv_cut_into_blocks_equals_the_textbook_one(two_threads, strides, c,
                                                                back):
    """The products of FastConv2D's im2col path (a strided conv, forward and backward)
    and of a 3-channel conv's dx by planes, cut into blocks of rows: the textbook
    Conv2D's, in float64 to rounding."""
    from vggnp.fast.layers import FastConv2D
    from vggnp.nn.layers import Conv2D
    r = np.random.default_rng(6)
    x, w, b = r.standard_normal((2, 9, 10, c)), r.standard_normal((3, 3, c, 5)), \
        r.standard_normal(5)
    fast = FastConv2D("c", w, b, "linear", strides, threads=two_threads)
    plain = Conv2D("c", w, b, "linear", strides)
    assert fast.path(x.shape, backward=True) == back
    z = fast.forward(x)
    np.testing.assert_allclose(z, plain.forward(x), rtol=0, atol=1e-12)
    dz = r.standard_normal(z.shape)
    np.testing.assert_allclose(fast.input_gradient(dz), plain.input_gradient(dz), rtol=0,
                               atol=1e-12)


def test_the_default_cuts_vggs_products_for_every_core_even_when_busy(monkeypatch):
    """Beside a busy core the BLAS gets the free cores only (two BLAS threads wait for
    the late one at every product), but the block threads get every core (a late one
    takes fewer blocks): docs/speed.md, threads_bench."""
    import argparse
    from vggnp import cli
    monkeypatch.setattr(cli, "free_cores", lambda busy=None: 1)
    monkeypatch.setattr(cli, "cores", lambda: 2)
    before, blas = BLOCKS.count, max(blas_threads())
    try:
        assert cli.apply_process_settings(argparse.Namespace(threads=None)) == 1
        assert BLOCKS.count == 2 and max(blas_threads()) == 1
        assert cli.apply_process_settings(argparse.Namespace(threads=1)) == 1
        assert BLOCKS.count == 1
    finally:
        use_threads(blas, blocks=before)


def test_a_process_that_ends_does_not_wait_for_the_blocks_under_way():
    """As the stream's workers, the helpers are daemon threads: a run ending (Ctrl-C)
    while a batch's blocks are under way exits at once, quietly (a pool whose threads are
    joined at exit would run the remaining 10 s of blocks first)."""
    import subprocess
    import sys
    code = ("import threading, time\n"
            "from vggnp.fast.threads import use_threads\n"
            "from vggnp.fast.blocks import BLOCKS\n"
            "use_threads(2)\n"
            "threading.Thread(target=BLOCKS.run, args=([lambda: time.sleep(0.2)] * 100,),"
            " daemon=True).start()\n"
            "time.sleep(0.5)\n")
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("min_block_rows", [0, 10 ** 9], ids=["4 a thread", "1 a thread"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_a_direct_conv_cut_into_blocks_equals_the_textbook_one(two_threads, monkeypatch,
                                                              min_block_rows, padding):
    """FastConv2D's direct path, forward and the flipped-kernel backward (16 channels:
    the kernel's taps as transposed views), on two threads: the textbook
    Conv2D's, in float64 to rounding."""
    from vggnp.fast.layers import FastConv2D
    from vggnp.nn.layers import Conv2D
    monkeypatch.setattr(direct_conv, "MIN_BLOCK_ROWS", min_block_rows)
    tasks = count_tasks(two_threads, monkeypatch)
    r = np.random.default_rng(8)
    x, w, b = r.standard_normal((2, 9, 11, 16)), r.standard_normal((3, 3, 16, 16)), \
        r.standard_normal(16)
    fast = FastConv2D("c", w, b, "linear", padding=padding, threads=two_threads)
    plain = Conv2D("c", w, b, "linear", padding=padding)
    assert fast.path(x.shape) == fast.path(x.shape, backward=True) == "direct"
    z = fast.forward(x)
    np.testing.assert_allclose(z, plain.forward(x), rtol=0, atol=1e-12)
    dz = r.standard_normal(z.shape)
    np.testing.assert_allclose(fast.input_gradient(dz), plain.input_gradient(dz), rtol=0,
                               atol=1e-12)
    assert len(tasks) == 4 and min(tasks) > 1  # each sum: its padded copy, then its blocks


def test_after_a_failing_block_no_thread_takes_another(two_threads):
    """A failure (or Ctrl-C) in one block stops the run at the blocks under way, not
    after the rest of the layer."""
    ran = []

    def slow():
        time.sleep(0.05)
        ran.append(1)

    def fail():
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        two_threads.run([fail] + [slow] * 40)
    assert len(ran) < 5
