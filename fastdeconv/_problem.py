"""A validated convolution problem: shapes, channels, groups and geometry together.

Pure Python (no compiled code), shared by the kernels' dispatch (:mod:`fastdeconv._conv`), the
sparse matrices (:mod:`fastdeconv.sparse`) and the shape helpers, so that all of them accept
and reject exactly the same arguments.
"""

import functools
from dataclasses import dataclass

from ._geometry import PADDING_MODES, ConvGeometry
from ._validation import check_int

#: Validated problems kept per exact arguments (:func:`_memoized`); a layer called in a loop
#: validates its arguments once (the checks and the geometry took about 40 % of the 60 us a
#: call spent outside its kernels).
_PROBLEMS_KEPT = 256

__all__ = ["ConvProblem", "conv_problem", "conv_transpose_problem"]


@dataclass(frozen=True)
class ConvProblem:
    """A validated convolution: geometry plus channel counts of the *forward* convolution.

    For a transposed convolution, ``c_in`` is its output channel count and ``c_out`` its
    input channel count (the forward convolution goes the other way).
    """

    geometry: ConvGeometry
    batch: int
    c_in: int
    c_out: int
    groups: int
    padding_mode: str = "zeros"

    @property
    def forward_input_shape(self):
        return (self.batch, self.c_in) + self.geometry.input_size

    @property
    def forward_output_shape(self):
        return (self.batch, self.c_out) + self.geometry.output_size

    @property
    def weight_shape(self):
        return (self.c_out, self.c_in // self.groups) + self.geometry.kernel_size

    # ------------------------------------------------- the same work as another convolution
    def transpose_as_forward(self):
        """A stride-1 transposed convolution as a forward convolution (its input to its
        output, channels swapped) with the flipped kernel, or None
        (:meth:`ConvGeometry.transpose_as_forward`)."""
        geometry = self.geometry.transpose_as_forward()
        if geometry is None:
            return None
        return ConvProblem(geometry, self.batch, self.c_out, self.c_in, self.groups)

    def space_to_depth(self):
        """This strided convolution as the stride-1 convolution of its space-to-depth input
        (``C_in * prod(stride)`` channels), or None (:meth:`ConvGeometry.space_to_depth`)."""
        geometry = self.geometry.space_to_depth()
        if geometry is None:
            return None
        return ConvProblem(geometry, self.batch, self.c_in * self.geometry.phase_count,
                           self.c_out, self.groups)

    def phase_problem(self, phase):
        """One stride phase of the transposed convolution as a forward convolution (its input
        to the phase's outputs, channels swapped; :meth:`ConvGeometry.phase_geometry`)."""
        return ConvProblem(self.geometry.phase_geometry(phase), self.batch, self.c_out,
                           self.c_in, self.groups)


def _check_shapes(x_shape, weight_shape, x_name):
    if len(weight_shape) < 3:
        raise ValueError(
            "weight must have at least 3 dimensions (channels, channels / groups, "
            f"*kernel_size), got shape {tuple(weight_shape)}"
        )
    ndim = len(weight_shape) - 2
    if len(x_shape) != ndim + 2:
        raise ValueError(
            f"{x_name} must have {ndim + 2} dimensions (N, C, *spatial) to match a weight with "
            f"{ndim} spatial dimensions of shape {tuple(weight_shape)}, got shape {tuple(x_shape)}"
        )
    if 0 in weight_shape:
        raise ValueError(f"weight must not have zero-size dimensions, got shape {tuple(weight_shape)}")
    if 0 in x_shape[1:]:
        raise ValueError(
            f"{x_name} must not have zero-size channel or spatial dimensions, got shape "
            f"{tuple(x_shape)}"
        )


_INTS = {int}


def _key(value):
    """A hashable key that tells apart every two values the checks could tell apart (exact
    types: ``2`` and ``2.0`` or ``True`` differ), or None for a value not to remember."""
    kind = type(value)
    if kind is int or kind is str:
        return value
    if value is None or kind is bool:
        return (kind, value)
    if kind is tuple or kind is list:
        if set(map(type, value)) <= _INTS:   # the usual shape or per-dimension parameter
            return (kind, tuple(value))
        parts = tuple(map(_key, value))
        return None if None in parts else (kind, parts)
    return None


def _memoized(check):
    """``check`` (a pure function of its arguments that returns an immutable problem or
    raises) with its results kept per exact arguments; failures are not kept, so a bad
    argument raises on every call."""
    kept = {}

    @functools.wraps(check)
    def checked(*args, **kwargs):
        key = _key(args + tuple(kwargs.values())), tuple(kwargs)
        if key[0] is None:
            return check(*args, **kwargs)
        try:
            return kept[key]
        except KeyError:
            pass
        problem = check(*args, **kwargs)
        if len(kept) >= _PROBLEMS_KEPT:
            kept.clear()
        kept[key] = problem
        return problem
    return checked


@_memoized
def conv_problem(x_shape, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros", x_name="x"):
    """Validate the arguments of :func:`conv` for given shapes; return a :class:`ConvProblem`."""
    _check_shapes(x_shape, weight_shape, x_name)
    groups = check_int(groups, "groups", min_value=1)
    c_in, c_out = x_shape[1], weight_shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"groups={groups} must divide both the input channels ({c_in}) and the output "
            f"channels ({c_out})"
        )
    if weight_shape[1] * groups != c_in:
        raise ValueError(
            f"weight.shape[1] * groups must equal the input channels: weight has shape "
            f"{tuple(weight_shape)} and groups={groups}, so {weight_shape[1] * groups} != "
            f"{c_in} channels of {x_name} with shape {tuple(x_shape)}"
        )
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    geometry = ConvGeometry.for_conv(
        x_shape[2:], weight_shape[2:], stride=stride, padding=padding, dilation=dilation
    )
    _check_padding_mode_limits(geometry, padding_mode)
    return ConvProblem(geometry, x_shape[0], c_in, c_out, groups, padding_mode)


@_memoized
def conv_transpose_problem(x_shape, weight_shape, *, stride=1, padding=0, output_padding=0,
                           dilation=1, groups=1, output_size=None, x_name="x"):
    """Validate the arguments of :func:`conv_transpose`; return the forward :class:`ConvProblem`."""
    _check_shapes(x_shape, weight_shape, x_name)
    groups = check_int(groups, "groups", min_value=1)
    c_in = x_shape[1]
    if weight_shape[0] != c_in:
        raise ValueError(
            f"weight.shape[0] must equal the input channels for conv_transpose (weight layout "
            f"(C_in, C_out / groups, *kernel_size)): weight has shape {tuple(weight_shape)}, "
            f"{x_name} has shape {tuple(x_shape)}"
        )
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels ({c_in})")
    geometry = ConvGeometry.for_conv_transpose(
        x_shape[2:], weight_shape[2:], stride=stride, padding=padding,
        output_padding=output_padding, dilation=dilation, output_size=output_size,
    )
    return ConvProblem(geometry, x_shape[0], weight_shape[1] * groups, c_in, groups)


def _check_padding_mode_limits(geometry, mode):
    if mode == "reflect":
        limit, relation = (lambda n: n - 1), "smaller than"
    elif mode == "circular":
        limit, relation = (lambda n: n), "at most"
    else:
        return
    for dim, (n, pair) in enumerate(zip(geometry.input_size, geometry.padding)):
        if max(pair) > limit(n):
            raise ValueError(
                f"padding_mode={mode!r} needs padding {relation} the input size: spatial "
                f"dimension {dim} has size {n} and padding {pair}"
            )
