"""Sphinx configuration of the fastdeconv documentation.

The documentation is built against the *installed* package (``pip install .`` first; for a
local in-place build, ``PYTHONPATH=/path/to/checkout``): ``sys.path`` is not modified here.

    sphinx-build -W -b html docs docs/_build/html
    sphinx-build -b doctest docs docs/_build/doctest
"""

import doctest

import fastdeconv

# -- Project -----------------------------------------------------------------------------------
project = "fastdeconv"
author = "the fastdeconv developers"
copyright = "the fastdeconv developers"
version = fastdeconv.__version__
release = fastdeconv.__version__

# -- General -----------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
]
# No sphinx.ext.intersphinx: the docs must build without network access.

templates_path = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "examples/GALLERY_HEADER.rst"]
root_doc = "index"
default_role = "autolink"
nitpicky = False

# -- autodoc / autosummary / numpydoc --------------------------------------------------------
# The autosummary tables live in the module docstrings (SciPy style); their stub pages are
# written next to the page that includes them (docs/reference/generated/, git-ignored).
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- doctest -----------------------------------------------------------------------------------
doctest_global_setup = """
import numpy as np
import fastdeconv
"""
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1

# -- plot directive ----------------------------------------------------------------------------
# Figures are generated at build time from the code shown next to them.
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_pre_code = "import numpy as np\nimport matplotlib.pyplot as plt\n"
plot_rcparams = {"figure.autolayout": True, "font.size": 10}

# -- HTML --------------------------------------------------------------------------------------
html_theme = "alabaster"
html_theme_options = {
    "description": "Convolution and its transpose for NumPy: exact, explainable, fast.",
    "fixed_sidebar": False,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_static_path = []
html_title = f"fastdeconv {release}"

# -- sphinx-gallery ----------------------------------------------------------------------------
# The examples in docs/examples/ are executed at every build; their pages, figures,
# thumbnails, scripts and notebooks are written to docs/auto_examples/ (git-ignored).
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # The examples are numbered in the order they are meant to be read.
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    "min_reported_time": 0,
    "show_memory": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "download_all_examples": True,
    "write_computation_times": True,
}
