"""Explicit sparse matrices of the convolution and upsampling operators.

The matrices are assembled from COO triplets by index arithmetic on a
:class:`~fastdeconv._geometry.ConvGeometry` (relation ``i = o * stride - pad_before +
t * dilation``), never by applying an operator to unit vectors. They are therefore an
oracle that is independent of the compiled kernels, and a convenient way to hand a
convolution to ``scipy.sparse.linalg`` solvers.

.. autosummary::
   :toctree: generated/

   conv_matrix
   conv_transpose_matrix
   resize_matrix
   max_unpool_matrix
   pixel_shuffle_matrix

The upsampling matrices come from index arithmetic too: :func:`resize_matrix` is the
Kronecker product of one small matrix per spatial dimension (the interpolation plan of that
dimension), :func:`max_unpool_matrix` places a one at ``(c, indices[c, i]), (c, i)`` and
:func:`pixel_shuffle_matrix` is the permutation written out by its formula.

Matrix-free
-----------

:func:`linear_operator` wraps any of these operators as a
``scipy.sparse.linalg.LinearOperator`` whose products run the fast kernels (and the adjoint
kernels for the transpose), with ``to_sparse()`` giving the matrix above: the form that
SciPy's iterative solvers take, and what :func:`fastdeconv.deconvolve` uses.

.. autosummary::
   :toctree: generated/

   linear_operator
   FastLinearOperator
"""

from ._linear_operator import FastLinearOperator, linear_operator
from ._matrix_conv import conv_matrix, conv_transpose_matrix
from ._matrix_upsample import max_unpool_matrix, pixel_shuffle_matrix, resize_matrix

__all__ = ["conv_matrix", "conv_transpose_matrix", "resize_matrix", "max_unpool_matrix",
           "pixel_shuffle_matrix", "linear_operator", "FastLinearOperator"]
