"""Is the ctypes GEMM worth its code? vggnp with ``matmul_add`` through NumPy's own BLAS
(beta = 1, in place) against NumPy's ``out += a @ b`` (VGGNP_GEMM=numpy), on the real
trunk: the full-size VGG16 with realistic random weights, the cat photo.

    python -m scripts.gemm_ab [--rounds 3] [--repeats 5]

The two settings run alternately, each in a fresh process (``scripts.bench``'s vggnp
worker), ``rounds`` times; prints the median forward, Grad-CAM and input-gradient times of
each and their ratio (numpy / blas: above 1, the ctypes path is faster).
"""

import argparse
import tempfile

import numpy as np

from scripts.bench import run_worker
from scripts.harness import random_weights_file

MEASURES = [("forward", "forward"), ("Grad-CAM", "gradcam"), ("input gradient", "input_grad")]
SETTINGS = {"blas": {}, "numpy": {"VGGNP_GEMM": "numpy"}}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="alternations (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per process (default 5)")
    args = p.parse_args()
    times = {setting: {key: [] for _, key in MEASURES} for setting in SETTINGS}
    with tempfile.TemporaryDirectory() as folder:
        weights = random_weights_file(folder)
        for _ in range(args.rounds):
            for setting, env in SETTINGS.items():
                found = run_worker("vggnp", weights, args.repeats, extra_env=env)
                for _, key in MEASURES:
                    times[setting][key] += found[key]
    print(f"python -m scripts.gemm_ab --rounds {args.rounds} --repeats {args.repeats}\n")
    print("| measure | ctypes GEMM (ms) | NumPy's += (ms) | NumPy / ctypes |")
    print("|---|---|---|---|")
    for label, key in MEASURES:
        blas, numpy_way = (float(np.median(times[s][key])) for s in ("blas", "numpy"))
        print(f"| {label} | {blas:.0f} | {numpy_way:.0f} | {numpy_way / blas:.2f} |")


if __name__ == "__main__":
    main()
