"""Convolution and transposed convolution: validation, dtype policy, dispatch to the kernels.

Six public entry points rest on three compiled drivers (Chainer's duality)::

    public op                 forward            grad w.r.t. input     grad w.r.t. weight
    conv                      _forward           _backward_input       _backward_weight(x, gy)
    conv_transpose            _backward_input    _forward              _backward_weight(gy, x)

Every function here validates, picks the dtype, makes arrays C-contiguous, resolves the
geometry (:class:`fastdeconv._geometry.ConvGeometry`), allocates outputs and workspaces, and
only then calls compiled code.
"""

import math
import numpy as np

from ._algorithms import BLAS_INT_MAX, plan, run_pass
from ._docstrings import docfiller
from . import _channels_last as channels_last
from ._formats import Layout, contiguous_channels_first
from ._geometry import source_index
from ._problem import ConvProblem, conv_problem, conv_transpose_problem
from ._validation import as_array, check_workspace, result_dtype

__all__ = [
    "conv",
    "conv_transpose",
    "conv_backward",
    "conv_transpose_backward",
    "workspace_bytes",
]

def workspace_bytes(op, x_shape, weight_shape, *, dtype=np.float32, **params):
    """Bytes of workspace one call of ``op`` allocates besides its inputs and outputs.

    ``op`` is ``"conv"``, ``"conv_transpose"``, ``"conv_backward"`` or
    ``"conv_transpose_backward"``; ``params`` are that operator's keywords. The column tiles
    are bounded by ``Budget.workspace_bytes`` (:mod:`fastdeconv._algorithms`) whatever the
    batch size (the ``space_to_depth`` algorithm adds its rearranged part of the batch, at
    most ``Budget.space_to_depth_bytes``; weight-sized temporaries are not
    counted); for the backward functions this is the largest of their passes.
    """
    if op in ("conv", "conv_backward"):
        problem = conv_problem(x_shape, weight_shape, **params)
        passes = ("forward",) if op == "conv" else ("backward_input", "backward_weight")
    elif op in ("conv_transpose", "conv_transpose_backward"):
        problem = conv_transpose_problem(x_shape, weight_shape, **params)
        passes = ("backward_input",) if op == "conv_transpose" else ("forward", "backward_weight")
    else:
        raise ValueError(
            "op must be 'conv', 'conv_transpose', 'conv_backward' or "
            f"'conv_transpose_backward', got {op!r}"
        )
    itemsize = np.dtype(dtype).itemsize
    return max(plan(p, problem, itemsize).workspace_bytes(itemsize) for p in passes)


def _forward(x, weight, problem):
    """y = conv(x) on an input padded for every mode but zeros (which the kernel handles)."""
    return run_pass("forward", x, weight, problem)


def _backward_input(grad_y, weight, problem):
    """grad_x = conv^T(grad_y): the transposed convolution."""
    return run_pass("backward_input", grad_y, weight, problem)


def _backward_weight(x, grad_y, problem):
    """grad_w = sum over samples of grad_y @ im2col(x)^T, per group."""
    return run_pass("backward_weight", x, grad_y, problem)


# ---------------------------------------------------------------- padding modes (reflect, ...)
def _mode_indices(problem):
    g = problem.geometry
    return [
        source_index(np.arange(-before, n + after), n, problem.padding_mode)
        for n, (before, after) in zip(g.input_size, g.padding)
    ]


def _padded_problem(problem):
    """The problem on an explicitly padded input (padding modes other than zeros)."""
    if problem.padding_mode == "zeros":
        return problem
    return ConvProblem(problem.geometry.padded(), problem.batch, problem.c_in, problem.c_out,
                       problem.groups)


def _pad_input(x, problem):
    """Pad x explicitly for reflect/replicate/circular (zero padding is the kernels' job)."""
    if problem.padding_mode == "zeros":
        return x
    for dim, index in enumerate(_mode_indices(problem)):
        x = x.take(index, axis=2 + dim)
    return np.ascontiguousarray(x)


def _fold_padding(grad_padded, problem):
    """Adjoint of :func:`_pad_input`: add the gradient of every padded cell to its source."""
    if problem.padding_mode == "zeros":
        return grad_padded
    grad = grad_padded
    for dim, index in enumerate(_mode_indices(problem)):
        axis = 2 + dim
        shape = list(grad.shape)
        shape[axis] = problem.geometry.input_size[dim]
        folded = np.zeros(shape, dtype=grad.dtype)
        np.add.at(np.moveaxis(folded, axis, 0), index, np.moveaxis(grad, axis, 0))
        grad = folded
    return grad


def _check_positions(problem, transpose, dtype):
    """ValueError naming x or the output when one sample has too many spatial positions.

    An output too large for memory anyway gets the MemoryError (with its size) instead. An
    empty batch runs no kernel and has no such limit.
    """
    if problem.batch == 0:
        return
    g = problem.geometry
    sides = {"x": _padded_problem(problem).geometry.input_numel, "output": g.output_numel}
    out_shape = problem.forward_output_shape
    if transpose:  # the forward convolution's output is conv_transpose's x
        sides = {"x": sides["output"], "output": sides["x"]}
        out_shape = problem.forward_input_shape
    for name, positions in sides.items():
        # the kernels' GEMMs take 32-bit BLAS dimensions: one sample's spatial positions
        # (the leading dimension of x and of the output) must fit
        if positions > BLAS_INT_MAX:
            check_workspace(math.prod(out_shape) * np.dtype(dtype).itemsize,
                            f"output of shape {out_shape}")
            who = ("x has" if name == "x" else f"the output of shape {out_shape} (from x, "
                   f"weight, stride, padding and dilation) would have")
            raise ValueError(
                f"{who} {positions} spatial "
                f"positions per sample{' (padded)' if name == 'x' else ''}; the compiled "
                f"kernels use 32-bit BLAS dimensions and support at most 2**31 - 1 (the "
                f"sparse matrices and shape helpers have no such limit)")


# ------------------------------------------------------------------------------- public API
def _operands(named, optional=("bias",), *, data_format="channels_first", weight_format=None,
              transpose=False, contiguous=True):
    """Convert (value, name) pairs to arrays of one compute dtype in the canonical layout.

    None stays None for the ``optional`` names and is a TypeError for the others. The data
    arrays (``x``, ``grad_output``) in ``data_format`` and the weight in ``weight_format``
    become canonical views first, so that a channels-last or HWIO operand costs one
    transposing copy (the one that makes it C-contiguous) and no more.

    Returns
    -------
    dtype, layout, arrays
        The compute dtype, the resolved :class:`fastdeconv._formats.Layout` and the arrays
        (C-contiguous of the compute dtype, or the canonical views unless ``contiguous``:
        then :func:`_compute_arrays` converts them once the path is chosen).
    """
    for value, name in named:
        if value is None and name not in optional:
            raise TypeError(f"{name} must be an array, got None")
    arrays = [(None if v is None else as_array(v, name), name) for v, name in named]
    dtype = result_dtype(*arrays)
    weight = dict((name, a) for a, name in arrays)["weight"]
    spatial = weight.ndim - 2 if weight.ndim >= 3 else None
    layout = Layout.resolve(data_format, spatial,
                            weight_format if spatial is not None else None, transpose=transpose)
    views = [layout.data_in(a) if name in ("x", "grad_output")
             else layout.weight_in(a) if name == "weight" else a for a, name in arrays]
    return dtype, layout, _compute_arrays(dtype, *views) if contiguous else views


def _compute_arrays(dtype, *arrays):
    return [None if a is None else contiguous_channels_first(a, dtype) for a in arrays]


def _output_size_in(output_size, layout, ndim):
    """A full ``output_size`` shape in the caller's layout, channels first (spatial sizes and
    anything invalid pass unchanged, for the geometry to judge)."""
    if output_size is None or not layout.channels_last:
        return output_size
    try:
        full = len(output_size) == ndim
    except TypeError:
        return output_size
    return layout.shape_in(tuple(output_size)) if full else output_size


def _check_bias(bias, channels):
    if bias is not None and bias.shape != (channels,):
        raise ValueError(f"bias must have shape ({channels},) (one per output channel), "
                         f"got shape {bias.shape}")


def _check_grad_output(grad_output, expected, layout):
    if grad_output.shape != tuple(expected):
        raise ValueError(
            f"grad_output must have the operator's output shape "
            f"{layout.shape_out(expected)}, got {layout.shape_out(grad_output.shape)}"
        )


def _add_bias(y, bias):
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


_GRADS = ("x", "weight", "bias")


def _check_grads(grads):
    if isinstance(grads, str):
        grads = (grads,)
    try:
        wanted = set(grads)
    except TypeError:
        raise TypeError(f"grads must be a sequence drawn from {_GRADS}, got {grads!r}") from None
    if not wanted or not wanted <= set(_GRADS):
        raise ValueError(f"grads must be a non-empty sequence drawn from {_GRADS}, got {grads!r}")
    return wanted


def _backward_operands(grad_output, x, weight, grads, transpose, make_problem, data_format,
                       weight_format):
    """The operands of a backward function in one compute dtype and the canonical layout,
    its validated problem (``make_problem(x_shape, weight_shape)``; ``transpose`` for
    conv_transpose's), the set of wanted gradients and the caller's layout, checked in that
    order."""
    dtype, layout, (grad_output, x, weight) = _operands(
        [(grad_output, "grad_output"), (x, "x"), (weight, "weight")],
        data_format=data_format, weight_format=weight_format, transpose=transpose,
        contiguous=False)
    problem = make_problem(x.shape, weight.shape, layout)
    _check_positions(problem, transpose, dtype)
    _check_grad_output(grad_output, problem.forward_input_shape if transpose
                       else problem.forward_output_shape, layout)
    wanted = _check_grads(grads)
    if channels_last.is_native(problem, layout):  # the caller's channels-last arrays
        grad_output, x = np.moveaxis(grad_output, 1, -1), np.moveaxis(x, 1, -1)
    grad_output, x, weight = _compute_arrays(dtype, grad_output, x, weight)
    return grad_output, x, weight, problem, wanted, layout


def _bias_grad(grad_output):
    # NaN and inf propagate silently, as in the compiled kernels (no RuntimeWarning from
    # inf + -inf here but not there)
    with np.errstate(invalid="ignore", over="ignore"):
        return grad_output.sum(axis=(0,) + tuple(range(2, grad_output.ndim)))



@docfiller
def conv(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
         padding_mode="zeros", data_format="channels_first", weight_format=None):
    r"""N-d convolution (cross-correlation, as in every deep-learning framework).

    Parameters
    ----------
    x : array_like, shape (N, C_in, \*spatial)
        Input batch with 1 or more spatial dimensions.
    weight : array_like, shape (C_out, C_in / groups, \*kernel_size)
        Kernels, PyTorch's ``Conv{1,2,3}d.weight`` layout.
    bias : array_like, shape (C_out,), optional
        Added to every output position of each channel.
    %(stride)s
    %(padding_conv)s
    %(dilation)s
    %(groups)s
    %(padding_mode)s
    %(data_format)s
    %(weight_format_conv)s

    Returns
    -------
    y : ndarray, shape (N, C_out, \*out_spatial)
        ``float32`` or ``float64``, see Notes; ``(N, *out_spatial, C_out)`` channels-last.

    Raises
    ------
    ValueError
        For inconsistent shapes, channel counts or groups, non-positive stride or dilation,
        negative padding, unknown padding strings or modes, or a kernel larger than the
        padded input; the message names the parameter.
    TypeError
        For complex or non-numeric inputs and non-integer parameters.

    See Also
    --------
    conv_transpose : the adjoint (transpose) of this operator.
    conv_backward : gradients with respect to ``x``, ``weight`` and ``bias``.
    fastdeconv.sparse.conv_matrix : the explicit sparse matrix of this operator.

    Notes
    -----
    For output position :math:`o` and kernel tap :math:`t` (per spatial dimension),

    .. math::

        y[n, c_o, o] = b[c_o] + \sum_{c_i \in g(c_o)} \sum_t w[c_o, c_i, t]\,
                       x_{pad}[n, c_i, o s + t d]

    and each spatial output size is

    .. math::

        o = \left\lfloor \frac{i + p_{before} + p_{after} - d (k - 1) - 1}{s} \right\rfloor + 1

    %(dtypes)s

    The dispatcher picks the algorithm from the geometry: im2col in cache-sized tiles
    (several small samples or a range of output positions of one sample) and one BLAS GEMM
    per group and tile, or, for 2-d 3x3 kernels with stride 1 and enough channels and
    tiles, Winograd's F(4x4, 3x3) (4x fewer multiplications, under a larger rounding-error
    bound derived from its transforms); a 2-d kernel of 2 or 3 times the stride (DCGAN's 4x4,
    stride 2) runs as the stride-1 Winograd convolution of the space-to-depth input. The
    user guide's performance page gives the rules, the error bound and measurements.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> x = np.ones((1, 2, 5, 7))
    >>> w = np.ones((4, 2, 3, 3))
    >>> y = fastdeconv.conv(x, w, stride=2, padding=1)
    >>> y.shape == (1, 4, (5 + 2 - 3) // 2 + 1, (7 + 2 - 3) // 2 + 1)
    True
    >>> float(y[0, 0, 1, 1])  # 2 channels x 9 taps, all inside the input
    18.0

    TensorFlow's and Keras's layouts: channels-last data, an ``(kH, kW, C_in, C_out)`` kernel:

    >>> x_nhwc, w_hwio = np.ones((1, 5, 7, 2)), np.ones((3, 3, 2, 4))
    >>> fastdeconv.conv(x_nhwc, w_hwio, padding="same", data_format="channels_last",
    ...                 weight_format="HWIO").shape
    (1, 5, 7, 4)
    """
    dtype, layout, (x, weight, bias) = _operands(
        [(x, "x"), (weight, "weight"), (bias, "bias")], data_format=data_format,
        weight_format=weight_format, contiguous=False)
    problem = conv_problem(x.shape, weight.shape, stride=stride, padding=padding,
                           dilation=dilation, groups=groups, padding_mode=padding_mode)
    _check_positions(problem, False, dtype)
    _check_bias(bias, problem.c_out)
    if channels_last.is_native(problem, layout):
        x, weight, bias = _compute_arrays(dtype, np.moveaxis(x, 1, -1), weight, bias)
        return channels_last.pointwise_product(x, weight, bias, transpose_weight=True)
    x, weight, bias = _compute_arrays(dtype, x, weight, bias)
    y = _forward(_pad_input(x, problem), weight, _padded_problem(problem))
    return layout.data_out(_add_bias(y, bias))


@docfiller
def conv_transpose(x, weight, bias=None, *, stride=1, padding=0, output_padding=0,
                   dilation=1, groups=1, output_size=None, data_format="channels_first",
                   weight_format=None):
    r"""N-d transposed convolution: the adjoint of :func:`conv` ("deconvolution" in DL).

    ``conv_transpose(y, w)`` is the gradient of ``conv(x, w)`` with respect to ``x``: for the
    convolution matrix :math:`C` (``y = C x``) it computes :math:`C^T y`. It is *not* the
    inverse of a convolution, which would solve :math:`C x = y`.

    Parameters
    ----------
    x : array_like, shape (N, C_in, \*spatial)
        Input batch.
    weight : array_like, shape (C_in, C_out / groups, \*kernel_size)
        Kernels, PyTorch's ``ConvTranspose{1,2,3}d.weight`` layout (the same array as the
        weight of the forward convolution this is the transpose of).
    bias : array_like, shape (C_out,), optional
    %(stride)s
    %(padding_transpose)s
    %(output_padding)s
    %(dilation)s
    %(groups)s
    %(output_size)s
    %(data_format)s
    %(weight_format_transpose)s

    Returns
    -------
    y : ndarray, shape (N, C_out, \*out_spatial)
        ``(N, *out_spatial, C_out)`` channels-last.

    Raises
    ------
    ValueError
        For inconsistent shapes, channels or groups, bad stride/padding/dilation,
        ``output_padding >= max(stride, dilation)``, an unreachable ``output_size`` or an
        empty output; the message names the parameter.
    TypeError
        For complex or non-numeric inputs and non-integer parameters.

    See Also
    --------
    conv : the forward convolution.
    conv_transpose_backward : gradients with respect to ``x``, ``weight`` and ``bias``.
    fastdeconv.sparse.conv_transpose_matrix : the explicit sparse matrix.

    Notes
    -----
    Each input position :math:`j` scatters the kernel into the output positions
    :math:`j s - p_{before} + t d`; each spatial output size is

    .. math::

        o = (i - 1) s - p_{before} - p_{after} + d (k - 1) + 1 + p_{out}

    %(dtypes)s

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> x = np.ones((1, 3, 4, 4))
    >>> w = np.ones((3, 2, 4, 4))   # (C_in, C_out, kH, kW)
    >>> y = fastdeconv.conv_transpose(x, w, stride=2, padding=1)
    >>> y.shape == (1, 2, (4 - 1) * 2 - 2 + 4, (4 - 1) * 2 - 2 + 4)
    True

    It is the adjoint of :func:`conv`: :math:`\langle C u, v \rangle = \langle u, C^T v \rangle`.

    >>> rng = np.random.default_rng(0)
    >>> u, v = rng.standard_normal((1, 2, 8, 8)), rng.standard_normal((1, 3, 4, 4))
    >>> lhs = np.vdot(fastdeconv.conv(u, w, stride=2, padding=1), v)
    >>> rhs = np.vdot(u, fastdeconv.conv_transpose(v, w, stride=2, padding=1))
    >>> bool(np.isclose(lhs, rhs))
    True

    Keras's ``Conv2DTranspose``: channels-last data, an ``(kH, kW, C_out, C_in)`` kernel:

    >>> x_nhwc, w_hwoi = np.ones((1, 4, 4, 3)), np.ones((4, 4, 2, 3))
    >>> fastdeconv.conv_transpose(x_nhwc, w_hwoi, stride=2, padding="same",
    ...                           data_format="channels_last", weight_format="HWOI").shape
    (1, 8, 8, 2)
    """
    dtype, layout, (x, weight, bias) = _operands(
        [(x, "x"), (weight, "weight"), (bias, "bias")], data_format=data_format,
        weight_format=weight_format, transpose=True, contiguous=False)
    problem = conv_transpose_problem(
        x.shape, weight.shape, stride=stride, padding=padding, output_padding=output_padding,
        dilation=dilation, groups=groups,
        output_size=_output_size_in(output_size, layout, x.ndim),
    )
    _check_positions(problem, True, dtype)
    _check_bias(bias, problem.c_in)
    if channels_last.is_native(problem, layout):
        x, weight, bias = _compute_arrays(dtype, np.moveaxis(x, 1, -1), weight, bias)
        return channels_last.pointwise_product(x, weight, bias, transpose_weight=False)
    x, weight, bias = _compute_arrays(dtype, x, weight, bias)
    return layout.data_out(_add_bias(_backward_input(x, weight, problem), bias))


@docfiller
def conv_backward(grad_output, x, weight, *, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros", grads=("x", "weight", "bias"),
                  data_format="channels_first", weight_format=None):
    r"""Gradients of :func:`conv` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, \*out_spatial)
        Gradient of the loss with respect to ``conv(x, weight, ...)``.
    x : array_like, shape (N, C_in, \*spatial)
        The convolution's input.
    weight : array_like, shape (C_out, C_in / groups, \*kernel_size)
    %(stride)s
    %(padding_conv)s
    %(dilation)s
    %(groups)s
    %(padding_mode)s
    %(grads)s
    %(data_format)s
    %(weight_format_conv)s

    Returns
    -------
    grad_x : ndarray, shape (N, C_in, \*spatial)
        ``conv_transpose`` of ``grad_output``; with a non-zero ``padding_mode`` the gradient
        that lands in the padded border is added back to the input cells it was copied from.
    grad_weight : ndarray, shape of ``weight``
    grad_bias : ndarray, shape (C_out,)
        ``grad_output`` summed over the batch and spatial dimensions.

    Each is ``None`` when it is not in ``grads``.

    See Also
    --------
    conv : the operator whose gradients these are.
    conv_transpose_backward : the gradients of its adjoint.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal((2, 3, 6)), rng.standard_normal((4, 3, 3))
    >>> gy = np.ones((2, 4, 6))
    >>> gx, gw, gb = fastdeconv.conv_backward(gy, x, w, padding=1, padding_mode="reflect")
    >>> gx.shape, gw.shape, gb.shape
    ((2, 3, 6), (4, 3, 3), (4,))
    """
    grad_output, x, weight, problem, wanted, layout = _backward_operands(
        grad_output, x, weight, grads, False,
        lambda x_shape, weight_shape, layout: conv_problem(
            x_shape, weight_shape, stride=stride, padding=padding, dilation=dilation,
            groups=groups, padding_mode=padding_mode), data_format, weight_format)
    if channels_last.is_native(problem, layout):
        grad_x, grad_weight, grad_bias = channels_last.pointwise_backward(
            grad_output, x, weight, wanted, transpose=False)
        return grad_x, layout.weight_out(grad_weight), grad_bias
    padded = _padded_problem(problem)
    grad_x = (_fold_padding(_backward_input(grad_output, weight, padded), problem)
              if "x" in wanted else None)
    grad_weight = (_backward_weight(_pad_input(x, problem), grad_output, padded)
                   if "weight" in wanted else None)
    return (layout.data_out(grad_x), layout.weight_out(grad_weight),
            _bias_grad(grad_output) if "bias" in wanted else None)


@docfiller
def conv_transpose_backward(grad_output, x, weight, *, stride=1, padding=0, output_padding=0,
                            dilation=1, groups=1, output_size=None, grads=("x", "weight", "bias"),
                            data_format="channels_first", weight_format=None):
    r"""Gradients of :func:`conv_transpose` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, \*out_spatial)
        Gradient of the loss with respect to ``conv_transpose(x, weight, ...)``, whose
        shape it has.
    x : array_like, shape (N, C_in, \*spatial)
        The transposed convolution's input.
    weight : array_like, shape (C_in, C_out / groups, \*kernel_size)
        Its kernels, PyTorch's ``ConvTranspose{1,2,3}d.weight`` layout.
    %(stride)s
    %(padding_transpose)s
    %(output_padding)s
    %(dilation)s
    %(groups)s
    %(output_size)s
    %(grads)s
    %(data_format)s
    %(weight_format_transpose)s

    Returns
    -------
    grad_x : ndarray, shape (N, C_in, \*spatial)
        ``conv(grad_output, weight, ...)``: the forward convolution is the adjoint.
    grad_weight : ndarray, shape of ``weight``
    grad_bias : ndarray, shape (C_out,)

    Each is ``None`` when it is not in ``grads``.

    See Also
    --------
    conv_transpose : the operator whose gradients these are.
    conv_backward : the gradients of its adjoint (whose ``grad_x`` is this operator's
        output).

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> x, w = np.ones((1, 4, 3, 3)), np.ones((4, 2, 2, 2))
    >>> gy = np.ones((1, 2, 6, 6))
    >>> gx, gw, gb = fastdeconv.conv_transpose_backward(gy, x, w, stride=2)
    >>> float(gx[0, 0, 0, 0]), float(gw[0, 0, 0, 0]), gb.tolist()
    (8.0, 9.0, [36.0, 36.0])
    """
    grad_output, x, weight, problem, wanted, layout = _backward_operands(
        grad_output, x, weight, grads, True,
        lambda x_shape, weight_shape, layout: conv_transpose_problem(
            x_shape, weight_shape, stride=stride, padding=padding,
            output_padding=output_padding, dilation=dilation, groups=groups,
            output_size=_output_size_in(output_size, layout, len(x_shape))),
        data_format, weight_format)
    if channels_last.is_native(problem, layout):
        grad_x, grad_weight, grad_bias = channels_last.pointwise_backward(
            grad_output, x, weight, wanted, transpose=True)
        return grad_x, layout.weight_out(grad_weight), grad_bias
    grad_x = _forward(grad_output, weight, problem) if "x" in wanted else None
    grad_weight = _backward_weight(grad_output, x, problem) if "weight" in wanted else None
    return (layout.data_out(grad_x), layout.weight_out(grad_weight),
            _bias_grad(grad_output) if "bias" in wanted else None)
