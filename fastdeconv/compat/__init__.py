"""Drop-in functions with other frameworks' signatures and semantics.

Each module of this package holds thin functions with the exact signature and semantics of
one framework's operators -- :mod:`fastdeconv.compat.onnx` those of the ONNX operator
specification -- so that a model is ported by replacing the call, not by re-deriving
paddings and layouts. A compat function is no second implementation: it validates its
framework's arguments and maps them onto ONE canonical fastdeconv call (a
:class:`~fastdeconv.compat._call.CanonicalCall`), with at most pure data movement around it
(cropping or reshaping the result, an index remainder on an operand). Every compat function
takes ``explain=False``; with ``explain=True`` it returns that call as text instead of
computing it, so that a porting user learns the translation and can write the fastdeconv call
directly:

>>> import numpy as np
>>> import fastdeconv.compat
>>> X, W = np.ones((1, 2, 3, 3)), np.ones((2, 4, 3, 3))
>>> fastdeconv.compat.onnx.conv_transpose(X, W, strides=[2, 2], pads=[1, 1, 0, 0],
...                                       explain=True)
'fastdeconv.conv_transpose(X, W, stride=(2, 2), padding=((1, 0), (1, 0)))'
>>> fastdeconv.compat.onnx.conv_transpose(X, W, strides=[2, 2], pads=[1, 1, 0, 0]).shape
(1, 4, 6, 6)

The text names the operands by the compat function's parameter names and shows only the
keywords that differ from fastdeconv's defaults; evaluated with ``numpy`` as ``np`` and
``fastdeconv`` imported, it gives the compat function's result.

Submodules: :mod:`fastdeconv.compat.onnx` (``Conv``, ``ConvTranspose``, ``Resize``,
``DepthToSpace``, ``MaxUnpool``), :mod:`fastdeconv.compat.tf` (``tf.nn.conv1d/2d/3d`` and
their ``_transpose``, ``tf.image.resize``, ``tf.nn.depth_to_space``),
:mod:`fastdeconv.compat.keras` (``keras.ops.conv``, ``conv_transpose``, ``UpSampling2D``) and
:mod:`fastdeconv.compat.jax` (``jax.lax.conv_general_dilated``, ``conv_transpose``). A submodule never imports its framework: the frameworks are
not needed to use these functions, only as oracles in the tests.
"""

from . import jax, keras, onnx, tf

__all__ = ["jax", "keras", "onnx", "tf"]
