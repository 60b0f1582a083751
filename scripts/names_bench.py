"""How long the output names of a folder take to plan: ``output_stems`` on N inputs that
all share one file name (30,000 folders each holding img.png, --recursive), and on N
distinct names. Linear since #27 (it was quadratic: 67 s for 20,000, 383 s for 40,000).

    python -m scripts.names_bench [--counts 1000 10000 100000]
"""

import argparse
import time

from vggnp.cam.outputs import output_stems


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--counts", type=int, nargs="+", default=[1000, 10000, 100000])
    args = p.parse_args()
    print("| inputs | one shared name (s) | distinct names (s) |\n|---|---|---|")
    for n in args.counts:
        timings = []
        for paths in ([f"d{i}/img.png" for i in range(n)], [f"d/img{i}.png" for i in range(n)]):
            start = time.perf_counter()
            stems = output_stems(paths)
            timings.append(time.perf_counter() - start)
            assert len(set(stems)) == n
        print(f"| {n:,} | {timings[0]:.3f} | {timings[1]:.3f} |")


if __name__ == "__main__":
    main()
