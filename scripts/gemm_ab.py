"""Which GEMM should the conv sums call? vggnp with ``matmul_add`` through Intel MKL (the
``[mkl]`` extra, where installed), through NumPy's own OpenBLAS (VGGNP_GEMM=openblas; both
ctypes, beta = 1, in place) and NumPy's ``out += a @ b`` (VGGNP_GEMM=numpy), on the real
trunk: the full-size VGG16 with realistic random weights, the cat photo.

    python -m scripts.gemm_ab [--rounds 3] [--repeats 5]

The settings run in turn, each in a fresh process (``scripts.bench``'s vggnp worker),
``rounds`` times; prints the median forward, Grad-CAM and input-gradient times of each and
each one's ratio to MKL's (above 1, MKL is faster). Without MKL installed the first column
is OpenBLAS again (``gemm.path()``, printed, says which ran).
"""

import argparse
import subprocess
import sys
import tempfile

import numpy as np

from scripts.bench import run_worker
from scripts.harness import random_weights_file

MEASURES = [("forward", "forward"), ("Grad-CAM", "gradcam"), ("input gradient", "input_grad")]
SETTINGS = {"MKL": {}, "OpenBLAS": {"VGGNP_GEMM": "openblas"},
            "NumPy's +=": {"VGGNP_GEMM": "numpy"}}


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
    ask = "from vggnp.fast import gemm; print(gemm.path())"
    path = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True,
                          check=True).stdout.strip()
    print(f"python -m scripts.gemm_ab --rounds {args.rounds} --repeats {args.repeats}\n"
          f"(the first column's GEMM: {path})\n")
    names = list(SETTINGS)
    print("| measure | " + " | ".join(f"{name} (ms)" for name in names) + " | "
          + " | ".join(f"{name} / MKL" for name in names[1:]) + " |")
    print("|---" * (2 * len(names)) + "|")
    for label, key in MEASURES:
        ms = [float(np.median(times[name][key])) for name in names]
        print(f"| {label} | " + " | ".join(f"{m:.0f}" for m in ms) + " | "
              + " | ".join(f"{m / ms[0]:.2f}" for m in ms[1:]) + " |")


if __name__ == "__main__":
    main()
