"""float32 matrix products of the sizes vggnp's convolutions make, on each of OpenBLAS's
kernels this CPU can run: GFLOP/s, each setting in a fresh process (OpenBLAS chooses its
kernels once, when NumPy loads it), the settings alternating.

    python -m scripts.blas_kernels [--rounds 3] [--threads 2] [--kernels Haswell own]

"own" is OpenBLAS's own choice (OPENBLAS_CORETYPE unset); a name sets OPENBLAS_CORETYPE.
Prints a Markdown table of the median GFLOP/s per product. Never asserted in a test.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

# (M, K, N): rows = output pixels, K = KH*KW*C, N = filters
PRODUCTS = {
    "VGG16 block1_conv2 tap (50176, 64, 64)": (50176, 64, 64),
    "VGG16 block4_conv2 tap (784, 512, 512)": (784, 512, 512),
    "ResNet50 1x1 (3136, 64, 256)": (3136, 64, 256),
    "ResNet50 3x3 im2col (784, 1152, 128)": (784, 1152, 128),
    "Xception pointwise (361, 728, 728)": (361, 728, 728),
    "square (2048, 2048, 2048)": (2048, 2048, 2048),
}


def worker(threads, repeats=10):
    """{product: GFLOP/s, "kernels": what threadpoolctl reports} in this process, BLAS
    limited to ``threads`` threads."""
    from threadpoolctl import threadpool_info, threadpool_limits
    threadpool_limits(threads, user_api="blas")
    rng = np.random.default_rng(0)
    found = {"kernels": ", ".join(lib.get("architecture") or "?" for lib in threadpool_info()
                                  if lib["user_api"] == "blas")}
    for label, (m, k, n) in PRODUCTS.items():
        a, b = (rng.random(shape, dtype=np.float32) for shape in ((m, k), (k, n)))
        a @ b
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - began)
        found[label] = 2 * m * k * n / float(np.median(times)) / 1e9
    return found


def run(kernel, threads):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if kernel != "own":
        env["OPENBLAS_CORETYPE"] = kernel
    done = subprocess.run([sys.executable, "-m", "scripts.blas_kernels", "--worker",
                           "--threads", str(threads)], env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    p.add_argument("--kernels", nargs="+", default=["Haswell", "own"])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.threads)))
        return
    found = {kernel: [] for kernel in args.kernels}
    for _ in range(args.rounds):
        for kernel in args.kernels:
            found[kernel].append(run(kernel, args.threads))
    print(f"python -m scripts.blas_kernels --rounds {args.rounds} --threads {args.threads} "
          f"--kernels {' '.join(args.kernels)}: float32 GFLOP/s, median of {args.rounds} "
          f"processes each\n")
    print("| product (M, K, N) | " + " | ".join(
        f"{k} ({found[k][0]['kernels']})" for k in args.kernels) + " |")
    print("|---" * (len(args.kernels) + 1) + "|")
    for label in PRODUCTS:
        print(f"| {label} | " + " | ".join(
            f"{np.median([r[label] for r in found[k]]):.0f}" for k in args.kernels) + " |")


if __name__ == "__main__":
    main()
