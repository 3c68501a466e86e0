"""The examples in the docstrings and in the documentation pages run and print what they show.

Sphinx's doctest builder (``sphinx-build -b doctest docs ...``) checks the same examples as
they appear in the built documentation; these tests run them without Sphinx, so that a change
that breaks an example fails the ordinary test suite (pywt's ``test_doc.py``).
"""

import doctest
import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastdeconv

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Not imported for their docstrings: the entry point, the generated build record and the
# benchmark engine (whose examples would time peers such as PyTorch).
SKIP_MODULES = {"fastdeconv.__main__", "fastdeconv._build_info", "fastdeconv._bench"}

DOCS = Path(__file__).resolve().parent.parent / "docs"
README = DOCS.parent / "README.md"


def _module_names():
    names = ["fastdeconv"]
    for info in pkgutil.walk_packages(fastdeconv.__path__, prefix="fastdeconv."):
        if info.name not in SKIP_MODULES:
            names.append(info.name)
    return sorted(names)


def _doc_pages():
    if not DOCS.is_dir():  # an installed copy of the tests without the docs tree
        return []
    # Not the pages that Sphinx builds generate (API stubs, the executed gallery).
    generated = {"_build", "generated", "auto_examples"}
    return sorted(
        path for path in DOCS.rglob("*.rst")
        if not generated & set(path.parts) and path.name != "sg_execution_times.rst"
    )


def test_the_public_modules_are_among_the_doctested_ones():
    names = _module_names()
    for name in ("fastdeconv._conv", "fastdeconv.sparse", "fastdeconv.testing",
                 "fastdeconv.testing._checks", "fastdeconv._geometry", "fastdeconv.shapes",
                 "fastdeconv.equivalences", "fastdeconv.checkerboard", "fastdeconv._deconvolve",
                 "fastdeconv._linear_operator"):
        assert name in names


#: What a module's or page's examples need beyond the test extra, by the name that uses it:
#: (the module to import, the reason shown when it is missing). CI installs them all.
OPTIONAL_NEEDS = {
    "fastdeconv.dask": ("dask.array", "needs the dask extra: pip install 'fastdeconv[dask]'"),
    "fastdeconv.testing._onnx": ("onnx", "needs the optional onnx package: pip install onnx"),
}


def _needs_optional(text):
    """Skip (with the reason) examples that use an optional package that is not installed:
    ``fastdeconv.dask`` and the pages that use it need the dask extra, the ONNX test helper's
    examples the ``onnx`` package."""
    for user, (module, reason) in OPTIONAL_NEEDS.items():
        if user in text:
            pytest.importorskip(module, reason=reason)


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples(name, capsys):
    _needs_optional(name)
    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module, optionflags=OPTIONFLAGS, report=False)
    output = capsys.readouterr().out
    assert failed == 0, f"{failed} of {attempted} docstring examples of {name} failed:\n{output}"


@pytest.mark.parametrize("page", _doc_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_documentation_page_examples(page, capsys):
    _needs_optional(page.read_text(encoding="utf-8"))
    failed, attempted = doctest.testfile(
        str(page), module_relative=False, optionflags=OPTIONFLAGS, report=False,
        encoding="utf-8",
    )
    output = capsys.readouterr().out
    assert failed == 0, f"{failed} of {attempted} examples of docs/{page.relative_to(DOCS)} failed:\n{output}"


# ------------------------------------------------------------------ the README's verify sample
# The README shows an abridged table of ``python -m fastdeconv verify``. Its rows must be the
# rows the command prints, so that the sample cannot drift from the program:
# ``python tests/test_docs.py --update-readme`` rewrites the sample from a real run (keeping
# the README's choice of rows), and the test below fails when they differ.

VERIFY_INTRO = "`python -m fastdeconv verify` prints (abridged):"


def _run_verify():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-m", "fastdeconv", "verify", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def _columns(line, widths):
    """Split a table line at the column boundaries of the dashed rule under the header."""
    cells, start = [], 0
    for width in widths[:-1]:
        cells.append(line[start:start + width].strip())
        start += width + 2
    return cells + [line[start:].strip()]


def _table(lines):
    """(header cells, {(operator, configuration): cells}, summary line) of verify's output."""
    rule = lines[1]
    assert set(rule) <= {"-", " "}, f"no dashed rule under verify's header: {rule!r}"
    widths = [len(part) for part in rule.split("  ")]
    header = _columns(lines[0], widths)
    rows = {}
    for line in lines[2:]:
        if not line.strip():
            break
        cells = _columns(line, widths)
        rows[(cells[0], cells[1])] = cells
    summary = next(line for line in lines if re.match(r"\d+ of \d+ configurations", line))
    return header, rows, summary


def _format(header, rows):
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in [header] + rows]


def _readme_sample(text):
    """(start, end) line indices of the fenced block after VERIFY_INTRO, and its lines."""
    lines = text.splitlines()
    fence = lines.index(VERIFY_INTRO) + 1
    while not lines[fence].strip():
        fence += 1
    assert lines[fence] == "```", "the verify sample must follow its intro as a fenced block"
    start = fence + 1
    end = lines.index("```", start)
    return start, end, lines[start:end]


def _expected_sample(sample, output):
    """The README's sample rebuilt from verify's real output, keeping its rows and order."""
    header, rows, summary = _table(output)
    chosen = []
    for line in sample[1:]:
        if line.strip() in ("...", "") or re.match(r"\d+ of \d+ configurations", line):
            continue
        operator, rest = line.split(None, 1)
        matches = [key for key in rows if key[0] == operator and rest.startswith(key[1] + " ")]
        assert matches, f"the README's verify row {line!r} is not in verify's output"
        chosen.append(rows[max(matches, key=lambda key: len(key[1]))])
    return _format(header, chosen) + ["..."] + [summary]


def test_readme_verify_sample_is_what_verify_prints():
    start, end, sample = _readme_sample(README.read_text(encoding="utf-8"))
    expected = _expected_sample(sample, _run_verify())
    assert sample == expected, (
        "README.md's `verify` sample differs from what `python -m fastdeconv verify` prints; "
        "regenerate it with `python tests/test_docs.py --update-readme`.\nREADME:\n"
        + "\n".join(sample) + "\nexpected:\n" + "\n".join(expected))


def update_readme():
    text = README.read_text(encoding="utf-8")
    start, end, sample = _readme_sample(text)
    lines = text.splitlines()
    lines[start:end] = _expected_sample(sample, _run_verify())
    README.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"updated the verify sample of {README}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update-readme"]:
        raise SystemExit("usage: python tests/test_docs.py --update-readme")
    update_readme()
