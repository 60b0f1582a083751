"""The commands' heap setting (``fast.threads.keep_freed_memory``): the arrays a pass frees
are there for the next pass, not handed back and faulted in again."""

import argparse
import os
import subprocess
import sys
import textwrap

import pytest

from vggnp.fast.threads import _libc

# Two 13 MB arrays (block1's size) made and freed as a pass does, then the page faults of
# five more such passes.
PASSES = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from vggnp.fast.threads import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    def a_pass():
        a = np.ones(13 << 18, np.float32)
        b = np.ones(13 << 18, np.float32)
        del a, b
    a_pass(); a_pass()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        a_pass()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def page_faults(setting):
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}  # 4 KB pages, as the commands
    done = subprocess.run([sys.executable, "-c", PASSES, setting], capture_output=True,
                          text=True, env=env, check=True)
    return int(done.stdout)


@pytest.mark.skipif(_libc() is None, reason="glibc only (mallopt); elsewhere nothing is set")
def test_freed_arrays_are_kept_for_the_next_pass():
    """glibc's own thresholds hand the two arrays back at each pass (26 MB free at the
    heap's top): 5 passes fault in 10 x 13 MB again, 33,000 pages of 4 KB; kept, none."""
    assert page_faults("default") > 5 * 3000
    assert page_faults("keep") < 100


def test_the_commands_keep_freed_memory(monkeypatch):
    from vggnp import cli
    called = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: called.append(True))
    monkeypatch.setattr(cli, "use_threads", lambda count, blocks: None)
    cli.apply_process_settings(argparse.Namespace(threads=1))
    assert called == [True]
