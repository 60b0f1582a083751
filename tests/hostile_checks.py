"""The checks every hostile-file case shares (tests/test_hostile.py, test_hostile_h5.py):
refused within SECONDS, in one line naming the file, with no warning; exit 3 from the
command line; a child process's time and peak memory."""

import contextlib
import subprocess
import sys
import tempfile
import time
import warnings

import pytest

from helpers import ROOT

SECONDS = 10  # for any one file, refused or read
PEAK_BYTES = 1.5e9  # peak RSS of a child process reading a file that claims gigabytes


# -- Checks shared by every case -------------------------------------------------------------

@contextlib.contextmanager
def within(seconds=SECONDS):
    start = time.perf_counter()
    yield
    assert time.perf_counter() - start < seconds, f"took over {seconds} s"


def refusal(read, path, error):
    """The message of the ``error`` that ``read(path)`` raises within SECONDS, with no
    warning on the way: one line, naming the file (at its start: weights and model
    messages begin with the path)."""
    with within(), warnings.catch_warnings(record=True) as seen, pytest.raises(error) as info:
        warnings.simplefilter("always")
        read(path)
    assert not seen, f"warnings reach the user: {[str(w.message) for w in seen]}"
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def assert_exit_3(result, path):
    """A weights, model or labels file refused by the CLI: exit 3, one line naming it."""
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], result.stderr


def run_measured(code, *args, timeout=60):
    """``python -c code args...`` from the project root, killed after ``timeout`` s:
    (exit code, stdout + stderr, seconds, peak RSS in bytes). The peak is the child's own
    VmHWM, read every 10 ms until it exits: getrusage's ru_maxrss would report this test
    process's RSS (Linux keeps it across fork and exec), gigabytes once TF is loaded."""
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT,
                                 stdout=output, stderr=subprocess.STDOUT)
        peak = 0
        while child.poll() is None and time.perf_counter() - start < timeout:
            peak = max(peak, vm_hwm(child.pid))
            time.sleep(0.01)
        if child.poll() is None:
            child.kill()
            child.wait()
        seconds = time.perf_counter() - start
        output.seek(0)
        return child.returncode, output.read().decode(errors="replace"), seconds, peak


def vm_hwm(pid):
    """The peak resident memory of process ``pid`` so far, in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def refused_in_child(function, error, path):
    """Call ``function`` (module.name) on ``path`` in a child process: it must raise
    ``error`` (module.name) within SECONDS, its peak RSS under PEAK_BYTES."""
    module, name = function.rsplit(".", 1)
    error_module, error_name = error.rsplit(".", 1)
    code = (f"import sys\nfrom {module} import {name}\nfrom {error_module} import {error_name}\n"
            f"try:\n    {name}(sys.argv[1])\nexcept {error_name} as e:\n"
            "    print('refused:', e)\nelse:\n    print('accepted')\n")
    status, output, seconds, peak = run_measured(code, str(path))
    assert status == 0 and output.startswith("refused: "), output
    assert len(output.strip().splitlines()) == 1, output
    assert seconds < SECONDS, f"took {seconds:.1f} s"
    assert peak < PEAK_BYTES, f"peak RSS {peak / 1e9:.2f} GB"
    return output
