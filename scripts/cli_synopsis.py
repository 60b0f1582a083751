"""The synopsis of docs/cli.md, generated from the parser (``vggnp.cam.args.parser``):

    python -m scripts.cli_synopsis          # print it
    python -m scripts.cli_synopsis --write  # put it into docs/cli.md

``tests/test_first_minutes.py`` checks that docs/cli.md holds what this prints.
"""

import argparse
import os
import re
import sys

from vggnp.cam.args import parser

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "cli.md")
WIDTH = 100
BLOCK = re.compile(r"(<!-- synopsis: python -m scripts.cli_synopsis --write -->\n```\n)"
                   r"(.*?)(```)", re.S)


def synopsis():
    """The usage lines of python -m vggnp.cam at WIDTH columns, without "usage: "."""
    os.environ["COLUMNS"] = str(WIDTH + 2)  # argparse wraps at COLUMNS - 2
    p = parser()
    p.prog = "python -m vggnp.cam"
    usage = p.format_usage()
    return usage.removeprefix("usage: ").replace("\n" + " " * len("usage: "), "\n")


def main(argv=None):
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--write", action="store_true", help="update docs/cli.md")
    if not args.parse_args(argv).write:
        print(synopsis(), end="")
        return 0
    return 0 if write_block(DOC, BLOCK, synopsis()) else 1


def write_block(path, block, content):
    """Put ``content`` into the one match of ``block`` (a pattern of three groups: the
    opening marker, the generated text, the closing marker) in the file ``path``; False,
    with a line on stderr, if the file has no such block (or several)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text, count = block.subn(lambda m: m.group(1) + content + m.group(3), text)
    if count != 1:
        print(f"{path}: no single generated block to replace", file=sys.stderr)
        return False
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return True


if __name__ == "__main__":
    sys.exit(main())
