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
   get_num_threads
   set_num_threads

Sparse matrices
---------------

Explicit ``scipy.sparse`` matrices of the operators, in :mod:`fastdeconv.sparse`:

.. autosummary::

   sparse.conv_matrix
   sparse.conv_transpose_matrix

Testing
-------

NumPy reference operators, the dot test and finite-difference checks, in
:mod:`fastdeconv.testing`:

.. autosummary::

   testing.conv_reference
   testing.conv_transpose_reference
   testing.assert_adjoint
   testing.directional_derivative_check
"""

__version__ = "0.1.0"

from ._config import show_config
from ._conv import conv, conv_backward, conv_transpose, conv_transpose_backward
from ._threads import get_num_threads, set_num_threads

__all__ = [
    "conv",
    "conv_transpose",
    "conv_backward",
    "conv_transpose_backward",
    "show_config",
    "get_num_threads",
    "set_num_threads",
    "__version__",
]
