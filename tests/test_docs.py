"""The examples in the docstrings and in the documentation pages run and print what they show.

Sphinx's doctest builder (``sphinx-build -b doctest docs ...``) checks the same examples as
they appear in the built documentation; these tests run them without Sphinx, so that a change
that breaks an example fails the ordinary test suite (pywt's ``test_doc.py``).
"""

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import fastdeconv

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Not imported for their docstrings: the entry point, the generated build record and the
# benchmark engine (whose examples would time peers such as PyTorch).
SKIP_MODULES = {"fastdeconv.__main__", "fastdeconv._build_info", "fastdeconv._bench"}

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _module_names():
    names = ["fastdeconv"]
    for info in pkgutil.walk_packages(fastdeconv.__path__, prefix="fastdeconv."):
        if info.name not in SKIP_MODULES:
            names.append(info.name)
    return sorted(names)


def _doc_pages():
    if not DOCS.is_dir():  # an installed copy of the tests without the docs tree
        return []
    return sorted(
        path for path in DOCS.rglob("*.rst")
        if "_build" not in path.parts and "generated" not in path.parts
    )


def test_the_public_modules_are_among_the_doctested_ones():
    names = _module_names()
    for name in ("fastdeconv._conv", "fastdeconv.sparse", "fastdeconv.testing",
                 "fastdeconv.testing._checks", "fastdeconv._geometry", "fastdeconv.shapes",
                 "fastdeconv.equivalences", "fastdeconv.checkerboard", "fastdeconv._deconvolve",
                 "fastdeconv._linear_operator"):
        assert name in names


def _needs_dask(text):
    """fastdeconv.dask and the pages that use it need the dask extra (skipped, with the reason,
    without it; CI installs it)."""
    if "fastdeconv.dask" in text:
        pytest.importorskip("dask.array", reason="needs the dask extra: pip install 'fastdeconv[dask]'")


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples(name, capsys):
    _needs_dask(name)
    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module, optionflags=OPTIONFLAGS, report=False)
    output = capsys.readouterr().out
    assert failed == 0, f"{failed} of {attempted} docstring examples of {name} failed:\n{output}"


@pytest.mark.parametrize("page", _doc_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_documentation_page_examples(page, capsys):
    _needs_dask(page.read_text(encoding="utf-8"))
    failed, attempted = doctest.testfile(
        str(page), module_relative=False, optionflags=OPTIONFLAGS, report=False,
        encoding="utf-8",
    )
    output = capsys.readouterr().out
    assert failed == 0, f"{failed} of {attempted} examples of docs/{page.relative_to(DOCS)} failed:\n{output}"
