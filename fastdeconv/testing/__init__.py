"""Test helpers for code built on fastdeconv (and for fastdeconv's own tests).

Reference operators
-------------------

Plain NumPy implementations that share no code with the compiled kernels. They are slow; use
them on small arrays to check a result, e.g.
``np.testing.assert_allclose(fastdeconv.conv(x, w, stride=2), conv_reference(x, w,
stride=2), **tolerances(x.dtype))``.

.. autosummary::
   :toctree: generated/

   conv_reference
   conv_transpose_reference
   conv_weight_grad_reference
   conv_backward_reference
   conv_transpose_backward_reference

Upsampling references (per-output scalar loops, independent of the library's plans):

.. autosummary::
   :toctree: generated/

   resize_reference
   resize_backward_reference
   resize_matrices_reference
   max_pool_reference
   max_unpool_reference
   pixel_shuffle_reference
   pixel_unshuffle_reference

Checks
------

:func:`assert_adjoint` is the dot test ``<A x, y> == <x, A^T y>``: use it to check that a
custom operator and its hand-written adjoint (for example a ``conv`` / ``conv_transpose``
pair with matching parameters) agree. :func:`directional_derivative_check` compares a
gradient with a central finite difference along one direction; ``TOLERANCES`` /
:func:`tolerances` give per-dtype tolerances for comparisons against the float64 references.

.. autosummary::
   :toctree: generated/

   assert_adjoint
   directional_derivative_check
   tolerances
   TOLERANCES

Examples
--------
>>> import numpy as np
>>> import fastdeconv.testing as fdt
>>> rng = np.random.default_rng(0)
>>> w = rng.standard_normal((4, 3, 3, 3))
>>> lhs, rhs = fdt.assert_adjoint(
...     lambda x: fdt.conv_reference(x, w, stride=2, padding=1),
...     lambda y: fdt.conv_transpose_reference(y, w, stride=2, padding=1),
...     x_shape=(2, 3, 7, 7), y_shape=(2, 4, 4, 4), rng=rng)
"""

from ._checks import TOLERANCES, assert_adjoint, directional_derivative_check, tolerances
from ._reference import (
    conv_backward_reference,
    conv_reference,
    conv_transpose_backward_reference,
    conv_transpose_reference,
    conv_weight_grad_reference,
)
from ._reference_pool import (
    max_pool_reference,
    max_unpool_reference,
    pixel_shuffle_reference,
    pixel_unshuffle_reference,
)
from ._reference_resize import (
    resize_backward_reference,
    resize_matrices_reference,
    resize_reference,
)

__all__ = [
    "TOLERANCES",
    "assert_adjoint",
    "conv_backward_reference",
    "conv_reference",
    "conv_transpose_backward_reference",
    "conv_transpose_reference",
    "conv_weight_grad_reference",
    "directional_derivative_check",
    "max_pool_reference",
    "max_unpool_reference",
    "pixel_shuffle_reference",
    "pixel_unshuffle_reference",
    "resize_backward_reference",
    "resize_matrices_reference",
    "resize_reference",
    "tolerances",
]
