"""The BLAS's thread count set from any thread (``vggnp/fast/blas_threads.py``): as
``python -m vggnp.cam`` runs a network, in the stream's worker thread, after its main
thread set the count (threadpoolctl 3.8 and later drop a setting of OpenBLAS's count made
by any thread but the first that made one)."""

import threading

from threadpoolctl import threadpool_info, threadpool_limits

from helpers import SHAPES, copies, spy
from vggnp.fast import direct_conv
from vggnp.fast import layers as fast_layers
from vggnp.fast.blas_threads import BlasThreads
from vggnp.stream.batches import explain_files


def blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_a_count_set_in_another_thread_holds_and_comes_back(two_threads):
    """Set to 1 in a thread other than the one that set it first through threadpoolctl
    (this one, inside the ``with``): 1 for every library meanwhile, as before after (2
    for OpenBLAS; MKL's sequential layer, where loaded, says 1)."""
    seen = []

    def elsewhere():
        restore = BlasThreads().set(1)
        seen.append(blas_threads())
        restore()
        seen.append(blas_threads())
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join(60)
    assert seen == [[1] * len(before), before] and max(before) == 2


def test_blas_runs_on_one_thread_inside_a_run_made_in_another_thread(two_threads):
    """A run of blocks made in a second thread (the stream's worker), after this thread
    set the count through threadpoolctl: one BLAS thread inside the run, two after."""
    inside = []
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        thread = threading.Thread(
            target=two_threads.run, args=([lambda: inside.append(blas_threads())] * 4,))
        thread.start()
        thread.join(60)
        after = blas_threads()
    assert inside == [[1] * len(before)] * 4
    assert after == before and max(before) == 2


def test_the_streams_one_worker_multiplies_on_one_blas_thread_a_block(
        two_threads, small_model, monkeypatch, tmp_path):
    """A single batch of ``explain_files`` (one worker thread, the command's run of one
    photo): every conv product on a block thread is made with one BLAS thread (MKL's
    kernel where installed: ``gemm.blas_functions``), the shifted GEMMs' and the first
    layer's bands' (``FastConv2D.im2col_in_bands``: counted at its ReLU, right after its
    product, on the band's thread)."""
    blas = BlasThreads()
    bands = spy(monkeypatch, fast_layers, "relu_function", note=lambda *a, **k: blas.count())
    counts = spy(monkeypatch, direct_conv, "matmul_add", note=lambda *a: blas.count())
    monkeypatch.setattr(direct_conv, "MIN_BLOCK_ROWS", 0)
    results = list(explain_files(small_model, copies(tmp_path, SHAPES, 2), batch_size=2))
    assert [r.error for r in results] == [None, None]
    assert counts and set(counts) == {1} and blas.count() == 2
    assert bands and set(bands) == {1}
