"""True deconvolution: solve ``conv(x) = y`` for ``x`` (least squares, matrix-free).

The convolution (or transposed convolution) of a whole batch is wrapped as one
``scipy.sparse.linalg.LinearOperator`` whose products run the fast kernels and whose adjoint
products run the adjoint kernels (:mod:`fastdeconv._linear_operator`); SciPy's LSQR, LSMR or
CG do the rest.
"""

import numbers
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg

from ._formats import Layout
from ._geometry import ConvGeometry, resolve_padding
from ._linear_operator import linear_operator
from ._problem import conv_problem, conv_transpose_problem
from ._validation import as_array, as_int_tuple, check_int, normalize_tuple, result_dtype

__all__ = ["deconvolve", "DeconvolutionResult"]

METHODS = ("lsqr", "lsmr", "cg")

_STOP = {
    0: "x = x0 is a solution",
    1: "A x = y is solved to the tolerance",
    2: "the least-squares problem is solved to the tolerance",
    3: "the estimated condition number exceeds the limit (1e8)",
    4: "A x = y is solved to machine precision",
    5: "the least-squares problem is solved to machine precision",
    6: "the estimated condition number exceeds 1 / machine precision",
    7: "the iteration limit was reached",
}


@dataclass(frozen=True)
class DeconvolutionResult:
    """What :func:`fastdeconv.deconvolve` returns.

    Attributes
    ----------
    x : ndarray, float64
        The solution, with the shape of the operator's input.
    residual_norm : float
        :math:`\\lVert A x - y \\rVert_2` over the whole batch (computed after the solve).
    iterations : int
        Iterations of the solver (each one applies the operator and its adjoint once).
    converged : bool
        Whether the solver met its tolerance (``False`` on reaching ``maxiter`` or when
        LSQR / LSMR stop on an estimated condition number that is too large).
    method : str
        ``"lsqr"``, ``"lsmr"`` or ``"cg"``.
    message : str
        The solver's reason for stopping.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> w = np.array([[[1.0, 0.5]]])
    >>> y = fastdeconv.conv(np.array([[[1.0, 2.0, 3.0]]]), w, padding=1)
    >>> r = fastdeconv.deconvolve(y, w, padding=1)
    >>> r.x.round(6), r.converged, r.method
    (array([[[1., 2., 3.]]]), True, 'lsqr')
    """

    x: np.ndarray
    residual_norm: float
    iterations: int
    converged: bool
    method: str
    message: str


def _check_float(value, name, *, positive=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a finite {bound} number, got {value!r}")
    return value


def _x_shape(y, weight, *, stride, padding, dilation, groups, transpose):
    """The input shape of the operator that maps it to ``y``'s shape (smallest if several)."""
    ndim = weight.ndim - 2
    kernel = weight.shape[2:]
    spatial = y.shape[2:]
    stride_t = normalize_tuple(stride, ndim, "stride", min_value=1)
    dilation_t = normalize_tuple(dilation, ndim, "dilation", min_value=1)
    try:
        if transpose:
            # y = conv_transpose(x): x is what the forward conv makes of y's size
            pairs, _ = resolve_padding(padding, spatial, kernel, stride_t, dilation_t,
                                       transpose=True)
            size = ConvGeometry.for_conv(spatial, kernel, stride=stride_t, padding=pairs,
                                         dilation=dilation_t).output_size
            channels = weight.shape[0]
        else:
            # y = conv(x): the smallest x whose conv has y's size is conv_transpose's output
            size = ConvGeometry.for_conv_transpose(spatial, kernel, stride=stride_t,
                                                   padding=padding,
                                                   dilation=dilation_t).input_size
            channels = weight.shape[1] * groups
    except ValueError as exc:
        raise ValueError(
            f"no input shape of this operator gives y's shape {y.shape} ({exc}); pass x0 to "
            "set the shape of x"
        ) from None
    return (y.shape[0], channels) + tuple(size)


def _requested_shape(input_size, default, x0):
    requested = as_int_tuple(input_size, "input_size", min_value=1)
    ndim = len(default) - 2
    if len(requested) == ndim + 2:
        if requested[:2] != tuple(default[:2]):
            raise ValueError(f"input_size {requested} must have the batch and channels "
                             f"{tuple(default[:2])} of x")
        requested = requested[2:]
    if len(requested) != ndim:
        raise ValueError(f"input_size must have {ndim} spatial sizes (or {ndim + 2} entries "
                         f"with batch and channels), got {input_size!r}")
    shape = tuple(default[:2]) + requested
    if x0 is not None and x0.shape != shape:
        raise ValueError(f"x0 has shape {x0.shape} but input_size asks for {shape}")
    return shape


def deconvolve(y, weight, *, stride=1, padding=0, dilation=1, groups=1, transpose=False,
               damp=0.0, method="lsqr", tol=1e-10, maxiter=None, x0=None, input_size=None,
               data_format="channels_first", weight_format=None):
    r"""Undo a convolution: the least-squares :math:`x` with ``conv(x, weight, ...) == y``.

    This is deconvolution in the signal-processing sense, the inverse problem. It is *not*
    :func:`fastdeconv.conv_transpose` (often called "deconvolution" in deep learning), which
    applies :math:`C^T` and is no inverse: :math:`C^T C \ne I`.

    Parameters
    ----------
    y : array_like, shape (N, C_out, \*out_spatial)
        The observed output.
    weight : array_like
        The kernel of the forward operator, in its layout: ``(C_out, C_in / groups, *k)`` for
        :func:`fastdeconv.conv`, ``(C_in, C_out / groups, *k)`` with ``transpose=True``.
    stride, padding, dilation, groups
        The forward operator's parameters (zero padding; string paddings are accepted).
    transpose : bool, default False
        The forward operator is :func:`fastdeconv.conv_transpose` instead of
        :func:`fastdeconv.conv`.
    damp : float, default 0.0
        Tikhonov regularisation :math:`\lambda` (see Notes); use it when the operator is
        rank-deficient or ``y`` is noisy.
    method : {"lsqr", "lsmr", "cg"}, default "lsqr"
        :func:`scipy.sparse.linalg.lsqr`, :func:`~scipy.sparse.linalg.lsmr`, or
        :func:`~scipy.sparse.linalg.cg` on the normal equations.
    tol : float, default 1e-10
        Stopping tolerance: ``atol`` and ``btol`` of LSQR / LSMR, ``rtol`` of CG.
    maxiter : int, optional
        Iteration limit; by default twice the number of unknowns for LSQR and LSMR and ten
        times for CG (SciPy's defaults, except LSMR's, which stops at the number of unknowns
        and so often just short of a tight tolerance).
    x0 : array_like, optional
        Starting point (default zero). With ``damp > 0`` the penalty is
        :math:`\lambda^2 \lVert x - x_0 \rVert^2` (SciPy's convention).
    input_size : sequence of int, optional
        Spatial shape of ``x`` (or its full shape). A strided convolution maps up to
        ``stride`` input sizes to the same output size, as for ``output_size`` of
        :func:`fastdeconv.conv_transpose`; the default is the smallest, the size that
        ``conv_transpose(y, weight, ...)`` has, or the shape of ``x0`` when given.
    data_format : str, default "channels_first"
        Layout of ``y``, ``x0`` and the solution: ``"channels_first"`` or
        ``"channels_last"`` (or ``"NCHW"``, ``"NHWC"``, ... checked against the rank), as
        for :func:`fastdeconv.conv`.
    weight_format : str, optional
        Layout of ``weight`` (letters ``O``, ``I`` and ``W`` / ``HW`` / ``DHW``), as for
        :func:`fastdeconv.conv` or, with ``transpose=True``, :func:`fastdeconv.conv_transpose`.

    Returns
    -------
    DeconvolutionResult
        ``x`` (float64), ``residual_norm`` :math:`\lVert A x - y\rVert`, ``iterations``,
        ``converged``, ``method`` and the solver's ``message``.

    Raises
    ------
    ValueError
        For an unknown method, negative ``damp``, a non-positive ``tol`` or ``maxiter``,
        shapes that do not fit, or parameters the operator rejects.
    TypeError
        For complex or non-numeric arrays and parameters of the wrong type.

    See Also
    --------
    fastdeconv.sparse.linear_operator : the operator as a ``LinearOperator``.

    Notes
    -----
    With :math:`A` the operator on the whole batch (block diagonal over the samples), it
    solves

    .. math::

        \min_x \; \lVert A x - y \rVert_2^2 + \lambda^2 \lVert x \rVert_2^2

    matrix-free: every iteration applies :math:`A` and :math:`A^T` once with the fast
    kernels (one batched call each). When :math:`A` has full column rank and
    :math:`\lambda = 0` the minimiser is unique and, for an exact ``y = A x``, equal to
    :math:`x`; otherwise LSQR and LSMR started from zero converge to the minimum-norm
    least-squares solution. A strided convolution with fewer output values than inputs
    (for example one output channel per input channel) is never of full column rank: some
    of :math:`x` is not in ``y`` at all, and ``damp`` chooses what is filled in.

    Examples
    --------
    A stride-2 convolution with 4 output channels per input channel measures
    :math:`4 \cdot 6 \cdot 6 = 144` values of :math:`11 \cdot 11 = 121` unknowns and has
    full column rank: ``deconvolve`` gets the input back, ``conv_transpose`` does not.

    >>> import numpy as np
    >>> import fastdeconv
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 1, 11, 11))
    >>> w = rng.standard_normal((4, 1, 3, 3))
    >>> y = fastdeconv.conv(x, w, stride=2, padding=1)
    >>> y.shape
    (2, 4, 6, 6)
    >>> result = fastdeconv.deconvolve(y, w, stride=2, padding=1)
    >>> result.converged, result.x.shape
    (True, (2, 1, 11, 11))
    >>> bool(np.abs(result.x - x).max() < 1e-6)
    True
    >>> xt = fastdeconv.conv_transpose(y, w, stride=2, padding=1)
    >>> bool(np.abs(xt - x).max() < 1e-1)
    False

    The input sizes 11 and 12 both give 6 outputs here; ``input_size=(12, 12)`` (or an
    ``x0`` of that shape) asks for the larger one. A square system (144 values of 144
    unknowns) is typically far worse conditioned; more output channels or less stride help.
    """
    y = as_array(y, "y")
    weight = as_array(weight, "weight")
    result_dtype((y, "y"), (weight, "weight"))          # dtype checks (complex, object, ...)
    if not isinstance(transpose, (bool, np.bool_)):
        raise TypeError(f"transpose must be True or False, got {transpose!r}")
    spatial = weight.ndim - 2 if weight.ndim >= 3 else None
    layout = Layout.resolve(data_format, spatial, weight_format if spatial else None,
                            transpose=bool(transpose))
    y, weight = layout.data_in(y), layout.weight_in(weight)
    y = np.ascontiguousarray(y, dtype=np.float64)
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    if weight.ndim < 3:
        raise ValueError(
            f"weight must have at least 3 dimensions (channels, channels / groups, "
            f"*kernel_size), got shape {weight.shape}"
        )
    if y.ndim != weight.ndim:
        raise ValueError(
            f"y must have {weight.ndim} dimensions (N, C, *spatial) to match a weight with "
            f"{weight.ndim - 2} spatial dimensions, got shape {y.shape}"
        )
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    damp = _check_float(damp, "damp")
    tol = _check_float(tol, "tol", positive=True)
    if maxiter is not None:
        maxiter = check_int(maxiter, "maxiter", min_value=1)
    groups = check_int(groups, "groups", min_value=1)

    if x0 is not None:
        x0 = as_array(x0, "x0")
        result_dtype((x0, "x0"))
        x0 = np.ascontiguousarray(layout.data_in(x0), dtype=np.float64)
        if x0.ndim != y.ndim or x0.shape[0] != y.shape[0]:
            raise ValueError(
                f"x0 must have shape (N, C, *spatial) with N = {y.shape[0]} like y, got "
                f"{x0.shape}"
            )
        x_shape = x0.shape
    else:
        x_shape = _x_shape(y, weight, stride=stride, padding=padding, dilation=dilation,
                           groups=groups, transpose=bool(transpose))
    if input_size is not None:
        if layout.channels_last and np.ndim(input_size) == 1 and len(input_size) == y.ndim:
            input_size = layout.shape_in(tuple(input_size))
        x_shape = _requested_shape(input_size, x_shape, x0)

    params = dict(weight=weight, stride=stride, padding=padding, dilation=dilation,
                  groups=groups)
    if transpose:
        problem = conv_transpose_problem(x_shape, weight.shape, stride=stride, padding=padding,
                                         dilation=dilation, groups=groups,
                                         output_size=y.shape[2:], x_name="x")
        produced = problem.forward_input_shape
        params["output_size"] = y.shape[2:]
        sample = linear_operator("conv_transpose", x_shape[1:], **params)
    else:
        problem = conv_problem(x_shape, weight.shape, stride=stride, padding=padding,
                               dilation=dilation, groups=groups, x_name="x")
        produced = problem.forward_output_shape
        sample = linear_operator("conv", x_shape[1:], **params)
    if tuple(produced) != y.shape:
        if input_size is not None:
            source = f"input_size {tuple(x_shape[2:])} asks for x of shape {tuple(x_shape)}"
        elif x0 is not None:
            source = f"x0 has shape {tuple(x_shape)}"
        else:
            source = f"x has shape {tuple(x_shape)}"
        raise ValueError(
            f"{source}, which the operator maps to {tuple(produced)}, not to y's shape "
            f"{y.shape}"
        )

    n = y.shape[0]
    n_in, n_out = sample.shape[1], sample.shape[0]
    if n == 0:  # an empty batch: nothing to solve
        return DeconvolutionResult(layout.data_out(np.zeros(x_shape)), 0.0, 0, True, method,
                                   "empty batch")

    def matvec(v):
        return sample.matmat(np.reshape(v, (n, n_in)).T).T.ravel()

    def rmatvec(u):
        return sample.rmatmat(np.reshape(u, (n, n_out)).T).T.ravel()

    A = scipy.sparse.linalg.LinearOperator((n * n_out, n * n_in), matvec=matvec,
                                           rmatvec=rmatvec, dtype=np.float64)
    b = y.ravel()
    start = None if x0 is None else x0.ravel()

    if method == "lsqr":
        out = scipy.sparse.linalg.lsqr(A, b, damp=damp, atol=tol, btol=tol, iter_lim=maxiter,
                                       x0=start)
        solution, istop, iterations = out[0], int(out[1]), int(out[2])
        converged, message = istop in (0, 1, 2, 4, 5), _STOP.get(istop, f"istop={istop}")
    elif method == "lsmr":
        out = scipy.sparse.linalg.lsmr(A, b, damp=damp, atol=tol, btol=tol,
                                       maxiter=2 * n * n_in if maxiter is None else maxiter,
                                       x0=start)
        solution, istop, iterations = out[0], int(out[1]), int(out[2])
        converged, message = istop in (0, 1, 2, 4, 5), _STOP.get(istop, f"istop={istop}")
    else:
        count = [0]

        def normal(v):
            return A.rmatvec(A.matvec(v)) + damp ** 2 * v

        N = scipy.sparse.linalg.LinearOperator((n * n_in, n * n_in), matvec=normal,
                                               rmatvec=normal, dtype=np.float64)
        rhs = A.rmatvec(b)
        if start is not None and damp:
            rhs = rhs + damp ** 2 * start
        solution, info = scipy.sparse.linalg.cg(
            N, rhs, x0=start, rtol=tol, atol=0.0, maxiter=maxiter,
            callback=lambda _: count.__setitem__(0, count[0] + 1),
        )
        iterations, converged = count[0], info == 0
        message = ("the normal equations are solved to the tolerance" if info == 0 else
                   "the iteration limit was reached" if info > 0 else "breakdown")
    residual = float(np.linalg.norm(A.matvec(solution) - b))
    return DeconvolutionResult(layout.data_out(solution.reshape(x_shape)), residual, iterations,
                               bool(converged), method, message)
