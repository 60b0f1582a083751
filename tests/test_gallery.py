"""The README's deletion/insertion AUC table and docs/gallery are what scripts/gallery.py
makes now (to 3 decimals, exactly as printed). If this fails after a change to the model or
the maps, regenerate both with ``python -m scripts.gallery`` and review the diff."""

import difflib

import pytest

from scripts import gallery


@pytest.fixture(scope="module")
def fresh():
    return gallery.gallery()


def test_readme_auc_table_is_a_fresh_run(fresh):
    with open(gallery.README, encoding="utf-8") as f:
        committed = gallery.readme_table(f.read())
    table = gallery.table_lines(fresh[1])
    assert table == committed, "README.md's AUC table is stale (python -m scripts.gallery):\n" + \
        "\n".join(difflib.unified_diff(committed, table, "README.md", "fresh run", lineterm=""))


def test_gallery_pictures_are_a_fresh_run(fresh):
    assert gallery.stale_pictures(fresh[0]) == [], "run python -m scripts.gallery"


def test_replace_table_changes_only_the_lines_between_the_markers():
    text = "a\r\n<!-- auc-table: x -->\r\nold\r\nold\r\n<!-- /auc-table -->\r\nb\r\n"
    new = gallery.replace_table(text, ["| new |"])
    assert new == "a\r\n<!-- auc-table: x -->\r\n| new |\r\n<!-- /auc-table -->\r\nb\r\n"
    assert gallery.readme_table(new) == ["| new |"]
    with pytest.raises(ValueError, match="auc-table"):
        gallery.readme_table("no markers\n")
