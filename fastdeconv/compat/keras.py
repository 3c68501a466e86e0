"""Keras 3's ``keras.ops.conv``, ``keras.ops.conv_transpose`` and ``UpSampling2D``.

Functions with Keras 3's signatures and semantics on NumPy arrays: ``data_format=None`` is
``"channels_last"`` (Keras's default ``image_data_format``; these functions do not read the
Keras configuration), kernels ``(*kernel, in / groups, out)`` for ``conv`` (``"HWIO"``) and
``(*kernel, out, in)`` for ``conv_transpose`` (``"HWOI"``, the kernel of the forward
convolution it is the gradient of), paddings ``"valid"`` / ``"same"``. ``conv_transpose``
follows Keras's output-length rules for ``padding`` x ``output_padding`` as its JAX backend
computes them (``keras.src.backend.common.backend_utils``; the backends disagreed for
``"same"`` with ``output_padding`` before, keras-core#774, keras#20949), through
:func:`fastdeconv.compat.jax.conv_transpose` with ``transpose_kernel=True``. Each maps onto
one fastdeconv call; ``explain=True`` returns it as text.

>>> import numpy as np
>>> from fastdeconv.compat import keras
>>> inputs, kernel = np.ones((1, 4, 4, 3)), np.ones((3, 3, 2, 3))
>>> print(keras.conv_transpose(inputs, kernel, 2, "same", explain=True))
fastdeconv.conv_transpose(inputs, kernel, stride=(2, 2), padding='same', data_format='channels_last', weight_format='HWOI')
"""

import numpy as np

from .._formats import SPATIAL_LETTERS
from ._arguments import array, choice, int_value, ints
from ._call import Operand, canonical_call
from .jax import conv_transpose_call

__all__ = ["conv", "conv_transpose", "upsampling"]

DATA_FORMATS = ("channels_last", "channels_first")
PADDINGS = ("valid", "same")
#: UpSampling2D's interpolations as fastdeconv.resize keywords (integer factors)
UPSAMPLING = {
    "nearest": dict(),
    "bilinear": dict(mode="linear"),
    "bicubic": dict(mode="cubic", coordinate_transformation_mode="half_pixel",
                    cubic_coeff_a=-0.5, exclude_outside=True),
}
_NOT_EXPRESSIBLE = ("lanczos3", "lanczos5")


def _data_format(data_format):
    return "channels_last" if data_format is None else choice(
        data_format, "data_format", DATA_FORMATS)


def _padding(padding):
    if not isinstance(padding, str):
        raise TypeError(f"padding must be 'valid' or 'same', got {padding!r}")
    return choice(padding.lower(), "padding", PADDINGS)


def _tuple(value, n, name, minimum=1):
    """One int for every spatial dimension, or a sequence of ``n`` ints."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return ints(value, name, n, minimum=minimum)
    return (int_value(value, name, minimum),) * n


def _operands(inputs, kernel):
    inputs, kernel = array(inputs, "inputs"), array(kernel, "kernel")
    if inputs.ndim not in (3, 4, 5):
        raise ValueError(f"inputs must have 1 to 3 spatial dimensions (rank 3 to 5), got shape "
                         f"{inputs.shape}")
    if kernel.ndim != inputs.ndim:
        raise ValueError(f"kernel must have the rank of inputs ({inputs.ndim}): (*kernel_size, "
                         f"in, out) or, transposed, (*kernel_size, out, in); got shape "
                         f"{kernel.shape}")
    return inputs, kernel, inputs.ndim - 2


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1,
         explain=False):
    r"""``keras.ops.conv``: N-d convolution (cross-correlation), channels-last by default.

    Parameters
    ----------
    inputs : array_like, shape (N, \*spatial, C) or (N, C, \*spatial) for "channels_first"
        1 to 3 spatial dimensions.
    kernel : array_like, shape (\*kernel_size, C / groups, C_out)
        Fewer input channels than ``inputs`` has make a grouped convolution.
    strides : int or tuple of int, default 1
    padding : {"valid", "same"}, default "valid"
        ``"same"``: output ``ceil(size / stride)``, the odd extra padding at the end.
    data_format : {"channels_last", "channels_first"}, optional
        None is ``"channels_last"``.
    dilation_rate : int or tuple of int, default 1
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
    >>> from fastdeconv.compat import keras
    >>> inputs, kernel = np.ones((1, 5, 5, 4)), np.ones((3, 3, 2, 6))   # 2 groups
    >>> print(keras.conv(inputs, kernel, 2, "same", explain=True))
    fastdeconv.conv(inputs, kernel, stride=(2, 2), padding='same', groups=2, data_format='channels_last', weight_format='HWIO')
    >>> keras.conv(inputs, kernel, 2, "same").shape
    (1, 3, 3, 6)
    """
    inputs, kernel, n = _operands(inputs, kernel)
    data_format = _data_format(data_format)
    channels = inputs.shape[-1] if data_format == "channels_last" else inputs.shape[1]
    kernel_in = kernel.shape[-2]
    if kernel_in == 0 or channels % kernel_in:
        raise ValueError(f"the input channels ({channels}) must be divisible by the kernel's "
                         f"in_channels ({kernel_in}, kernel shape {kernel.shape})")
    groups = channels // kernel_in
    if kernel.shape[-1] % groups:
        raise ValueError(f"the kernel's out_channels ({kernel.shape[-1]}) must be divisible "
                         f"by the number of groups {groups}")
    keywords = dict(stride=_tuple(strides, n, "strides"), padding=_padding(padding),
                    dilation=_tuple(dilation_rate, n, "dilation_rate"), groups=groups,
                    data_format=data_format, weight_format=SPATIAL_LETTERS[n] + "IO")
    if keywords["padding"] == "valid":
        keywords["padding"] = 0
    return canonical_call("conv", [Operand("inputs", inputs), Operand("kernel", kernel)],
                          keywords).finish(explain)


def _jax_padding(kernel_size, stride, dilation, padding, output_padding):
    """Keras's ``_convert_conv_transpose_padding_args_from_keras_to_jax``: ``(left, right)``
    padding of the dilated input of ``jax.lax.conv_transpose``."""
    k = (kernel_size - 1) * dilation + 1
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        return k - 1, k - 1 + extra
    total = stride + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
    left = min(total // 2 + total % 2, k - 1)
    return left, total - left


def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None,
                   data_format=None, dilation_rate=1, explain=False):
    r"""``keras.ops.conv_transpose``: the transpose (gradient) of ``keras.ops.conv``.

    Parameters
    ----------
    inputs : array_like, shape (N, \*spatial, C) or (N, C, \*spatial) for "channels_first"
    kernel : array_like, shape (\*kernel_size, C_out, C)
        ``"HWOI"``: the kernel of the forward convolution this is the transpose of.
    strides : int or tuple of int, default 1
    padding : {"valid", "same"}, default "valid"
    output_padding : int or tuple of int, optional
        Keras's output-length rules per spatial dimension (``k`` the dilated kernel
        extent): ``"valid"``: ``(in - 1) * s + max(k, s)``, or ``(in - 1) * s + k +
        output_padding``; ``"same"``: ``in * s``, or ``(in - 1) * s + k % 2 +
        output_padding``.
    data_format : {"channels_last", "channels_first"}, optional
        None is ``"channels_last"``.
    dilation_rate : int or tuple of int, default 1
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
    ``Conv2DTranspose(filters=2, kernel_size=3, strides=2, padding="same")`` doubles the
    size; with ``output_padding=0`` it is ``(in - 1) * 2 + 1``:

    >>> import numpy as np
    >>> from fastdeconv.compat import keras
    >>> inputs, kernel = np.ones((1, 4, 4, 3)), np.ones((3, 3, 2, 3))
    >>> keras.conv_transpose(inputs, kernel, 2, "same").shape
    (1, 8, 8, 2)
    >>> print(keras.conv_transpose(inputs, kernel, 2, "same", output_padding=0, explain=True))
    fastdeconv.conv_transpose(inputs, kernel, stride=(2, 2), padding=1, data_format='channels_last', weight_format='HWOI')
    """
    inputs, kernel, n = _operands(inputs, kernel)
    data_format = _data_format(data_format)
    padding = _padding(padding)
    strides = _tuple(strides, n, "strides")
    dilation = _tuple(dilation_rate, n, "dilation_rate")
    extra = (None,) * n if output_padding is None else _tuple(output_padding, n,
                                                              "output_padding", minimum=0)
    channels = inputs.shape[-1] if data_format == "channels_last" else inputs.shape[1]
    if kernel.shape[-1] != channels:
        raise ValueError(f"the kernel's last axis (in_channels, {kernel.shape[-1]}; the kernel "
                         f"is (*kernel_size, out, in)) must equal the input channels "
                         f"({channels})")
    pads = [_jax_padding(k, s, d, padding, e)
            for k, s, d, e in zip(kernel.shape[:n], strides, dilation, extra)]
    spatial = tuple(range(1, n + 1)) if data_format == "channels_last" else tuple(
        range(2, n + 2))
    channel = n + 1 if data_format == "channels_last" else 1
    lhs_perm = (0, channel) + spatial
    dimension_numbers = (lhs_perm, (n + 1, n) + tuple(range(n)), lhs_perm)
    return conv_transpose_call(inputs, kernel, strides, pads, dilation, dimension_numbers,
                               transpose_kernel=True,
                               names=("inputs", "kernel")).finish(explain)


def upsampling(x, size, interpolation="nearest", data_format=None, explain=False):
    """``keras.layers.UpSampling2D(size, data_format, interpolation)(x)``.

    Parameters
    ----------
    x : array_like, shape (N, H, W, C) or (N, C, H, W) for "channels_first"
    size : int or tuple of 2 int
        Integer upsampling factors of the rows and columns.
    interpolation : {"nearest", "bilinear", "bicubic"}, default "nearest"
        ``"nearest"`` repeats rows and columns; ``"bilinear"`` and ``"bicubic"`` are
        ``keras.ops.image.resize``'s (half-pixel centres; Keys' cubic with ``a = -0.5``, taps
        outside the image dropped). ``"lanczos3"`` and ``"lanczos5"`` raise
        NotImplementedError.
    data_format : {"channels_last", "channels_first"}, optional
        None is ``"channels_last"``.
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    ndarray or str

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import keras
    >>> x = np.arange(4.0).reshape(1, 2, 2, 1)
    >>> keras.upsampling(x, 2)[0, :, :, 0].tolist()
    [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0]]
    >>> print(keras.upsampling(x, (2, 3), "bilinear", explain=True))
    fastdeconv.resize(x, scale_factor=(2, 3), mode='linear', data_format='channels_last')
    """
    x = array(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-d (N, H, W, C) or (N, C, H, W), got shape {x.shape}")
    factors = _tuple(size, 2, "size")
    if not isinstance(interpolation, str):
        raise TypeError(f"interpolation must be a string, got {interpolation!r}")
    interpolation = interpolation.lower()
    if interpolation in _NOT_EXPRESSIBLE:
        raise NotImplementedError(f"interpolation={interpolation!r} has no fastdeconv.resize "
                                  f"equivalent; supported: {', '.join(UPSAMPLING)}")
    interpolation = choice(interpolation, "interpolation", tuple(UPSAMPLING) + _NOT_EXPRESSIBLE)
    return canonical_call("resize", [Operand("x", x)], dict(
        scale_factor=factors, **UPSAMPLING[interpolation],
        data_format=_data_format(data_format))).finish(explain)
