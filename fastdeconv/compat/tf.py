"""TensorFlow's ``tf.nn`` convolutions, ``tf.image.resize`` and ``tf.nn.depth_to_space``.

Functions with TensorFlow 2's signatures and semantics on NumPy arrays: channels-last data by
default (``"NWC"``, ``"NHWC"``, ``"NDHWC"``; ``"NC..."`` accepted), convolution filters
``[*kernel, in / groups, out]`` (``"HWIO"``), transposed-convolution filters
``[*kernel, out, in]`` (``"HWOI"``), strides and dilations as one int or a list of 1, ``n``
or ``n + 2`` entries, paddings ``"SAME"`` / ``"VALID"`` or (2-d) explicit lists
``[[0, 0], [top, bottom], [left, right], [0, 0]]``. Each maps onto one fastdeconv call with
fastdeconv's ``data_format`` and ``weight_format`` keywords; ``explain=True`` returns it as
text.

Results follow fastdeconv's dtype policy (float32 for float16 and float32 inputs, float64
otherwise); TensorFlow's ``tf.image.resize`` returns float32 for every method but nearest.

>>> import numpy as np
>>> from fastdeconv.compat import tf
>>> x, filters = np.ones((1, 4, 4, 3)), np.ones((3, 3, 2, 3))     # NHWC, [h, w, out, in]
>>> print(tf.conv2d_transpose(x, filters, [1, 8, 8, 2], 2, explain=True))
fastdeconv.conv_transpose(input, filters, stride=(2, 2), padding='same', data_format='NHWC', weight_format='HWOI')
"""

import numpy as np

from .._formats import SPATIAL_LETTERS
from .._geometry import resolve_padding
from .._validation import result_dtype
from ._arguments import array, choice, int_value, ints
from ._call import Operand, Step, canonical_call
from ._general import ZerosCall, padding_keyword

__all__ = ["conv1d", "conv1d_transpose", "conv2d", "conv2d_transpose", "conv3d",
           "conv3d_transpose", "depth_to_space", "resize"]

#: data_format strings per spatial rank: (channels-last, channels-first)
_FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}

#: tf.image.resize methods fastdeconv.resize expresses, as its keywords
RESIZE_METHODS = {
    "bilinear": dict(mode="linear"),
    "nearest": dict(mode="nearest-exact"),
    "bicubic": dict(mode="cubic", coordinate_transformation_mode="half_pixel",
                    cubic_coeff_a=-0.5, exclude_outside=True),
    "area": dict(mode="area"),
}
#: with antialias=True (only acts when downsampling)
_ANTIALIASED = {
    "bilinear": dict(mode="linear", coordinate_transformation_mode="half_pixel",
                     antialias=True, exclude_outside=True),
    "bicubic": dict(mode="cubic", coordinate_transformation_mode="half_pixel",
                    cubic_coeff_a=-0.5, antialias=True, exclude_outside=True),
}
_OTHER_METHODS = ("lanczos3", "lanczos5", "gaussian", "mitchellcubic")


# ------------------------------------------------------------------------ arguments
def _data_format(data_format, n):
    """``(fastdeconv's data_format, channels last?)`` of a TF data_format string."""
    last, first = _FORMATS[n]
    aliases = {1: {"NHWC": "NWC", "NCHW": "NCW"}}.get(n, {})   # conv1d's deprecated names
    if data_format is None:
        data_format = last
    data_format = aliases.get(data_format, data_format)
    choice(data_format, "data_format", (last, first))
    return data_format, data_format == last


def _input(value, name, n):
    value = array(value, name)
    if value.ndim != n + 2:
        raise ValueError(f"{name} must have {n + 2} dimensions (batch, {n} spatial, channels "
                         f"in the order of data_format), got shape {value.shape}")
    return value


def _filters(value, n, name="filters"):
    value = array(value, name)
    if value.ndim != n + 2:
        raise ValueError(f"{name} must have {n + 2} dimensions ([*kernel, in, out] or, "
                         f"transposed, [*kernel, out, in]), got shape {value.shape}")
    return value


def _sequence(value, n, last, name):
    """TensorFlow's ``_get_sequence``: one int, or 1, ``n`` or ``n + 2`` ints (the batch and
    channel entries 1); the ``n`` spatial values."""
    if value is None:
        return (1,) * n
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        value = [value]
    if len(value) not in (1, n, n + 2):
        raise ValueError(f"{name} must be an int or a list of 1, {n} or {n + 2} ints, got "
                         f"{value!r}")
    values = ints(value, name, len(value), minimum=1)
    if len(values) == 1:
        return values * n
    if len(values) == n:
        return values
    outer = (values[0], values[-1]) if last else values[:2]
    if outer != (1, 1):
        raise ValueError(f"{name} must be 1 in the batch and channel dimensions, got "
                         f"{list(values)}")
    return values[1:-1] if last else values[2:]


def _padding(padding, n, last, explicit_allowed):
    """``"SAME"``, ``"VALID"`` or explicit ``(before, after)`` pairs of the spatial axes."""
    if isinstance(padding, str):
        return choice(padding, "padding", ("SAME", "VALID"))
    message = (f"padding must be 'SAME', 'VALID' or a list of {n + 2} [before, after] pairs "
               f"in the order of data_format (zero for the batch and channels), got "
               f"{padding!r}")
    if not explicit_allowed:
        raise ValueError(f"padding must be 'SAME' or 'VALID' here, got {padding!r}")
    if isinstance(padding, np.ndarray):
        padding = padding.tolist()
    if not isinstance(padding, (list, tuple)) or len(padding) != n + 2:
        raise ValueError(message)
    pairs = []
    for pair in padding:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(message)
        pairs.append(tuple(int_value(v, "padding", 0) for v in pair))
    outer = (pairs[0], pairs[-1]) if last else tuple(pairs[:2])
    if outer != ((0, 0), (0, 0)):
        raise ValueError(message)
    return tuple(pairs[1:-1] if last else pairs[2:])


def _weight_format(n, transpose):
    return SPATIAL_LETTERS[n] + ("OI" if transpose else "IO")


# ------------------------------------------------------------------------ convolutions
def _conv_output_size(in_size, kernel, stride, dilation, padding):
    sizes = []
    for dim, (n_in, k, s, d) in enumerate(zip(in_size, kernel, stride, dilation)):
        k_eff = d * (k - 1) + 1
        if padding == "SAME":
            sizes.append(-(-n_in // s))
            continue
        before, after = (0, 0) if padding == "VALID" else padding[dim]
        sizes.append(max(0, (n_in + before + after - k_eff) // s + 1))
    return tuple(sizes)


def _conv(n, input, filters, strides, padding, data_format, dilations, explicit_allowed,
          stride_name="strides"):
    input, filters = _input(input, "input", n), _filters(filters, n)
    data_format, last = _data_format(data_format, n)
    stride = _sequence(strides, n, last, stride_name)
    dilation = _sequence(dilations, n, last, "dilations")
    padding = _padding(padding, n, last, explicit_allowed)
    channels = input.shape[-1] if last else input.shape[1]
    filter_in = filters.shape[n]
    if filter_in == 0 or channels % filter_in:
        raise ValueError(f"the input channels ({channels}) must be a multiple of the filters' "
                         f"in_channels ({filter_in}, filters shape {filters.shape})")
    groups = channels // filter_in
    if filters.shape[n + 1] % groups:
        raise ValueError(f"the filters' out_channels ({filters.shape[n + 1]}) must be a "
                         f"multiple of the number of groups {groups} (input channels / "
                         f"filters' in_channels)")
    out_size = _conv_output_size(input.shape[1:-1] if last else input.shape[2:],
                                 filters.shape[:n], stride, dilation, padding)
    if 0 in out_size:   # TensorFlow returns the empty output
        batch, c_out = input.shape[0], filters.shape[n + 1]
        return ZerosCall((batch, *out_size, c_out) if last else (batch, c_out, *out_size),
                         result_dtype((input, "input"), (filters, "filters")))
    padding = padding.lower() if isinstance(padding, str) else padding_keyword(padding)
    return canonical_call(
        "conv", [Operand("input", input), Operand("filters", filters)],
        dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
             data_format=data_format, weight_format=_weight_format(n, False)))


def conv1d(input, filters, stride, padding, data_format="NWC", dilations=None, explain=False):
    """``tf.nn.conv1d``: 1-d convolution (cross-correlation), channels-last by default.

    Parameters
    ----------
    input : array_like, shape (N, W, C) or (N, C, W) for "NCW"
    filters : array_like, shape (kW, C / groups, C_out)
    stride : int or list of int
        One int, or a list of 1 or 3 entries (1 for the batch and channels).
    padding : {"SAME", "VALID"}
        ``"SAME"``: output ``ceil(W / stride)``, the odd extra padding at the end.
    data_format : {"NWC", "NCW"}, default "NWC"
    dilations : int or list of int, optional
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    ndarray or str

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import tf
    >>> tf.conv1d(np.ones((1, 5, 2)), np.ones((3, 2, 4)), 2, "SAME").shape
    (1, 3, 4)
    """
    return _conv(1, input, filters, stride, padding, data_format, dilations, False,
                 "stride").finish(explain)


def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None,
           explain=False):
    """``tf.nn.conv2d``: 2-d convolution (cross-correlation), channels-last by default.

    Parameters
    ----------
    input : array_like, shape (N, H, W, C) or (N, C, H, W) for "NCHW"
    filters : array_like, shape (kH, kW, C / groups, C_out)
        ``"HWIO"``; fewer in_channels than ``input`` has make a grouped convolution.
    strides : int or list of int
        One int, or a list of 1, 2 or 4 entries (1 for the batch and channels).
    padding : "SAME", "VALID" or list of 4 [before, after] pairs
        ``"SAME"``: output ``ceil(size / stride)``, the odd extra padding at the end;
        explicit: ``[[0, 0], [top, bottom], [left, right], [0, 0]]`` for ``"NHWC"``,
        ``[[0, 0], [0, 0], [top, bottom], [left, right]]`` for ``"NCHW"``.
    data_format : {"NHWC", "NCHW"}, default "NHWC"
    dilations : int or list of int, optional
        As ``strides``.
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    ndarray or str

    Raises
    ------
    ValueError, TypeError
        For invalid arguments; the message names the parameter and its value.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import tf
    >>> x, filters = np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 4))
    >>> print(tf.conv2d(x, filters, 2, [[0, 0], [1, 0], [1, 1], [0, 0]], explain=True))
    fastdeconv.conv(input, filters, stride=(2, 2), padding=((1, 0), (1, 1)), data_format='NHWC', weight_format='HWIO')
    >>> tf.conv2d(x, filters, 2, "SAME").shape
    (1, 3, 3, 4)
    """
    return _conv(2, input, filters, strides, padding, data_format, dilations,
                 True).finish(explain)


def conv3d(input, filters, strides, padding, data_format="NDHWC", dilations=None,
           explain=False):
    """``tf.nn.conv3d``: 3-d convolution (cross-correlation), channels-last by default.

    Parameters
    ----------
    input : array_like, shape (N, D, H, W, C) or (N, C, D, H, W) for "NCDHW"
    filters : array_like, shape (kD, kH, kW, C / groups, C_out)
    strides : int or list of int
        A list of 5 entries in TensorFlow (1 for the batch and channels); one int or 1 or 3
        entries are accepted too.
    padding : {"SAME", "VALID"}
    data_format : {"NDHWC", "NCDHW"}, default "NDHWC"
    dilations : int or list of int, optional
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    ndarray or str

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import tf
    >>> x, filters = np.ones((1, 4, 4, 4, 1)), np.ones((2, 2, 2, 1, 3))
    >>> tf.conv3d(x, filters, [1, 2, 2, 2, 1], "VALID").shape
    (1, 2, 2, 2, 3)
    """
    return _conv(3, input, filters, strides, padding, data_format, dilations,
                 False).finish(explain)


def _transpose_padding(padding, n_in, n_out, k_eff, stride, dim, output_shape):
    """The forward convolution's ``(before, after)`` on the output size ``n_out`` (TF's
    ``conv2d_backprop_input``), checked to map ``n_out`` back onto ``n_in``."""
    if padding == "SAME":
        total = max((-(-n_out // stride) - 1) * stride + k_eff - n_out, 0)
        pair = (total // 2, total - total // 2)
    elif padding == "VALID":
        pair = (0, 0)
    else:
        pair = padding[dim]
    padded = n_out + sum(pair)
    if padded < k_eff or (padded - k_eff) // stride + 1 != n_in:
        raise ValueError(
            f"output_shape {list(output_shape)} does not fit the input: the convolution with "
            f"padding {padding!r}, stride {stride} and kernel extent {k_eff} of an output of "
            f"size {n_out} along spatial dimension {dim} has size "
            f"{max((padded - k_eff) // stride + 1, 0)}, not the input's {n_in}")
    return pair


def _conv_transpose(n, input, filters, output_shape, strides, padding, data_format, dilations,
                    explicit_allowed):
    input, filters = _input(input, "input", n), _filters(filters, n)
    data_format, last = _data_format(data_format, n)
    stride = _sequence(strides, n, last, "strides")
    dilation = _sequence(dilations, n, last, "dilations")
    padding = _padding(padding, n, last, explicit_allowed)
    shape = ints(output_shape, "output_shape", n + 2, minimum=0)
    channels = input.shape[-1] if last else input.shape[1]
    out_channels = shape[-1] if last else shape[1]
    if filters.shape[n + 1] != channels:
        raise ValueError(f"the filters' in_channels (last axis, {filters.shape[n + 1]}; filters "
                         f"are [*kernel, out, in]) must equal the input channels ({channels})")
    if filters.shape[n] != out_channels or shape[0] != input.shape[0]:
        raise ValueError(f"output_shape {list(shape)} must have the input's batch "
                         f"({input.shape[0]}) and the filters' out_channels "
                         f"({filters.shape[n]}) in the order of data_format {data_format!r}")
    in_size = input.shape[1:-1] if last else input.shape[2:]
    out_size = shape[1:-1] if last else shape[2:]
    kernel = filters.shape[:n]
    k_effs = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    pairs = tuple(_transpose_padding(padding, *sizes, dim, shape) for dim, sizes in enumerate(
        zip(in_size, out_size, k_effs, stride)))
    output_padding = tuple(o + b + a - k - (i - 1) * s for o, (b, a), k, i, s in zip(
        out_size, pairs, k_effs, in_size, stride))
    same, implied = resolve_padding("same", tuple(in_size), tuple(kernel), stride, dilation,
                                    transpose=True)
    if same == pairs and tuple(implied) == output_padding and any(map(any, pairs)):
        keywords = dict(padding="same")
    else:
        keywords = dict(padding=padding_keyword(pairs), output_padding=output_padding)
    return canonical_call(
        "conv_transpose", [Operand("input", input), Operand("filters", filters)],
        dict(stride=stride, **keywords, dilation=dilation, data_format=data_format,
             weight_format=_weight_format(n, True)))


_TRANSPOSE_DOC = """``tf.nn.conv{n}d_transpose``: the gradient of ``conv{n}d`` with respect to its input.

    The transposed convolution that maps ``input`` onto an array of ``output_shape``: the
    adjoint of ``tf.nn.conv{n}d(y, filters, strides, padding)`` for ``y`` of that shape, so the
    padding is the one that convolution uses on ``output_shape`` (``"SAME"``: total
    ``max((ceil(out / s) - 1) s + k - out, 0)``, the odd extra at the end), and
    ``output_shape`` picks among the sizes that convolve back to the input's.

    Parameters
    ----------
    input : array_like, shape {input_shape}
    filters : array_like, shape {filters_shape}
        ``[*kernel, out, in]`` (``"{letters}OI"``), the forward convolution's filters.
    output_shape : sequence of int
        The full output shape, in the order of ``data_format``.
    strides : int or list of int
        One int, or a list of 1, {n} or {n2} entries (1 for the batch and channels).
    padding : {padding}
    data_format : {{{formats}}}, default "{default}"
    dilations : int or list of int, optional
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    ndarray of shape ``output_shape``, or str

    Raises
    ------
    ValueError, TypeError
        For invalid arguments and an ``output_shape`` that does not convolve back to the
        input's shape; the message names the parameter and its value.
"""


def conv1d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NWC",
                     dilations=None, explain=False):
    return _conv_transpose(1, input, filters, output_shape, strides, padding, data_format,
                           dilations, False).finish(explain)


def conv2d_transpose(input, filters, output_shape, strides, padding="SAME",
                     data_format="NHWC", dilations=None, explain=False):
    return _conv_transpose(2, input, filters, output_shape, strides, padding, data_format,
                           dilations, True).finish(explain)


def conv3d_transpose(input, filters, output_shape, strides, padding="SAME",
                     data_format="NDHWC", dilations=None, explain=False):
    return _conv_transpose(3, input, filters, output_shape, strides, padding, data_format,
                           dilations, False).finish(explain)


_EXAMPLES = {
    1: '''
    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import tf
    >>> tf.conv1d_transpose(np.ones((1, 3, 2)), np.ones((3, 4, 2)), [1, 6, 4], 2).shape
    (1, 6, 4)
    ''',
    2: '''
    Examples
    --------
    Any output size that convolves back to the input's: 7 and 8 both give 4 with stride 2.

    >>> import numpy as np
    >>> from fastdeconv.compat import tf
    >>> x, filters = np.ones((1, 4, 4, 3)), np.ones((3, 3, 2, 3))
    >>> print(tf.conv2d_transpose(x, filters, [1, 7, 8, 2], 2, explain=True))
    fastdeconv.conv_transpose(input, filters, stride=(2, 2), padding=((1, 1), (0, 1)), data_format='NHWC', weight_format='HWOI')
    >>> tf.conv2d_transpose(x, filters, [1, 7, 8, 2], 2).shape
    (1, 7, 8, 2)
    ''',
    3: '''
    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import tf
    >>> x, filters = np.ones((1, 2, 2, 2, 3)), np.ones((2, 2, 2, 1, 3))
    >>> tf.conv3d_transpose(x, filters, [1, 4, 4, 4, 1], 2, "VALID").shape
    (1, 4, 4, 4, 1)
    ''',
}
for _n, _function in ((1, conv1d_transpose), (2, conv2d_transpose), (3, conv3d_transpose)):
    _last, _first = _FORMATS[_n]
    _letters = SPATIAL_LETTERS[_n]
    _function.__doc__ = _TRANSPOSE_DOC.format(
        n=_n, n2=_n + 2, letters=_letters, default=_last,
        formats=f'"{_last}", "{_first}"',
        input_shape=f"(N, {', '.join(_letters)}, C_in) or channels-first",
        filters_shape=f"({', '.join('k' + c for c in _letters)}, C_out, C_in)",
        padding=('"SAME", "VALID" or a list of 4 [before, after] pairs (zero for the batch '
                 'and channels)') if _n == 2 else '{"SAME", "VALID"}, default "SAME"',
    ) + _EXAMPLES[_n]


# ------------------------------------------------------------------------ resize
def _images(images):
    images = array(images, "images")
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be 4-d (N, H, W, C) or 3-d (H, W, C), got shape "
                         f"{images.shape}")
    return images


def _aspect_size(size, height, width):
    """TensorFlow's ``preserve_aspect_ratio`` size: one float32 scale, rounded half to even."""
    scale = min(np.float32(size[0]) / np.float32(height), np.float32(size[1]) / np.float32(width))
    return tuple(int(np.round(np.float32(scale) * np.float32(n))) for n in (height, width))


def _area_is_exact(in_size, out_size):
    return all(o % i == 0 or i % o == 0 for i, o in zip(in_size, out_size))


def resize(images, size, method="bilinear", antialias=False, preserve_aspect_ratio=False,
           explain=False):
    """``tf.image.resize`` (TensorFlow 2): resize NHWC images.

    Parameters
    ----------
    images : array_like, shape (N, H, W, C) or (H, W, C)
    size : sequence of 2 int
        ``(new_height, new_width)``.
    method : {"bilinear", "nearest", "bicubic", "area"}, default "bilinear"
        With half-pixel centres: bilinear (edge pixels repeated), nearest (rounding
        ``(o + 0.5) * in / out`` down), Keys' bicubic with ``a = -0.5`` and the taps outside
        the image dropped, and area (box averaging; exact for sizes that divide or are
        divided by the input size). ``"lanczos3"``, ``"lanczos5"``, ``"gaussian"`` and
        ``"mitchellcubic"`` raise NotImplementedError.
    antialias : bool, default False
        Widen the bilinear / bicubic filter when downsampling (no effect on the others).
    preserve_aspect_ratio : bool, default False
        Scale both axes by the smaller of the two ratios, rounding the sizes half to even in
        float32 as TensorFlow does.
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    ndarray or str
        The resized images, 4-d or 3-d like ``images``.

    Raises
    ------
    NotImplementedError
        For the methods fastdeconv.resize does not express, and ``"area"`` between sizes
        that do not divide each other (TensorFlow's fractional box filter).
    ValueError, TypeError
        For invalid arguments; the message names the parameter and its value.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import tf
    >>> images = np.arange(4.0).reshape(1, 1, 4, 1)
    >>> tf.resize(images, (1, 8))[0, 0, :, 0].tolist()
    [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]
    >>> print(tf.resize(images, (2, 2), "bicubic", explain=True))
    fastdeconv.resize(images, size=(2, 2), mode='cubic', coordinate_transformation_mode='half_pixel', cubic_coeff_a=-0.5, exclude_outside=True, data_format='channels_last')
    """
    images = _images(images)
    size = ints(size, "size", 2, minimum=1)
    if not isinstance(method, str):
        method = getattr(method, "value", method)   # a tf.image.ResizeMethod
    if isinstance(method, str) and method.lower() in _OTHER_METHODS:
        raise NotImplementedError(f"method={method!r} has no fastdeconv.resize equivalent; "
                                  f"supported: {', '.join(RESIZE_METHODS)}")
    method = choice(method, "method", tuple(RESIZE_METHODS) + _OTHER_METHODS)
    for flag, name in ((antialias, "antialias"), (preserve_aspect_ratio,
                                                   "preserve_aspect_ratio")):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    height, width = images.shape[-3:-1]
    if preserve_aspect_ratio:
        size = _aspect_size(size, height, width)
    if method == "area" and not _area_is_exact((height, width), size):
        raise NotImplementedError(
            f"method='area' from {(height, width)} to {tuple(size)}: TensorFlow's area filter "
            f"weighs fractional pixel overlaps, fastdeconv's 'area' (adaptive average pooling) "
            f"whole pixels; they agree only when the sizes divide each other")
    keywords = dict((_ANTIALIASED if antialias else RESIZE_METHODS).get(method,
                                                                         RESIZE_METHODS[method]))
    batch = images.ndim == 4
    operand = Operand("images", images) if batch else Operand("images[None]", images[None])
    return canonical_call("resize", [operand], dict(
        size=tuple(size), **keywords, data_format="channels_last"),
        [] if batch else [Step.crop((0,))]).finish(explain)


# ------------------------------------------------------------------------ depth_to_space
def depth_to_space(input, block_size, data_format="NHWC", explain=False):
    """``tf.nn.depth_to_space``: move blocks of channels into ``block_size`` x ``block_size``
    pixels (DCR order: the block position varies slowest in the channel index).

    Parameters
    ----------
    input : array_like, shape (N, H, W, C) or (N, C, H, W) for "NCHW"
        ``C`` divisible by ``block_size ** 2``.
    block_size : int
        At least 2.
    data_format : {"NHWC", "NCHW"}, default "NHWC"
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    ndarray, shape (N, H * block_size, W * block_size, C / block_size ** 2), or str

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import tf
    >>> x = np.arange(8.0).reshape(1, 1, 1, 8)
    >>> tf.depth_to_space(x, 2)[0, :, :, 1].tolist()
    [[1.0, 3.0], [5.0, 7.0]]
    >>> print(tf.depth_to_space(x, 2, explain=True))
    fastdeconv.pixel_shuffle(input, upscale_factor=2, order='DCR', data_format='NHWC')
    """
    input = _input(input, "input", 2)
    block_size = int_value(block_size, "block_size", 2)
    data_format = choice(data_format, "data_format", ("NHWC", "NCHW"))
    channels = input.shape[-1] if data_format == "NHWC" else input.shape[1]
    if channels % (block_size * block_size):
        raise ValueError(f"the channels of input ({channels}) must be divisible by "
                         f"block_size ** 2 = {block_size * block_size}")
    return canonical_call("pixel_shuffle", [Operand("input", input)],
                          dict(upscale_factor=block_size, order="DCR",
                               data_format=data_format)).finish(explain)


del _n, _function, _last, _first, _letters
