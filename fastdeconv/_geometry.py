"""Geometry of N-d convolution: the one place where its index arithmetic lives.

A convolution ``y = conv(x)`` over ``ndim`` spatial dimensions reads, for output position
``o`` and kernel tap ``t`` along one dimension, the input position::

    i = o * stride - pad_before + t * dilation            (1)

and treats ``i`` outside ``[0, input_size)`` as zero (``padding_mode="zeros"``) or maps it back
inside (reflect / replicate / circular). Its transpose ``conv_transpose`` scatters along the same
relation (1) in the other direction. :class:`ConvGeometry` holds the sizes and parameters of
(1) for every dimension; the Cython kernels, the sparse matrices and the shape helpers all take
one and never redo this arithmetic on their own.

Conventions (per spatial dimension, ``k_eff = dilation * (kernel_size - 1) + 1``)::

    conv:            out = floor((in + pad_before + pad_after - k_eff) / stride) + 1
    conv_transpose:  out = (in - 1) * stride - pad_before - pad_after + k_eff + output_padding

A transposed convolution with geometry ``g`` maps arrays of spatial size ``g.output_size`` to
``g.input_size``: ``input_size`` and ``output_size`` always name the sides of the underlying
*forward* convolution.
"""

import itertools
from dataclasses import dataclass
from math import prod

import numpy as np

from ._validation import check_int, normalize_tuple

__all__ = [
    "ConvGeometry",
    "PADDING_MODES",
    "PADDING_STRINGS",
    "resolve_padding",
    "source_index",
]

PADDING_STRINGS = ("valid", "same", "same_lower", "full")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _effective_kernel(kernel_size, dilation):
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel_size, dilation))


def _parse_explicit_padding(padding, ndim):
    """int | ints per dim | (before, after) pairs per dim -> tuple of pairs."""
    message = (
        f"padding must be an int, a tuple of {ndim} ints, a tuple of {ndim} (before, after) "
        f"pairs, or one of {PADDING_STRINGS}, got {padding!r}"
    )
    if isinstance(padding, np.ndarray):
        padding = padding.tolist()
    if isinstance(padding, (list, tuple)) and len(padding) > 0 and all(
        isinstance(p, (list, tuple, np.ndarray)) for p in padding
    ):
        if len(padding) != ndim:
            raise ValueError(f"{message} (it has {len(padding)} pairs)")
        pairs = []
        for pair in padding:
            pair = tuple(pair.tolist() if isinstance(pair, np.ndarray) else pair)
            if len(pair) != 2:
                raise ValueError(f"{message} (pair {pair!r} does not have 2 entries)")
            pairs.append(tuple(check_padding_value(v, padding) for v in pair))
        return tuple(pairs)
    try:
        per_dim = normalize_tuple(padding, ndim, "padding")
    except TypeError:
        raise TypeError(message) from None
    except ValueError:
        if ndim == 1 and isinstance(padding, (list, tuple)) and len(padding) == 2:
            message += f"; for asymmetric padding of one dimension write ({tuple(padding)},)"
        raise ValueError(message) from None
    return tuple((check_padding_value(p, padding),) * 2 for p in per_dim)


def check_padding_value(value, padding):
    try:
        value = check_int(value, "padding")
    except TypeError:
        raise TypeError(f"padding values must be ints, got {padding!r}") from None
    if value < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return value


def resolve_padding(padding, input_size, kernel_size, stride, dilation, *, transpose):
    """Turn the user's ``padding`` into ``(before, after)`` pairs and an implied output padding.

    Parameters
    ----------
    padding : int, sequence, or str
        As accepted by :func:`fastdeconv.conv` / :func:`fastdeconv.conv_transpose`.
    input_size : tuple of int
        Spatial size of the operator's input (for ``transpose=True`` that is the input of the
        transposed convolution, i.e. the output of the underlying convolution).
    kernel_size, stride, dilation : tuple of int
    transpose : bool
        Resolve for a transposed convolution.

    Returns
    -------
    pairs : tuple of (int, int)
        Padding before and after each spatial dimension (of the forward convolution's input).
    implied_output_padding : tuple of int
        Extra output positions at the end that a string padding needs for a transposed
        convolution (``"same"`` when ``dilation * (kernel_size - 1) + 1 < stride``); zeros
        otherwise.

    Notes
    -----
    ``"same"``, forward: ``out = ceil(in / stride)``, total padding
    ``max((out - 1) * stride + k_eff - in, 0)``, ``before = total // 2`` (the odd extra pad
    goes at the end, as TF ``SAME`` / ONNX ``SAME_UPPER``). ``"same_lower"`` puts it first
    (ONNX ``SAME_LOWER``). ``"same"``, transposed: ``out = in * stride`` (TF/Keras/ONNX), total
    padding ``k_eff - stride``, split the same way; when that is negative there is no padding
    and the missing ``stride - k_eff`` positions are added at the end as output padding.
    ``"valid"`` is zero padding in both directions. ``"full"`` pads ``d (k - 1)`` on both sides
    in both directions (NumPy's and SciPy's ``convolve`` mode, Keras's ``"full"``): the forward
    output is ``in + d (k - 1)``, the transposed one ``(in - 1) s - d (k - 1) + 1`` (the adjoint
    of the forward ``"full"`` convolution).
    """
    ndim = len(kernel_size)
    zero = (0,) * ndim
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ValueError(f"padding must be one of {PADDING_STRINGS} when a string, got {padding!r}")
        if padding == "valid":
            return ((0, 0),) * ndim, zero
        if padding == "full":  # every partial overlap: d (k - 1) on both sides, both directions
            return tuple((k - 1, k - 1) for k in _effective_kernel(kernel_size, dilation)), zero
        lower = padding == "same_lower"
        pairs, implied = [], []
        for n, k_eff, s in zip(input_size, _effective_kernel(kernel_size, dilation), stride):
            if transpose:
                total = k_eff - s
            else:
                out = -(-n // s)
                total = max((out - 1) * s + k_eff - n, 0)
            extra = max(-total, 0)
            total = max(total, 0)
            small = total // 2
            pairs.append((total - small, small) if lower else (small, total - small))
            implied.append(extra)
        return tuple(pairs), tuple(implied)
    return _parse_explicit_padding(padding, ndim), zero


def source_index(position, size, mode):
    """Map padded positions (ints or an int array, any range) to input positions.

    Returns ``-1`` where ``mode == "zeros"`` and the position lies outside ``[0, size)``.
    ``reflect`` mirrors without repeating the edge (``d c b | a b c d | c b a``), ``replicate``
    repeats the edge (``a a a | a b c d | d d d``), ``circular`` wraps (``b c d | a b c d |
    a b c``); these are PyTorch's (and ``numpy.pad``'s reflect/edge/wrap) semantics.
    """
    position = np.asarray(position, dtype=np.int64)
    if mode == "zeros":
        return np.where((position >= 0) & (position < size), position, -1)
    if mode == "replicate":
        return np.clip(position, 0, size - 1)
    if mode == "circular":
        return np.mod(position, size)
    if mode == "reflect":
        if size == 1:
            return np.zeros_like(position)
        period = 2 * (size - 1)
        folded = np.mod(position, period)
        return np.where(folded < size, folded, period - folded)
    raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {mode!r}")


@dataclass(frozen=True)
class ConvGeometry:
    """Sizes and parameters of one N-d convolution, per spatial dimension.

    Build one with :meth:`for_conv` or :meth:`for_conv_transpose`; both validate.

    Attributes
    ----------
    input_size : tuple of int
        Spatial size of the forward convolution's input (= conv_transpose's output).
    output_size : tuple of int
        Spatial size of the forward convolution's output (= conv_transpose's input).
    kernel_size, stride, dilation : tuple of int
    padding : tuple of (int, int)
        ``(before, after)`` zero padding of the input, as resolved from the user's value.
    output_padding : tuple of int
        Extra positions at the end of a transposed convolution's output (0 for conv).
    """

    input_size: tuple
    output_size: tuple
    kernel_size: tuple
    stride: tuple
    dilation: tuple
    padding: tuple
    output_padding: tuple

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_conv(cls, input_size, kernel_size, *, stride=1, padding=0, dilation=1):
        """Geometry of ``conv`` on inputs of spatial size ``input_size``."""
        ndim = len(kernel_size)
        input_size = tuple(input_size)
        kernel_size = tuple(kernel_size)
        stride = normalize_tuple(stride, ndim, "stride", min_value=1)
        dilation = normalize_tuple(dilation, ndim, "dilation", min_value=1)
        pairs, _ = resolve_padding(padding, input_size, kernel_size, stride, dilation, transpose=False)
        output_size = []
        for dim, (n, k_eff, s, (before, after)) in enumerate(
            zip(input_size, _effective_kernel(kernel_size, dilation), stride, pairs)
        ):
            padded = n + before + after
            if padded < k_eff:
                raise ValueError(
                    f"kernel size is larger than the padded input in spatial dimension {dim}: "
                    f"dilated kernel extent {k_eff} > padded input size {padded} "
                    f"(input {n} + padding {before} + {after})"
                )
            output_size.append((padded - k_eff) // s + 1)
        return _checked(cls(input_size, tuple(output_size), kernel_size, stride, dilation, pairs,
                            (0,) * ndim))

    @classmethod
    def for_conv_transpose(
        cls, input_size, kernel_size, *, stride=1, padding=0, output_padding=0, dilation=1,
        output_size=None,
    ):
        """Geometry of ``conv_transpose`` on inputs of spatial size ``input_size``.

        ``output_size`` (spatial sizes, or the full shape with batch and channel dims) picks
        ``output_padding`` the way PyTorch's ``ConvTranspose*.forward(output_size=...)`` does.
        """
        ndim = len(kernel_size)
        input_size = tuple(input_size)
        kernel_size = tuple(kernel_size)
        stride = normalize_tuple(stride, ndim, "stride", min_value=1)
        dilation = normalize_tuple(dilation, ndim, "dilation", min_value=1)
        output_padding = normalize_tuple(output_padding, ndim, "output_padding", min_value=0)
        pairs, implied = resolve_padding(padding, input_size, kernel_size, stride, dilation, transpose=True)
        fixed_size = isinstance(padding, str) and padding in ("same", "same_lower")
        if fixed_size and any(output_padding):
            raise ValueError(
                f"output_padding must be 0 when padding is {padding!r} (it fixes the output "
                f"size to input size * stride), got {output_padding}"
            )
        k_effs = _effective_kernel(kernel_size, dilation)
        minimal = tuple(
            (n - 1) * s - before - after + k_eff
            for n, s, (before, after), k_eff in zip(input_size, stride, pairs, k_effs)
        )
        if output_size is not None:
            if any(output_padding):
                raise ValueError(
                    "give output_size or output_padding, not both "
                    f"(got output_size={output_size!r}, output_padding={output_padding})"
                )
            output_padding = _output_padding_for(
                output_size, minimal, stride, implied, fixed=fixed_size, dilation=dilation
            )
        else:
            output_padding = tuple(op + extra for op, extra in zip(output_padding, implied))
        for dim, (op, s, d) in enumerate(zip(output_padding, stride, dilation)):
            if not fixed_size and op >= max(s, d):
                raise ValueError(
                    f"output_padding must be smaller than max(stride, dilation) in every "
                    f"dimension, got output_padding={output_padding} with stride={stride} "
                    f"and dilation={dilation} (dimension {dim})"
                )
        out = tuple(m + op for m, op in zip(minimal, output_padding))
        for dim, size in enumerate(out):
            if size < 1:
                raise ValueError(
                    f"conv_transpose output would be empty in spatial dimension {dim}: size "
                    f"{size} = ({input_size[dim]} - 1) * stride {stride[dim]} - padding "
                    f"({pairs[dim][0]} + {pairs[dim][1]}) + dilated kernel extent {k_effs[dim]} "
                    f"+ output_padding {output_padding[dim]}; reduce the padding"
                )
        return _checked(cls(out, input_size, kernel_size, stride, dilation, pairs, output_padding))

    # ------------------------------------------------------------------ derived sizes
    @property
    def ndim(self):
        return len(self.kernel_size)

    @property
    def pad_before(self):
        return tuple(p[0] for p in self.padding)

    @property
    def pad_after(self):
        return tuple(p[1] for p in self.padding)

    @property
    def input_numel(self):
        return prod(self.input_size)

    @property
    def output_numel(self):
        return prod(self.output_size)

    @property
    def kernel_numel(self):
        return prod(self.kernel_size)

    @property
    def effective_kernel_size(self):
        return _effective_kernel(self.kernel_size, self.dilation)

    @property
    def is_pointwise(self):
        """1x1 kernel, unit stride, no padding: im2col is the identity (no column buffer)."""
        return (
            self.kernel_numel == 1
            and all(s == 1 for s in self.stride)
            and not any(self.pad_before)
            and self.input_size == self.output_size
        )

    def transpose_phases(self):
        """Stride-phase (sub-pixel) decomposition of the transposed convolution, dilation 1.

        Output position ``o`` of the transposed convolution (``o`` in ``[0, input_size)``)
        belongs to phase ``rho = (o + pad_before) mod stride`` and receives exactly the taps
        ``t = rho + m * stride`` (``m = 0 .. M - 1``, ``M = ceil((k - rho) / stride)``) from the
        inputs ``j = q - m`` where ``o = q * stride + rho - pad_before``. So each phase is a
        stride-1 correlation of the input with a sub-kernel, written to every stride-th output:
        no scatter-add and no multiplication by inserted zeros.

        Returns
        -------
        list of dict
            One entry per phase (row-major over the per-dimension residues), with tuples
            ``taps`` (kernel taps per dimension, in the order of the sub-kernel),
            ``sub_out`` (phase positions per dimension), ``sub_kernel`` (``M`` per
            dimension), ``sub_pad`` (padding of the stride-1 im2col, may be negative) and
            ``first`` (first output position per dimension; the step is the stride).
        """
        if any(d != 1 for d in self.dilation):
            raise ValueError("stride phases need dilation 1 in every dimension")
        per_dim = []
        for dim, (k, s, before) in enumerate(zip(self.kernel_size, self.stride, self.pad_before)):
            options = []
            q_lo_all, q_hi_all = self.phase_range(dim)
            for rho in range(s):
                m = max(0, -(-(k - rho) // s))
                q_lo, q_hi = int(q_lo_all[rho]), int(q_hi_all[rho])
                count = max(0, q_hi - q_lo)
                taps = tuple(rho + (m - 1 - i) * s for i in range(m))  # flipped: im2col order
                options.append(dict(taps=taps, sub_out=count, sub_kernel=m,
                                    sub_pad=m - 1 - q_lo, first=q_lo * s + rho - before))
            per_dim.append(options)
        phases = []
        for combo in itertools.product(*per_dim):
            phases.append({key: tuple(c[key] for c in combo)
                           for key in ("taps", "sub_out", "sub_kernel", "sub_pad", "first")})
        return phases

    def phase_range(self, dim):
        """``(q_lo, q_hi)``: integer arrays over the residues ``rho = 0 .. stride - 1`` of
        dimension ``dim``; the outputs of phase ``rho`` are ``o = q * stride + rho -
        pad_before`` for ``q_lo <= q < q_hi`` (empty when ``q_hi <= q_lo``), i.e. every
        ``o`` in ``[0, input_size)`` with that residue (see :meth:`transpose_phases`)."""
        s, before = self.stride[dim], self.pad_before[dim]
        rho = np.arange(s)
        q_lo = -((rho - before) // s)                     # ceil((before - rho) / s)
        q_hi = (self.input_size[dim] - 1 + before - rho) // s + 1
        return q_lo, q_hi

    def input_positions(self, dim, output_position, tap):
        """Input position read by ``output_position`` through ``tap`` (relation (1))."""
        return output_position * self.stride[dim] - self.pad_before[dim] + tap * self.dilation[dim]

    def padded(self):
        """This geometry applied to an input already padded explicitly (zero padding left)."""
        input_size = tuple(n + b + a for n, (b, a) in zip(self.input_size, self.padding))
        return ConvGeometry(
            input_size, self.output_size, self.kernel_size, self.stride, self.dilation,
            ((0, 0),) * self.ndim, self.output_padding,
        )

    #: The fields the im2col / col2im / weight-gradient drivers take, in their order.
    KERNEL_FIELDS = ("input_size", "output_size", "kernel_size", "stride", "dilation",
                     "pad_before")

    def as_kernel_args(self, *fields):
        """The geometry as the compiled kernels take it: the named ``fields`` (default
        :data:`KERNEL_FIELDS`) as C ``Py_ssize_t`` arrays, one per field. The one way sizes
        and parameters reach the kernels."""
        return intp_arrays(*(getattr(self, name) for name in fields or self.KERNEL_FIELDS))

    # ------------------------------------------------------- derived forward convolutions
    @property
    def phase_count(self):
        """Stride phases of the transposed convolution: prod(stride), exact (numpy.prod
        would wrap around in int64 for strides near the 2**62 index limit)."""
        return prod(self.stride)

    @property
    def phase_sub_kernel(self):
        """r when every stride phase has an r x r sub-kernel (kernel = r x stride, r = 2 or
        3, 2-d, dilation 1, stride > 1), else None: arithmetic only, no phase is enumerated."""
        if self.ndim != 2 or all(s == 1 for s in self.stride) or any(
                d != 1 for d in self.dilation):
            return None
        ratios = {k // s if k % s == 0 else None for k, s in zip(self.kernel_size, self.stride)}
        return ratios.pop() if len(ratios) == 1 and ratios <= {2, 3} else None

    def transpose_as_forward(self):
        """A stride-1 transposed convolution as the forward convolution of its input with the
        flipped kernel, or None (a stride other than 1, or a padding larger than the dilated
        kernel extent minus one)."""
        if any(s != 1 for s in self.stride):
            return None
        padding = []
        for n_in, n_out, k, d, before in zip(self.output_size, self.input_size, self.kernel_size,
                                             self.dilation, self.pad_before):
            extent = d * (k - 1)
            if before > extent:
                return None
            padding.append((extent - before, max(0, n_out - n_in + before)))
        return ConvGeometry(self.output_size, self.input_size, self.kernel_size, self.stride,
                            self.dilation, tuple(padding), (0,) * self.ndim)

    def space_to_depth(self):
        """A strided 2-d convolution whose kernel is r x stride (r = 2 or 3, dilation 1) as
        the stride-1, unpadded r x r convolution of its space-to-depth input, or None.

        With ``ky = sy * a + ry``, input row ``sy * o + ky - pad = sy * (o + a) + ry - pad``:
        tap ``(a, b)`` of phase ``(ry, rx)`` reads position ``(o + a, o' + b)`` of the plane
        ``X[ry, rx][i, j] = x[sy * i + ry - pad_top, sx * j + rx - pad_left]`` (zero outside
        x), planes of ``(out + r - 1)`` positions per dimension.
        """
        r = self.phase_sub_kernel
        if r is None:
            return None
        return ConvGeometry(tuple(n + r - 1 for n in self.output_size), self.output_size, (r, r),
                            (1, 1), (1, 1), ((0, 0), (0, 0)), (0, 0))

    def phase_geometry(self, phase):
        """The stride-1 forward geometry of one stride phase of the transposed convolution
        (an entry of :meth:`transpose_phases`): the transposed convolution's input to the
        phase's outputs, through the phase's sub-kernel."""
        return ConvGeometry(self.output_size, phase["sub_out"], phase["sub_kernel"],
                            (1,) * self.ndim, (1,) * self.ndim,
                            tuple((p, 0) for p in phase["sub_pad"]), (0,) * self.ndim)

    def subpixel_grid(self):
        """The common grid of the sub-pixel decomposition, or None when it does not apply.

        When every kernel size is a multiple of its stride (dilation 1), every phase has the
        sub-kernel ``k / stride`` and its outputs sit on the phase positions ``q_lo .. q_hi``
        (:meth:`phase_range`); all phases share the grid ``u_min .. u_max`` per dimension.
        Returns ``(u_min, common, geometry)``: the grid's first position and size per
        dimension, and the stride-1 forward geometry from the transposed convolution's input
        to that grid.
        """
        if any(d != 1 for d in self.dilation) or any(
                k % s for k, s in zip(self.kernel_size, self.stride)):
            return None
        sub_kernel = tuple(k // s for k, s in zip(self.kernel_size, self.stride))
        u_min, u_max = [], []
        for dim in range(self.ndim):
            q_lo, q_hi = self.phase_range(dim)
            u_min.append(int(q_lo.min()))
            u_max.append(int(q_hi.max()))
        common = tuple(hi - lo for lo, hi in zip(u_min, u_max))
        if min(common) < 1:
            return None
        geometry = ConvGeometry(
            self.output_size, common, sub_kernel, (1,) * self.ndim, (1,) * self.ndim,
            tuple((m - 1 - lo, 0) for m, lo in zip(sub_kernel, u_min)), (0,) * self.ndim)
        return tuple(u_min), common, geometry


def intp_arrays(*sequences):
    """Each sequence of sizes or positions as a C ``Py_ssize_t`` array (the kernels' type)."""
    return tuple(np.array(values, dtype=np.intp) for values in sequences)


#: Every position the kernels compute (sizes, strides, dilated kernel extents, paddings and
#: their sums) must stay below this, so that 64-bit index arithmetic cannot overflow.
INDEX_LIMIT = 2**62


def _checked(geometry):
    """Reject geometries whose index arithmetic could overflow 64-bit integers."""
    for name, values in (
        ("stride", geometry.stride), ("dilation", geometry.dilation),
        ("padding", [p for pair in geometry.padding for p in pair]),
        ("kernel extent (dilation * (kernel_size - 1) + 1)", geometry.effective_kernel_size),
        ("spatial size", geometry.input_size + geometry.output_size),
        ("span of the output positions ((out - 1) * stride + kernel extent + padding)",
         [(o - 1) * s + k + b + a for o, s, k, (b, a) in zip(
             geometry.output_size, geometry.stride, geometry.effective_kernel_size,
             geometry.padding)]),
    ):
        if any(abs(v) >= INDEX_LIMIT for v in values):
            raise ValueError(f"{name} too large for 64-bit index arithmetic (limit 2**62), got "
                             f"{tuple(values)}")
    return geometry


def _output_padding_for(output_size, minimal, stride, implied, *, fixed, dilation=None):
    """PyTorch's ``ConvTranspose._output_padding`` rule, with one clear error."""
    ndim = len(minimal)
    if isinstance(output_size, np.ndarray):
        output_size = output_size.tolist()
    try:
        requested = tuple(output_size)
    except TypeError:
        raise TypeError(f"output_size must be a sequence of ints, got {output_size!r}") from None
    if len(requested) == ndim + 2:
        requested = requested[2:]
    if len(requested) != ndim:
        raise ValueError(
            f"output_size must have {ndim} spatial sizes (or {ndim + 2} entries including batch "
            f"and channels), got {output_size!r}"
        )
    requested = tuple(check_int(v, "output_size", min_value=1) for v in requested)
    padding = []
    for dim, (want, low, s, extra) in enumerate(zip(requested, minimal, stride, implied)):
        low = low + extra
        high = low if fixed else low + s - 1
        if not low <= want <= high:
            direct = max(s, dilation[dim]) - 1 if dilation is not None and not fixed else 0
            hint = (
                f"; output_padding up to {direct} (below max(stride, dilation)) reaches up to "
                f"{low + direct} when passed directly"
                if direct > high - low and low < want <= low + direct else ""
            )
            raise ValueError(
                f"output_size {requested} is unreachable: in spatial dimension {dim} the "
                f"output of this transposed convolution can only be {low} to {high} "
                f"(output_size picks an output_padding of 0 to {high - low}, below the stride, "
                f"as PyTorch does{hint}), got {want}"
            )
        padding.append(want - low + extra)
    return tuple(padding)
