"""The README and docs/ say what is true: their links resolve, every command they show
names a real module and only options its parser knows, the README's offline commands run,
and its Python example runs (with a weights file and photos of this repository)."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from helpers import ROOT, run_module

PAGES = ["README.md"] + [os.path.join("docs", name)
                         for name in sorted(os.listdir(os.path.join(ROOT, "docs")))
                         if name.endswith(".md")]


def text(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return f.read()


def code_blocks(page, language=None):
    """The fenced code blocks of a page (of one language, if given), as text."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text(page), flags=re.M | re.S)
    return [body for lang, body in blocks if language is None or lang == language]


def commands(page):
    """Every ``python -m vggnp.X ...`` or ``python -m scripts.X ...`` command shown in a
    page, whether in a code block or inline, as (module, [arguments])."""
    found = []
    for line in text(page).splitlines():
        for match in re.finditer(r"python -m ((?:vggnp|scripts)[\w.]*)([^`|\n#>]*)", line):
            module, rest = match.groups()
            try:
                arguments = shlex.split(rest)
            except ValueError:  # an inline mention cut by the line's end
                arguments = []
            found.append((module, arguments))
    return found


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text(page)):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = os.path.normpath(os.path.join(ROOT, os.path.dirname(page),
                                             target.split("#")[0]))
        if not os.path.exists(path):
            missing.append(target)
    assert not missing, f"{page}: links to nothing: {missing}"


def options_of(module):
    """The long options a command's --help lists."""
    result = run_module(module, "--help", timeout=120)
    assert result.returncode == 0, (module, result.stderr)
    return set(re.findall(r"(--[a-z][a-z-]*)", result.stdout))


@pytest.mark.slow  # one --help process per command
def test_every_command_shown_is_a_module_with_those_options():
    """A command in the docs names a module that exists, and each --option it passes is
    one of that command's (its --help lists it): the docs cannot drift from the parser."""
    shown = {}
    for page in PAGES:
        for module, arguments in commands(page):
            shown.setdefault(module, set()).update(
                a.split("=")[0] for a in arguments if a.startswith("--"))
    assert {"vggnp.cam", "vggnp.sanity", "vggnp.gradcheck", "vggnp.trace"} <= set(shown)
    wrong = []
    for module, options in sorted(shown.items()):
        path = os.path.join(ROOT, *module.split("."))
        if not (os.path.exists(path + ".py") or os.path.exists(os.path.join(path,
                                                                           "__main__.py"))):
            wrong.append(f"{module}: no such module")
            continue
        if module.startswith("vggnp.") and options:
            wrong += [f"{module} {o}" for o in sorted(options - options_of(module))]
    assert not wrong, wrong


def offline_commands():
    """The README's commands that run without a download (the committed shapes model)."""
    return [(module, arguments) for module, arguments in commands("README.md")
            if module.startswith("vggnp.") and "weights/shapes_convnet.keras" in arguments]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(3))
def test_the_readmes_offline_commands_run(index, tmp_path):
    shown = offline_commands()
    assert len(shown) == 3
    module, arguments = shown[index]
    result = subprocess.run([sys.executable, "-m", module, *arguments, "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path), "the command wrote nothing"


def test_the_readmes_python_example_runs(vgg16_file, tmp_path):
    """The README's Python block, run as it is with its file names pointed at this
    repository's files: a VGG16 weights file, the cat photo and the shapes model."""
    (block,) = code_blocks("README.md", "python")
    names = {'"weights.h5"': repr(vgg16_file),
             '"cat.jpg"': repr(os.path.join(ROOT, "examples", "chelsea.jpg")),
             '"cats_and_dogs.keras"': repr(os.path.join(ROOT, "weights",
                                                        "shapes_convnet.keras"))}
    for name, path in names.items():
        assert name in block, name
        block = block.replace(name, path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["probs"].shape == (1, 1000) and scope["heatmaps"].shape == (1, 14, 14)
    assert scope["picture"].size == scope["photo"].size
    assert scope["convnet"].names
    assert scope["x"].shape == (1, *scope["convnet"].input_size, 3)  # its own size


def test_the_dag_table_is_what_the_script_prints():
    """docs/math.md's split of a residual graph's input gradient is what
    ``python -m scripts.dag_table`` prints: the table to the digit it shows, each path's
    error to 0.01, and the sum's error below 1e-8 (finite differences' own rounding moves
    its first digit)."""
    import numpy as np
    from scripts import dag_table
    with open(dag_table.MATH, encoding="utf-8") as f:
        written = dag_table.BLOCK.search(f.read()).group(2)
    made = dag_table.table(dag_table.gradient_paths())
    numbers = [[float(v) for v in re.findall(r"-?\d+\.\d{4}", text)]
               for text in (written, made)]
    assert len(numbers[0]) == len(numbers[1]) == 12
    np.testing.assert_allclose(numbers[0], numbers[1], rtol=0, atol=1.01e-4)
    errors = [[float(v) for v in re.findall(r"\d+e-\d+|\d\.\d\d\b", text.split("\n\n")[1])]
              for text in (written, made)]
    assert len(errors[0]) == len(errors[1]) == 3
    assert errors[0][0] <= 1e-8 and errors[1][0] <= 1e-8
    np.testing.assert_allclose(errors[0][1:], errors[1][1:], rtol=0, atol=0.0101)
