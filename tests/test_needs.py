"""A missing reference library never skips a check unseen in CI (issue #12, point 8)."""

import os
import re

import pytest

from helpers import reference_module


def test_missing_reference_fails_in_ci_and_skips_locally(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        reference_module("vggnp_no_such_module")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        reference_module("vggnp_no_such_module")


def test_no_test_skips_on_a_missing_module_by_itself():
    """pytest.importorskip would skip in CI too: every optional import goes through needs."""
    folder = os.path.dirname(__file__)
    for name in os.listdir(folder):
        if name.endswith(".py") and name != os.path.basename(__file__):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                assert not re.search(r"importorskip|pytest\.skip\(", f.read()) \
                    or name == "helpers.py", name
