"""How VGG16's conv sums are cut for vggnp's threads, layer by layer (issue #28.1's plan):
each conv's forward sum and its input gradient's, on the layer's real input, in several
cuts, on an idle machine or beside one spinning process per core (``--busy``).

    python -m scripts.cuts_bench [--repeats 5] [--rounds 3] [--busy]

The ways, each ``direct_conv.correlate`` on the same arrays: "BLAS threads" (no cut: one
block of rows after another, OpenBLAS's own threads sharing each product), "k a thread"
(the output rows in 2k equal blocks for vggnp's two threads, ``fast/blocks.py``, each
product on one BLAS thread) for k = 1, 2, 4, and "the rule" (``direct_conv.blocks`` as
the package cuts: four a thread where each block keeps ``MIN_BLOCK_ROWS`` rows, else
fewer, one at least). Batch 1, 224x224, float32, realistic random weights, the photo
of the other benches; two BLAS threads and two block threads (``use_threads(2)``), busy
or not (the commands' default would give the BLAS one beside busy cores). Prints a Markdown table of
medians (ms), the fastest way per layer, and the totals. Timings need a machine without
other work of ours; never asserted in a test.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from scripts.harness import PHOTO, machine, random_weights_file
from scripts.threads_bench import SPIN

WAYS = ("BLAS threads", "1 a thread", "2 a thread", "4 a thread", "the rule")
THREADS = 2


def set_way(way, default_rows, default_per_thread):
    """Point ``direct_conv.blocks`` at way's cut (its module constants)."""
    from vggnp.fast import direct_conv
    if way == "the rule":
        direct_conv.MIN_BLOCK_ROWS, direct_conv.BLOCKS_PER_THREAD = (default_rows,
                                                                     default_per_thread)
    elif way != "BLAS threads":
        direct_conv.MIN_BLOCK_ROWS, direct_conv.BLOCKS_PER_THREAD = 0, int(way[0])


def layer_sums(model, x):
    """{conv name: {"forward": fn(threads) or None, "dx": fn(threads) or None}}: the
    correlate calls of each conv's forward and input gradient on its real input, None
    where the layer takes another path (block1_conv1's forward: im2col's bands; its dx:
    col2im by planes)."""
    from vggnp.fast.direct_conv import correlate, full_pads
    from vggnp.fast.layers import FastConv2D, flipped_kernel
    sums, a = {}, x
    for layer in model.layers:
        if isinstance(layer, FastConv2D):
            pads, dz = layer.pads(a.shape), np.ones((*a.shape[:3], layer.w.shape[3]), a.dtype)
            ahead = layer.path(a.shape) == "direct"
            back = layer.path(a.shape, backward=True) == "direct"
            dx_pads = full_pads(*layer.w.shape[:2], pads)
            sums[layer.name] = {
                "forward": (lambda t, a=a, w=layer.w, p=pads:
                            correlate(a, w, {}, p, threads=t)) if ahead else None,
                "dx": (lambda t, d=dz, w=flipped_kernel(layer.w), p=dx_pads:
                       correlate(d, w, {}, p, threads=t)) if back else None}
        a = layer.forward(a)
    return sums


def measure(weights, repeats, rounds=3):
    """{(layer, "forward" | "dx"): {way: median ms}}: per layer, ``rounds`` rounds of the
    ways in turn, each way ``repeats`` times in a row after one untimed run (OpenBLAS's
    threads spin for a while after a product: a cut way timed right after the uncut one
    would share the cores with them, as no layer does in the network)."""
    import vggnp
    from vggnp.fast import direct_conv
    from vggnp.fast.blocks import BLOCKS, INLINE
    from vggnp.fast.threads import use_threads
    use_threads(THREADS)
    model = vggnp.VGG16.load(weights)
    defaults = direct_conv.MIN_BLOCK_ROWS, direct_conv.BLOCKS_PER_THREAD
    table = {}
    for name, sums in layer_sums(model, vggnp.load_image(PHOTO)).items():
        for kind, run in sums.items():
            if run is None:
                continue
            times = {way: [] for way in WAYS}
            for r in range(rounds):
                for way in (WAYS if r % 2 else WAYS[::-1]):
                    set_way(way, *defaults)
                    threads = INLINE if way == "BLAS threads" else BLOCKS
                    run(threads)
                    for _ in range(repeats):
                        began = time.perf_counter()
                        run(threads)
                        times[way].append(1000 * (time.perf_counter() - began))
            table[name, kind] = {way: float(np.median(t)) for way, t in times.items()}
    set_way("the rule", *defaults)
    return table


def markdown(table):
    lines = ["| layer | sum | " + " | ".join(WAYS) + " | fastest |",
             "|---|---|" + "---|" * (len(WAYS) + 1)]
    totals = dict.fromkeys(WAYS, 0.0)
    for (name, kind), ms in table.items():
        lines.append(f"| {name} | {kind} | " + " | ".join(f"{ms[w]:.1f}" for w in WAYS)
                     + f" | {min(ms, key=ms.get)} |")
        for way in WAYS:
            totals[way] += ms[way]
    lines.append("| all | | " + " | ".join(f"{totals[w]:.0f}" for w in WAYS) + " | |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--busy", action="store_true", help="beside one spinning process a core")
    args = p.parse_args()
    from vggnp.fast.threads import cores
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN])
                for _ in range(cores() if args.busy else 0)]
    try:
        with tempfile.TemporaryDirectory() as folder:
            table = measure(random_weights_file(folder), args.repeats, args.rounds)
    finally:
        for spinner in spinners:
            spinner.kill()
    m = machine()
    print(f"Measured {m['date']} by `python -m scripts.cuts_bench --repeats {args.repeats} "
          f"--rounds {args.rounds}{' --busy' if args.busy else ''}` on {m['cpu']}, "
          f"{m['cpus']}, OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(not set)')}; "
          f"{'one spinning process per core' if args.busy else 'idle'}; {THREADS} BLAS "
          f"threads and {THREADS} block threads; median ms of "
          f"{args.rounds} rounds x {args.repeats}, the ways in turn.\n")
    print(markdown(table))


if __name__ == "__main__":
    main()
