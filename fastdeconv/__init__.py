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

Prepared layers
---------------

A layer called many times (an inference loop) keeps its weight checked, copied and packed:

.. autosummary::
   :toctree: generated/

   PreparedConv
   PreparedConvTranspose

Upsampling
----------

Every other way a network upsamples, with the exact conventions of PyTorch, ONNX,
TensorFlow, Keras and JAX (see the user guide's conventions page), each with its adjoint:

.. autosummary::
   :toctree: generated/

   resize
   resize_backward
   max_pool
   max_unpool
   max_pool_backward
   max_unpool_backward
   pixel_shuffle
   pixel_unshuffle

Deconvolution
-------------

Undoing a convolution (the inverse problem, which ``conv_transpose`` does not solve):

.. autosummary::
   :toctree: generated/

   deconvolve
   DeconvolutionResult

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
   sparse.resize_matrix
   sparse.max_unpool_matrix
   sparse.pixel_shuffle_matrix
   sparse.linear_operator

Explaining deconvolution
------------------------

Shape arithmetic (:mod:`fastdeconv.shapes`), equivalences between upsampling layers
(:mod:`fastdeconv.equivalences`) and checkerboard analysis (:mod:`fastdeconv.checkerboard`):

.. autosummary::

   shapes.conv_transpose_output_shape
   shapes.conv_transpose_as_conv
   equivalences.resize_conv_as_conv_transpose
   equivalences.conv_transpose_as_subpixel
   checkerboard.overlap_map
   checkerboard.icnr

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
from ._deconvolve import DeconvolutionResult, deconvolve
from ._prepared import PreparedConv, PreparedConvTranspose
from ._pool import max_pool, max_pool_backward, max_unpool, max_unpool_backward
from ._resize import resize, resize_backward
from ._shuffle import pixel_shuffle, pixel_unshuffle
from ._threads import get_num_threads, set_num_threads
from . import checkerboard, equivalences, shapes, sparse  # noqa: E402  (pure-Python submodules)

__all__ = [
    "conv",
    "conv_transpose",
    "conv_backward",
    "conv_transpose_backward",
    "PreparedConv",
    "PreparedConvTranspose",
    "resize",
    "resize_backward",
    "max_pool",
    "max_unpool",
    "max_pool_backward",
    "max_unpool_backward",
    "pixel_shuffle",
    "pixel_unshuffle",
    "deconvolve",
    "DeconvolutionResult",
    "show_config",
    "get_num_threads",
    "set_num_threads",
    "__version__",
]
