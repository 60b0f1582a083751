"""Reference libraries that tests compare against: a missing one skips a test on a
developer's machine but fails it in CI (``CI`` set), so no check is skipped unseen."""

import importlib
import os

import pytest


def reference_module(name, install="pip install -e '.[test]'"):
    """The imported module ``name``; skip locally, fail in CI, when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI: the reference tests must run ({install})")
        pytest.skip(f"{name} not installed: reference test skipped")
