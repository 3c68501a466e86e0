"""Data and weight layouts: ``data_format`` and ``weight_format`` of every framework.

fastdeconv computes in one canonical layout, PyTorch's (except where a native channels-last
path measures faster, :mod:`fastdeconv._channels_last`): data channels-first ``(N, C,
*spatial)``, convolution weights ``(C_out, C_in / groups, *kernel)`` (``"OIHW"``) and
transposed-convolution weights ``(C_in, C_out / groups, *kernel)`` (``"IOHW"``). Every public
operator takes the layout its caller has and gives results and gradients back in it; this
module is the one place that parses the layout strings and moves axes, so that the operators,
their backward passes, the sparse matrices and :mod:`fastdeconv.compat` agree.

Copies: a channels-last input becomes a channels-first *view*, which the operator makes
C-contiguous (one transposing copy, none if it already is the view of a channels-first
array); the result is the channels-last *view* of the channels-first result (no copy). So a
chain of channels-last calls copies only its first input, and no call copies twice. A
caller who needs C-contiguous channels-last memory calls ``numpy.ascontiguousarray``.

Layouts
-------
``data_format``
    ``"channels_first"`` (default) or ``"channels_last"`` (``(N, *spatial, C)``, the default of
    TensorFlow, Keras, JAX/flax and TFLite), or an explicit layout string checked against the
    rank: ``"NCW"``, ``"NWC"``, ``"NCHW"``, ``"NHWC"``, ``"NCDHW"``, ``"NDHWC"``.
``weight_format``
    ``O`` (output channels of the operator, per group for a transposed convolution), ``I``
    (input channels, per group for a convolution) and the spatial letters (``W``; ``HW``;
    ``DHW``) in any order: PyTorch ``"OIHW"`` (conv) / ``"IOHW"`` (conv_transpose), TF, Keras
    and JAX ``"HWIO"``, TF ``conv2d_transpose`` and Keras ``Conv2DTranspose`` ``"HWOI"``, TFLite
    ``"OHWI"``. ``None`` is the canonical layout of the operator.
"""

from dataclasses import dataclass

import numpy as np

from ._ext import _layout_kernels
from ._threads import kernel_threads

__all__ = [
    "DATA_FORMATS",
    "DATA_FORMAT_ALIASES",
    "SPATIAL_LETTERS",
    "Layout",
    "is_channels_last",
    "weight_axes",
    "to_channels_first",
    "from_channels_first",
    "channels_first_shape",
    "channels_last_shape",
    "channels_last_index",
    "contiguous_channels_first",
]

DATA_FORMATS = ("channels_first", "channels_last")

#: explicit layout strings: (channels last?, spatial dimensions)
DATA_FORMAT_ALIASES = {
    "NCW": (False, 1), "NWC": (True, 1),
    "NCHW": (False, 2), "NHWC": (True, 2),
    "NCDHW": (False, 3), "NDHWC": (True, 3),
}

#: the spatial letters of a weight layout, by number of spatial dimensions
SPATIAL_LETTERS = {1: "W", 2: "HW", 3: "DHW"}


def is_channels_last(data_format, spatial_ndim=None, name="data_format"):
    """True for a channels-last ``data_format``; ValueError for an unknown one or an explicit
    layout string (``"NHWC"``, ...) whose rank is not ``spatial_ndim`` (None: not checked)."""
    if not isinstance(data_format, str):
        raise TypeError(f"{name} must be a string, one of {DATA_FORMATS} or "
                        f"{tuple(DATA_FORMAT_ALIASES)}, got {data_format!r}")
    if data_format in DATA_FORMATS:
        return data_format == "channels_last"
    if data_format not in DATA_FORMAT_ALIASES:
        raise ValueError(f"{name} must be one of {DATA_FORMATS} or an explicit layout "
                         f"{tuple(DATA_FORMAT_ALIASES)}, got {data_format!r}")
    last, ndim = DATA_FORMAT_ALIASES[data_format]
    if spatial_ndim is not None and ndim != spatial_ndim:
        raise ValueError(
            f"{name}={data_format!r} is a layout for {ndim} spatial dimension"
            f"{'s' if ndim > 1 else ''} ({ndim + 2}-d arrays), but the data has {spatial_ndim} "
            f"({spatial_ndim + 2}-d arrays); use 'channels_first' or 'channels_last' for any rank"
        )
    return last


def weight_axes(weight_format, spatial_ndim, transpose, name="weight_format"):
    """Axes that take a weight of layout ``weight_format`` to the canonical layout.

    Returns the permutation ``axes`` with ``canonical = weight.transpose(axes)``, or None when
    ``weight_format`` is None or already canonical (``"OI..."`` for a convolution, ``"IO..."``
    for a transposed one).
    """
    if weight_format is None:
        return None
    if not isinstance(weight_format, str):
        raise TypeError(f"{name} must be a string such as 'OIHW' or 'HWIO', or None, got "
                        f"{weight_format!r}")
    if spatial_ndim not in SPATIAL_LETTERS:
        raise ValueError(
            f"{name} is supported for 1 to 3 spatial dimensions; the weight has "
            f"{spatial_ndim}, so pass weight_format=None (the canonical layout)")
    spatial = SPATIAL_LETTERS[spatial_ndim]
    canonical = ("IO" if transpose else "OI") + spatial
    if len(weight_format) != len(canonical) or sorted(weight_format) != sorted(canonical):
        raise ValueError(
            f"{name} must be the letters O, I and {', '.join(spatial)} in some order (one "
            f"each, for {spatial_ndim} spatial dimension{'s' if spatial_ndim > 1 else ''}), "
            f"got {weight_format!r}")
    axes = tuple(weight_format.index(letter) for letter in canonical)
    return None if axes == tuple(range(len(axes))) else axes


def to_channels_first(array):
    """View of a channels-last array ``(N, *spatial, C)`` as ``(N, C, *spatial)``."""
    return np.moveaxis(array, -1, 1)


def from_channels_first(array):
    """Channels-last view ``(N, *spatial, C)`` of a channels-first array (no copy)."""
    return np.moveaxis(array, 1, -1)


def contiguous_channels_first(array, dtype):
    """``array`` as a C-contiguous array of ``dtype`` (``numpy.asarray(..., order="C")``).

    When ``array`` is the channels-first view of a C-contiguous channels-last float32 or
    float64 array (what :meth:`Layout.data_in` makes of a channels-last input), the copy is a
    batched transpose in cache blocks (:mod:`fastdeconv._ext._layout_kernels`), several times
    faster than NumPy's strided copy for many channels; the values are the same either way.
    """
    dtype = np.dtype(dtype)
    if (array.ndim >= 3 and array.dtype == dtype and dtype in (np.float32, np.float64)
            and not array.flags.c_contiguous and array.size):
        last = np.moveaxis(array, 1, -1)
        if last.flags.c_contiguous:
            batch, channels = array.shape[0], array.shape[1]
            out = np.empty(array.shape, dtype=dtype)
            _layout_kernels.transpose_batched(last.reshape(batch, -1, channels),
                                              out.reshape(batch, channels, -1),
                                              kernel_threads())
            return out
    return np.asarray(array, dtype=dtype, order="C")


def channels_first_shape(shape):
    """``(N, *spatial, C)`` to ``(N, C, *spatial)``."""
    shape = tuple(shape)
    return shape[:1] + shape[-1:] + shape[1:-1]


def channels_last_shape(shape):
    """``(N, C, *spatial)`` to ``(N, *spatial, C)``."""
    shape = tuple(shape)
    return shape[:1] + shape[2:] + shape[1:2]


def channels_last_index(sample_shape):
    """Flat channels-last index of every element of a channels-first sample.

    For one sample of channels-first shape ``(C, *spatial)``, entry ``i`` (C order) is the
    position of the same element in the raveled channels-last sample ``(*spatial, C)``: the
    map that relabels the rows or columns of a sparse matrix from one layout to the other.

    >>> channels_last_index((2, 3)).tolist()     # (C=2, W=3) -> (W=3, C=2)
    [0, 2, 4, 1, 3, 5]
    """
    sample_shape = tuple(sample_shape)
    size = int(np.prod(sample_shape, dtype=np.int64))
    order = np.arange(size, dtype=np.int64).reshape(sample_shape[1:] + sample_shape[:1])
    return np.moveaxis(order, -1, 0).ravel()


@dataclass(frozen=True)
class Layout:
    """The caller's layouts of one call, resolved and validated.

    Attributes
    ----------
    channels_last : bool
        Data arrays are ``(N, *spatial, C)``.
    weight_axes : tuple of int or None
        ``canonical_weight = weight.transpose(weight_axes)``; None for the canonical layout.
    """

    channels_last: bool = False
    weight_axes: tuple = None

    @classmethod
    def resolve(cls, data_format, spatial_ndim, weight_format=None, *, transpose=False):
        """Validate ``data_format`` (and ``weight_format`` for a convolution) for
        ``spatial_ndim`` spatial dimensions."""
        last = is_channels_last(data_format, spatial_ndim)
        axes = weight_axes(weight_format, spatial_ndim, transpose)
        return cls(last, axes)

    @property
    def weight_axes_out(self):
        """Axes that take a canonical weight back to the caller's layout (None: canonical)."""
        if self.weight_axes is None:
            return None
        return tuple(int(a) for a in np.argsort(self.weight_axes))

    @property
    def is_canonical(self):
        return not self.channels_last and self.weight_axes is None

    # ------------------------------------------------------------- caller's -> canonical
    def data_in(self, array):
        """Channels-first view of a data array in the caller's layout (no copy)."""
        if array is None or not self.channels_last or array.ndim < 2:
            return array
        return to_channels_first(array)

    def weight_in(self, weight):
        """Canonical view of a weight in the caller's layout (no copy)."""
        if weight is None or self.weight_axes is None or weight.ndim != len(self.weight_axes):
            return weight
        return weight.transpose(self.weight_axes)

    def shape_in(self, shape):
        """Channels-first form of a data shape in the caller's layout."""
        if shape is None or not self.channels_last or len(shape) < 2:
            return shape
        return channels_first_shape(shape)

    def weight_shape_in(self, shape):
        if self.weight_axes is None or len(shape) != len(self.weight_axes):
            return tuple(shape)
        return tuple(shape[a] for a in self.weight_axes)

    # ------------------------------------------------------------- canonical -> caller's
    def data_out(self, array):
        """A channels-first result in the caller's layout: a view, no copy.

        Its memory stays channels-first, so that handing it to the next channels-last
        operator costs no copy at all (its channels-first view is C-contiguous); one
        transposing copy per call, on the way in, is then the most any call makes.
        """
        if array is None or not self.channels_last:
            return array
        return from_channels_first(array)

    def weight_out(self, weight):
        """A canonical weight (gradient) in the caller's layout, C-contiguous."""
        if weight is None or self.weight_axes is None:
            return weight
        return np.ascontiguousarray(weight.transpose(self.weight_axes_out))

    def shape_out(self, shape):
        if not self.channels_last:
            return tuple(shape)
        return channels_last_shape(shape)

    def sample_shape_in(self, shape):
        """Channels-first form of one sample's shape ``(*spatial, C)`` in the caller's layout."""
        shape = tuple(shape)
        if not self.channels_last or len(shape) < 2:
            return shape
        return shape[-1:] + shape[:-1]

    def relabel(self, rows, cols, row_sample_shape, col_sample_shape):
        """Sparse-matrix triplet indices of channels-first samples (shapes ``(C, *spatial)``)
        relabelled for the caller's layout."""
        if not self.channels_last:
            return rows, cols
        return (channels_last_index(row_sample_shape)[rows],
                channels_last_index(col_sample_shape)[cols])

    # ------------------------------------------------------------- caller's layout, in place
    # For kernels that compute channels-last data as it is (no transposition).
    def batch_and_channels(self, shape):
        """``(N, C)`` of a data shape in the caller's layout."""
        return (shape[0], shape[-1]) if self.channels_last else (shape[0], shape[1])

    def spatial(self, shape):
        """The spatial sizes of a data shape in the caller's layout."""
        return tuple(shape[1:-1]) if self.channels_last else tuple(shape[2:])

    def data_shape(self, n, c, spatial):
        """The caller's shape of a batch of ``n`` samples of ``c`` channels."""
        spatial = tuple(spatial)
        return (n,) + spatial + (c,) if self.channels_last else (n, c) + spatial

    def planes(self, shape):
        """``(planes, channels)``: a batch of the caller's layout as planes of interleaved
        values, ``N * C`` planes of one value (channels-first) or ``N`` planes of ``C``
        values per spatial position (channels-last, value ``c`` of position ``p`` at
        ``p * C + c``)."""
        n, c = self.batch_and_channels(shape)
        return (n, c) if self.channels_last else (n * c, 1)
