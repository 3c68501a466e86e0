"""fastdeconv: convolution, its transpose and upsampling for NumPy, exact and fast.

Every operator is linear in its input and comes three ways: a fast forward (Cython kernels and
BLAS), its adjoint (which is its gradient), and an explicit sparse matrix built from index
arithmetic (:mod:`fastdeconv.sparse`). :mod:`fastdeconv.testing` holds an independent plain
NumPy reference and the checks that hold the three against each other.

Convolution
-----------

.. autosummary::
   :toctree: generated/

   conv
   conv_transpose
   conv_backward
   conv_transpose_backward

Configuration
-------------

.. autosummary::
   :toctree: generated/

   show_config
"""

__version__ = "0.1.0"

from ._config import show_config
from ._conv import conv, conv_backward, conv_transpose, conv_transpose_backward

__all__ = [
    "conv",
    "conv_transpose",
    "conv_backward",
    "conv_transpose_backward",
    "show_config",
    "__version__",
]
