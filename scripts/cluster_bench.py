"""Images/s of ``vggnp.cam --dask`` on a LocalCluster of 1 and 2 worker processes (one
BLAS thread each), beside the same folder run on this machine without Dask (issue #28).

    python -m scripts.cluster_bench                 # 40 photos, 2 rounds
    python -m scripts.cluster_bench --images 200 --rounds 3

The folder: real-photo variants (``stream_bench.make_variants``: JPEGs of 200-4,000 px);
the model: full-size VGG16 with realistic random weights (the ImageNet weights' compute).
Each run is a fresh ``python -m vggnp.cam`` process into a fresh --out, timed whole
(model load, connection, every image written); the clusters are started once, before the
rounds, and each worker process loads the model once and keeps it between runs (a warm
cluster, as a user's is; round 0, not counted, warms them). The three settings alternate
in each round; the table gives the median.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from scripts.harness import machine, random_weights_file
from scripts.stream_bench import make_variants


def timed_run(folder, weights, out, address=None):
    """Seconds of one ``python -m vggnp.cam`` run (exit code checked)."""
    command = [sys.executable, "-m", "vggnp.cam", folder, "--weights", weights, "--out", out,
               "--quiet"] + (["--dask", address] if address else [])
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr}")
    return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    from distributed import LocalCluster
    with tempfile.TemporaryDirectory() as work:
        weights = random_weights_file(work)
        folder = os.path.join(work, "photos")
        os.mkdir(folder)
        make_variants(folder, args.images)
        clusters = {n: LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                    dashboard_address=":0") for n in (1, 2)}
        try:
            times = {"here": [], 1: [], 2: []}
            for round_ in range(args.rounds + 1):  # round 0 warms the workers' model
                for setting in times:
                    address = None if setting == "here" else clusters[setting].scheduler_address
                    out = os.path.join(work, f"out_{setting}_{round_}")
                    seconds = timed_run(folder, weights, out, address)
                    print(f"round {round_}, {setting}: {seconds:.1f} s", file=sys.stderr,
                          flush=True)
                    if round_:
                        times[setting].append(seconds)
        finally:
            for cluster in clusters.values():
                cluster.close()
    print(report(times, args))


def report(times, args):
    m = machine()
    rows = [f"Measured {m['date']} by `python -m scripts.cluster_bench --images {args.images} "
            f"--rounds {args.rounds}` on {m['cpu']}, {m['cpus']}; "
            f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(not set)')}. "
            "Full-size VGG16, Grad-CAM, JPEGs of 200-4,000 px; a whole `python -m vggnp.cam` "
            "process per run (model load included), median of the rounds.", "",
            "| run | workers | BLAS threads per worker | wall | images/s |",
            "|---|---|---|---|---|"]
    names = {"here": ("this machine, no Dask", "-", "2 (2 batches at once)"),
             1: ("`--dask`, LocalCluster", "1", "1"), 2: ("`--dask`, LocalCluster", "2", "1")}
    for setting, seconds in times.items():
        wall = statistics.median(seconds)
        what, workers, threads = names[setting]
        rows.append(f"| {what} | {workers} | {threads} | {wall:.1f} s | "
                    f"{args.images / wall:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
