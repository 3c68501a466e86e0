"""ONNX operators with the ONNX specification's signatures and semantics (opset 19 and later).

``Conv``, ``ConvTranspose``, ``Resize``, ``DepthToSpace`` and ``MaxUnpool`` as functions of
NumPy arrays: the node's inputs are positional arguments (ONNX's input names), its attributes
keyword arguments (ONNX's attribute names, defaults and list formats, e.g. ``pads`` as
``[x1_begin, x2_begin, ..., x1_end, x2_end]``). ONNX is channels-first like fastdeconv, and its
weights have PyTorch's layouts (``Conv``: ``(M, C / group, *kernel)``, ``ConvTranspose``:
``(C, M / group, *kernel)``), so every function maps onto one fastdeconv call with the same
operands; ``explain=True`` returns that call as text instead of computing it.

Results follow fastdeconv's dtype policy (float32 for float16 and float32 inputs, float64
otherwise). What fastdeconv cannot express raises ``NotImplementedError`` that names the
attribute (e.g. ``Resize``'s ``tf_crop_and_resize``); invalid attributes raise ``ValueError``
or ``TypeError`` that name the attribute and its value.

>>> import numpy as np
>>> from fastdeconv.compat import onnx
>>> X = np.arange(9.0).reshape(1, 1, 3, 3)
>>> W = np.ones((1, 1, 3, 3))
>>> onnx.conv_transpose(X, W, strides=[2, 2], auto_pad="SAME_UPPER", explain=True)
"fastdeconv.conv_transpose(X, W, stride=(2, 2), padding='same')"
>>> onnx.conv_transpose(X, W, strides=[2, 2], auto_pad="SAME_UPPER").shape
(1, 1, 6, 6)
"""

import math
import numbers

import numpy as np

from ._arguments import array, choice, flag, int_value, ints, per_axis, spatial_rank
from ._call import Operand, Step, canonical_call, render

__all__ = ["conv", "conv_transpose", "depth_to_space", "max_unpool", "resize"]

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
RESIZE_MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                    "asymmetric", "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
ASPECT_RATIO_POLICIES = ("stretch", "not_larger", "not_smaller")
DEPTH_TO_SPACE_MODES = ("DCR", "CRD")


def _conv_attributes(X, W, kernel_shape, strides, dilations, group):
    """The operands and the attributes that Conv and ConvTranspose share, checked."""
    X, W = array(X, "X"), array(W, "W")
    n = spatial_rank(X, "X")
    if W.ndim != n + 2:
        raise ValueError(f"W must have {n + 2} dimensions like X (shape {X.shape}), got shape "
                         f"{W.shape}")
    if kernel_shape is not None:
        kernel = ints(kernel_shape, "kernel_shape", n, minimum=1)
        if kernel != W.shape[2:]:
            raise ValueError(f"kernel_shape {list(kernel)} does not match the spatial shape "
                             f"{list(W.shape[2:])} of W (shape {W.shape})")
    stride = per_axis(strides, "strides", n, 1, minimum=1)
    dilation = per_axis(dilations, "dilations", n, 1, minimum=1)
    return X, W, n, stride, dilation, int_value(group, "group", 1)


def _pad_pairs(pads, n):
    """ONNX ``pads`` ``[x1_begin, ..., xn_begin, x1_end, ..., xn_end]`` as (before, after) pairs."""
    values = ints(pads, "pads", 2 * n, minimum=0)
    return tuple(zip(values[:n], values[n:]))


def _padding_keyword(pairs):
    """fastdeconv's ``padding``: 0, one int per dimension, or (before, after) pairs."""
    if all(before == after for before, after in pairs):
        return tuple(before for before, _ in pairs)
    return pairs


def _auto_pad(auto_pad, pads, n):
    auto_pad = choice(auto_pad, "auto_pad", AUTO_PADS)
    pairs = ((0, 0),) * n if pads is None else _pad_pairs(pads, n)
    if auto_pad != "NOTSET" and any(map(any, pairs)):
        raise ValueError(f"pads cannot be used together with auto_pad={auto_pad!r} (ONNX "
                         f"spec), got pads={list(pads)}")
    return auto_pad, pairs


def _conv_operands(X, W, B):
    operands = [Operand("X", X), Operand("W", W)]
    if B is not None:
        operands.append(Operand("B", B))
    return operands


# ------------------------------------------------------------------------ Conv
def conv(X, W, B=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
         pads=None, strides=None, explain=False):
    """ONNX ``Conv``: N-d convolution (cross-correlation), channels first.

    Parameters
    ----------
    X : array_like, shape (N, C, D1, ..., Dn)
        Input, 1 to 3 spatial dimensions.
    W : array_like, shape (M, C / group, k1, ..., kn)
        Weight.
    B : array_like, shape (M,), optional
        Bias.
    auto_pad : {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}, default "NOTSET"
        ``"NOTSET"`` uses ``pads``; ``"SAME_UPPER"`` / ``"SAME_LOWER"`` pad so that the output
        has ``ceil(D / stride)`` positions, the odd extra position at the end / at the
        beginning; ``"VALID"`` does not pad.
    dilations, strides : list of int, optional
        One per spatial axis; default 1.
    group : int, default 1
    kernel_shape : list of int, optional
        Checked against ``W.shape[2:]``.
    pads : list of int, optional
        ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]``; default 0. Not with ``auto_pad``.
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    Y : ndarray, shape (N, M, O1, ..., On), or str
        The result, or with ``explain=True`` the call
        ``fastdeconv.conv(X, W, B, stride=..., padding=..., dilation=..., groups=...)``.

    Raises
    ------
    ValueError, TypeError
        For invalid attributes (the message names the attribute and its value) and operand
        shapes that do not fit.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import onnx
    >>> X, W = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))
    >>> onnx.conv(X, W, pads=[1, 0, 1, 0], strides=[2, 2], explain=True)
    'fastdeconv.conv(X, W, stride=(2, 2), padding=(1, 0))'
    >>> onnx.conv(X, W, auto_pad="SAME_LOWER", strides=[2, 2])[0, 0].tolist()
    [[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]
    """
    X, W, n, stride, dilation, group = _conv_attributes(X, W, kernel_shape, strides,
                                                        dilations, group)
    auto_pad, pairs = _auto_pad(auto_pad, pads, n)
    padding = {"NOTSET": _padding_keyword(pairs), "VALID": "valid", "SAME_UPPER": "same",
               "SAME_LOWER": "same_lower"}[auto_pad]
    call = canonical_call("conv", _conv_operands(X, W, B),
                          dict(stride=stride, padding=padding, dilation=dilation, groups=group))
    return call.finish(explain)


# ------------------------------------------------------------------------ ConvTranspose
def _transpose_pads(total, upper):
    """Split a total padding as the ConvTranspose spec does: the odd extra at the end for
    ``SAME_UPPER``, at the beginning otherwise."""
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


def conv_transpose(X, W, B=None, *, auto_pad="NOTSET", dilations=None, group=1,
                   kernel_shape=None, output_padding=None, output_shape=None, pads=None,
                   strides=None, explain=False):
    """ONNX ``ConvTranspose``: the transpose (adjoint) of ``Conv``, channels first.

    Parameters
    ----------
    X : array_like, shape (N, C, D1, ..., Dn)
        Input, 1 to 3 spatial dimensions.
    W : array_like, shape (C, M / group, k1, ..., kn)
        Weight (the layout of the ``Conv`` it transposes).
    B : array_like, shape (M,), optional
        Bias.
    auto_pad : {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}, default "NOTSET"
        ``"SAME_UPPER"`` / ``"SAME_LOWER"`` choose the pads so that the output has
        ``D * stride`` positions (the odd extra padding at the end / at the beginning).
    dilations, strides : list of int, optional
        One per spatial axis; default 1.
    group : int, default 1
    kernel_shape : list of int, optional
        Checked against ``W.shape[2:]``.
    output_padding : list of int, optional
        Extra positions at the end of each axis, below ``max(stride, dilation)``; default 0.
    output_shape : list of int, optional
        Spatial output shape: the pads are then computed (and ``pads`` ignored) from
        ``total = stride * (D - 1) + output_padding + (k - 1) * dilation + 1 - output_shape``,
        split with the odd extra at the end for ``"SAME_UPPER"`` and at the beginning
        otherwise. A negative total (an output larger than the full transposed convolution)
        appends zeros (plus the bias) at the end, as ONNX Runtime does.
    pads : list of int, optional
        ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]``: positions removed from the full
        transposed convolution; default 0. Not with ``auto_pad``.
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    Y : ndarray, shape (N, M, O1, ..., On), or str
        ``O = stride * (D - 1) + output_padding + (k - 1) * dilation + 1 - begin - end``, or
        with ``explain=True`` the call ``fastdeconv.conv_transpose(X, W, B, ...)``.

    Raises
    ------
    ValueError, TypeError
        For invalid attributes (the message names the attribute and its value), an
        ``output_shape`` larger than the full transposed convolution by ``max(stride,
        dilation)`` or more, and a ``"SAME_*"``
        padding with ``(k - 1) * dilation + 1 + output_padding < stride``, whose negative
        total padding the specification leaves undefined (ONNX Runtime clamps it to 0, the
        ONNX reference implementation pads at the beginning): give ``pads`` instead.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import onnx
    >>> X, W = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3))
    >>> onnx.conv_transpose(X, W, strides=[3, 2], output_shape=[8, 6], explain=True)
    'fastdeconv.conv_transpose(X, W, stride=(3, 2), padding=((1, 0), (1, 0)))'
    >>> onnx.conv_transpose(X, W, strides=[3, 2], output_shape=[8, 6]).shape
    (1, 1, 8, 6)
    """
    X, W, n, stride, dilation, group = _conv_attributes(X, W, kernel_shape, strides,
                                                        dilations, group)
    extra = per_axis(output_padding, "output_padding", n, 0, minimum=0)
    auto_pad = choice(auto_pad, "auto_pad", AUTO_PADS)
    full = tuple(s * (d_in - 1) + op + (k - 1) * d + 1 for s, d_in, op, k, d in
                 zip(stride, X.shape[2:], extra, W.shape[2:], dilation))
    padding = None
    if output_shape is not None:
        out = ints(output_shape, "output_shape", n, minimum=1)
        totals = tuple(max(f - o, 0) for f, o in zip(full, out))
        # A larger output_shape appends positions at the end (ONNX Runtime, and the backend
        # test test_convtranspose_output_shape): more output padding.
        extra = tuple(op + max(o - f, 0) for op, o, f in zip(extra, out, full))
        if any(op >= max(s, d) for op, s, d in zip(extra, stride, dilation)):
            raise ValueError(
                f"output_shape {list(out)} is larger than the full transposed convolution "
                f"{list(full)} (stride * (in - 1) + output_padding + (kernel - 1) * dilation "
                f"+ 1) by max(stride, dilation) or more along an axis: no input of this size "
                f"gives that output")
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        _auto_pad(auto_pad, pads, n)
        totals = tuple(f - d_in * s for f, d_in, s in zip(full, X.shape[2:], stride))
        if min(totals) < 0:
            raise ValueError(
                f"auto_pad={auto_pad!r} needs the total padding (kernel - 1) * dilation + 1 + "
                f"output_padding - stride, here {list(totals)}, which is negative: the ONNX "
                f"specification leaves that undefined (pads must be >= 0; ONNX Runtime clamps "
                f"it to 0, the ONNX reference implementation pads at the beginning); give "
                f"pads instead (pads={[0] * 2 * n} is ONNX Runtime's result)")
        if not any(extra):   # fastdeconv's own "same" / "same_lower" is this rule
            padding = "same" if auto_pad == "SAME_UPPER" else "same_lower"
    else:
        _, pairs = _auto_pad(auto_pad, pads, n)
        totals = None
        padding = _padding_keyword(pairs)
    if padding is None:
        upper = auto_pad == "SAME_UPPER"
        padding = _padding_keyword(tuple(_transpose_pads(t, upper) for t in totals))
    call = canonical_call(
        "conv_transpose", _conv_operands(X, W, B),
        dict(stride=stride, padding=padding, output_padding=extra, dilation=dilation,
             groups=group))
    return call.finish(explain)


# ------------------------------------------------------------------------ Resize
def _optional_vector(value, name, kind):
    """``scales`` / ``sizes``: None or an empty tensor means absent."""
    if value is None:
        return None
    tensor = array(value, name)
    if tensor.size == 0:
        return None
    if tensor.ndim != 1:
        raise ValueError(f"{name} must be a 1-d tensor, got shape {tensor.shape}")
    if kind == "int":
        return tuple(int_value(v, name, 1) for v in tensor.tolist())
    if not np.issubdtype(tensor.dtype, np.number) or np.iscomplexobj(tensor):
        raise TypeError(f"{name} must hold real numbers, got {tensor!r}")
    values = tuple(float(v) for v in tensor.tolist())
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must be positive and finite, got {list(values)}")
    return values


def _resize_axes(axes, rank, count, given):
    if axes is None:
        if count != rank:
            raise ValueError(f"{given} must have one entry per axis of X (rank {rank}) when axes "
                             f"is not given, got {count}")
        return tuple(range(rank))
    values = ints(axes, "axes", count)
    normalized = tuple(a + rank if a < 0 else a for a in values)
    if any(not 0 <= a < rank for a in normalized) or len(set(normalized)) != count:
        raise ValueError(f"axes must be distinct axes of X (rank {rank}), in [-{rank}, "
                         f"{rank - 1}], got {list(values)}")
    return normalized


def _edge_pixels(n, scale, want):
    """Pixels to append so that floor((n + m) * scale) reaches ``want`` (0 if it does)."""
    m = 0
    while math.floor((n + m) * scale) < want:
        m += 1
    return m


def _check_edge_padding(policy, grow, ctm, mode, antialias, exclude_outside):
    if ctm not in ("half_pixel", "asymmetric") or antialias or exclude_outside:
        raise NotImplementedError(
            f"keep_aspect_ratio_policy={policy!r} gives output sizes round(D * scale), not "
            f"floor(D * scale) as fastdeconv.resize (short by {grow}); appending edge pixels "
            f"makes up for it with coordinate_transformation_mode 'half_pixel' or 'asymmetric' "
            f"without antialias and exclude_outside only, not with {ctm!r}, mode={mode!r}, "
            f"antialias={int(antialias)}, exclude_outside={int(exclude_outside)}")


def resize(X, roi=None, scales=None, sizes=None, *, antialias=0, axes=None,
           coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
           extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
           nearest_mode="round_prefer_floor", explain=False):
    """ONNX ``Resize`` (opset 19): nearest, N-linear or N-cubic resampling.

    Parameters
    ----------
    X : array_like
        Input of any rank; the resized axes must be at most three trailing axes (all of them
        after the first two when ``X`` has 3 to 5 dimensions).
    roi : array_like, optional
        Only used by ``"tf_crop_and_resize"``, which is not supported; ignored otherwise.
    scales : array_like of float, optional
        One per axis of ``X`` (or of ``axes``): output size ``floor(D * scale)``, and the
        scale enters the coordinate formula. Give exactly one of ``scales`` and ``sizes``
        (an empty tensor counts as absent).
    sizes : array_like of int, optional
        Output sizes, one per axis of ``X`` (or of ``axes``); the scale is ``size / D``.
    antialias : {0, 1}, default 0
        Widen the ``"linear"`` / ``"cubic"`` filter when downsampling.
    axes : list of int, optional
        The axes ``scales`` / ``sizes`` refer to (negative counts from the back).
    coordinate_transformation_mode : str, default "half_pixel"
        ``"half_pixel"``, ``"half_pixel_symmetric"``, ``"pytorch_half_pixel"``,
        ``"align_corners"`` or ``"asymmetric"``; ``"tf_crop_and_resize"`` raises
        ``NotImplementedError``.
    cubic_coeff_a : float, default -0.75
        Keys' ``a`` for ``"cubic"``.
    exclude_outside : {0, 1}, default 0
        Zero weight for taps outside ``X``, renormalized (``"linear"`` and ``"cubic"``).
    extrapolation_value : float, default 0.0
        Only used by ``"tf_crop_and_resize"``.
    keep_aspect_ratio_policy : {"stretch", "not_larger", "not_smaller"}, default "stretch"
        How ``sizes`` is read; the other policies resize every axis by one scale.
    mode : {"nearest", "linear", "cubic"}, default "nearest"
    nearest_mode : {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}
        Rounding of ``"nearest"``.
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    Y : ndarray or str
        The result, or with ``explain=True`` the call ``fastdeconv.resize(X, ...)`` (with a
        reshape around it when the resized axes are not the axes after the first two).

    Raises
    ------
    NotImplementedError
        For ``"tf_crop_and_resize"``, resized axes that are not (at most three) trailing axes,
        and a ``keep_aspect_ratio_policy`` whose rounded output size ``round(D * scale)`` is
        not fastdeconv's ``floor(D * scale)`` unless appending edge pixels to ``X`` (and
        cropping the result) gives the same result: with ``"half_pixel"`` or
        ``"asymmetric"`` coordinates, without antialias and exclude_outside.
    ValueError, TypeError
        For invalid attributes and inputs (the message names them).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import onnx
    >>> X = np.arange(4.0).reshape(1, 1, 1, 4)
    >>> onnx.resize(X, scales=np.array([1, 1, 1, 2], np.float32), mode="linear").tolist()
    [[[[0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]]]]
    >>> onnx.resize(X, sizes=[3], axes=[-1], mode="nearest", explain=True)
    "fastdeconv.resize(X, size=(1, 3), coordinate_transformation_mode='half_pixel')"
    """
    X = array(X, "X")
    mode = choice(mode, "mode", RESIZE_MODES)
    ctm = choice(coordinate_transformation_mode, "coordinate_transformation_mode",
                  COORDINATE_MODES)
    nearest_mode = choice(nearest_mode, "nearest_mode", NEAREST_MODES)
    policy = choice(keep_aspect_ratio_policy, "keep_aspect_ratio_policy",
                     ASPECT_RATIO_POLICIES)
    antialias = flag(antialias, "antialias")
    exclude_outside = flag(exclude_outside, "exclude_outside")
    for name, value in (("cubic_coeff_a", cubic_coeff_a),
                        ("extrapolation_value", extrapolation_value)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
    if ctm == "tf_crop_and_resize":
        raise NotImplementedError(
            "coordinate_transformation_mode='tf_crop_and_resize' (resampling the region roi "
            "with extrapolation_value outside X) has no fastdeconv.resize equivalent")
    scales = _optional_vector(scales, "scales", "real")
    sizes = _optional_vector(sizes, "sizes", "int")
    if (scales is None) == (sizes is None):
        raise ValueError("give exactly one of scales and sizes"
                         + (" (both were given)" if scales is not None else ""))
    rank = X.ndim
    if rank == 0:
        raise ValueError("X must have at least one dimension, got a scalar")
    given = "scales" if scales is not None else "sizes"
    values = scales if scales is not None else sizes
    axes = _resize_axes(axes, rank, len(values), given)
    scale_full, size_full, grow = [1.0] * rank, list(X.shape), [0] * rank
    if scales is not None:
        for a, s in zip(axes, scales):
            scale_full[a] = s
        resized = [a for a in axes if scale_full[a] != 1.0]
    else:
        for a, s in zip(axes, sizes):
            size_full[a] = s
        if policy != "stretch":
            ratios = [size_full[a] / X.shape[a] for a in axes]
            scale = min(ratios) if policy == "not_larger" else max(ratios)
            for a in axes:
                size_full[a] = int(scale * X.shape[a] + 0.5)    # round half up
                scale_full[a] = scale
            sizes = None
            resized = [a for a in axes if scale_full[a] != 1.0]
            # the policy rounds D * scale, fastdeconv floors it: edge pixels appended to X
            # (which change nothing where ONNX clamps the taps to the edge) make up the rest
            grow = [_edge_pixels(*v) for v in zip(X.shape, scale_full, size_full)]
        else:
            resized = [a for a in axes if size_full[a] != X.shape[a]]
    first = min(resized, default=rank - 1)
    if 3 <= rank <= 5 and first >= 2:
        start, operand, steps = 2, Operand("X", X), []
        if any(grow):
            _check_edge_padding(policy, grow, ctm, mode, antialias, exclude_outside)
            pairs = tuple((0, m) for m in grow)
            operand = Operand(f"np.pad(X, {render(pairs)}, mode='edge')",
                              np.pad(X, pairs, mode="edge"))
            steps = [Step.crop((Ellipsis,) + tuple(slice(None, n) for n in size_full[2:]))]
    elif rank - first <= 3 and not any(grow):
        start = first
        shape = (math.prod(X.shape[:first]), 1) + X.shape[first:]
        operand = Operand(f"X.reshape{shape}", X.reshape(shape))
        out_shape = X.shape[:first] + tuple(
            size_full[a] if sizes is not None or policy != "stretch"
            else math.floor(X.shape[a] * scale_full[a]) for a in range(first, rank))
        steps = [Step.reshape(out_shape)]
    else:
        raise NotImplementedError(
            f"resizing axes {resized} of a rank-{rank} X: fastdeconv.resize resizes at most "
            f"three trailing axes (the axes after the first two when X has 3 to 5 dimensions, "
            f"with a keep_aspect_ratio_policy)")
    keywords = {}
    if sizes is not None:
        keywords["size"] = tuple(size_full[start:])
    else:
        keywords["scale_factor"] = tuple(scale_full[start:])
    keywords.update(mode=mode, coordinate_transformation_mode=ctm)
    if mode == "nearest" and nearest_mode != "round_prefer_floor":
        keywords["nearest_mode"] = nearest_mode
    if mode == "cubic" and float(cubic_coeff_a) != -0.75:
        keywords["cubic_coeff_a"] = float(cubic_coeff_a)
    if mode != "nearest":   # ONNX ignores both for "nearest"; fastdeconv refuses them there
        keywords.update(antialias=antialias, exclude_outside=exclude_outside)
    return canonical_call("resize", [operand], keywords, steps).finish(explain)


# ------------------------------------------------------------------------ DepthToSpace
def depth_to_space(input, blocksize, *, mode="DCR", explain=False):
    """ONNX ``DepthToSpace``: move blocks of channels into ``blocksize x blocksize`` pixels.

    Parameters
    ----------
    input : array_like, shape (N, C, H, W)
        ``C`` divisible by ``blocksize ** 2``.
    blocksize : int
    mode : {"DCR", "CRD"}, default "DCR"
        ``"DCR"`` (depth-column-row, TensorFlow's order) or ``"CRD"`` (PyTorch's
        ``pixel_shuffle``).
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    output : ndarray, shape (N, C / blocksize ** 2, H * blocksize, W * blocksize), or str
        The result, or with ``explain=True`` the call ``fastdeconv.pixel_shuffle(input, ...)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import onnx
    >>> x = np.arange(8.0).reshape(1, 8, 1, 1)
    >>> onnx.depth_to_space(x, 2)[0].tolist()
    [[[0.0, 2.0], [4.0, 6.0]], [[1.0, 3.0], [5.0, 7.0]]]
    >>> onnx.depth_to_space(x, 2, explain=True)
    "fastdeconv.pixel_shuffle(input, upscale_factor=2, order='DCR')"
    """
    input = array(input, "input")
    if input.ndim != 4:
        raise ValueError(f"input must have shape (N, C, H, W), got shape {input.shape}")
    blocksize = int_value(blocksize, "blocksize", 1)
    mode = choice(mode, "mode", DEPTH_TO_SPACE_MODES)
    if input.shape[1] % (blocksize * blocksize):
        raise ValueError(f"the channels of input ({input.shape[1]}) must be divisible by "
                         f"blocksize ** 2 = {blocksize * blocksize}")
    return canonical_call("pixel_shuffle", [Operand("input", input)],
                          dict(upscale_factor=blocksize, order=mode)).finish(explain)


# ------------------------------------------------------------------------ MaxUnpool
def max_unpool(X, I, output_shape=None, *, kernel_shape, pads=None, strides=None,
               explain=False):
    """ONNX ``MaxUnpool``: scatter pooled values back to the positions of their maxima.

    Parameters
    ----------
    X : array_like, shape (N, C, D1, ..., Dn)
        Pooled values, 1 to 3 spatial dimensions.
    I : array_like of int, shape of ``X``
        Indices from ONNX ``MaxPool``: flat positions in the whole output tensor
        ``(N, C, O1, ..., On)``, each inside its own ``(n, c)`` plane.
    output_shape : array_like of int, optional
        Full output shape ``(N, C, O1, ..., On)``; default
        ``O = (D - 1) * stride + kernel - begin - end``.
    kernel_shape : list of int
    pads : list of int, optional
        ``[x1_begin, ..., x1_end, ...]`` of the pooling; default 0.
    strides : list of int, optional
        Default 1 (ONNX's default, not the kernel size as in PyTorch).
    explain : bool, default False
        Return the equivalent fastdeconv call as text instead of computing it.

    Returns
    -------
    Y : ndarray, shape (N, C, O1, ..., On), or str
        The result, or with ``explain=True`` the call ``fastdeconv.max_unpool(X, I % P, ...)``
        (``P`` positions per output plane: fastdeconv's indices count within a plane).

    Raises
    ------
    NotImplementedError
        If an output size differs from ``(D - 1) * stride + kernel - 2 * padding`` by
        ``stride`` or more for every symmetric ``padding`` (fastdeconv follows PyTorch's
        rule there).
    ValueError, TypeError
        For invalid attributes, and indices outside their ``(n, c)`` plane.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.compat import onnx
    >>> X = np.array([[[[5.0, 6.0], [7.0, 8.0]]]])
    >>> I = np.array([[[[5, 7], [13, 15]]]])
    >>> onnx.max_unpool(X, I, kernel_shape=[2, 2], strides=[2, 2])[0, 0].tolist()
    [[0.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, 6.0], [0.0, 0.0, 0.0, 0.0], [0.0, 7.0, 0.0, 8.0]]
    >>> onnx.max_unpool(X, I, kernel_shape=[2, 2], strides=[2, 2], explain=True)
    'fastdeconv.max_unpool(X, I % 16, kernel_size=(2, 2), stride=(2, 2))'
    """
    X, I = array(X, "X"), array(I, "I")
    n = spatial_rank(X, "X")
    if I.shape != X.shape:
        raise ValueError(f"I must have the shape {X.shape} of X, got {I.shape}")
    if not np.issubdtype(I.dtype, np.integer):
        raise TypeError(f"I must hold integers, got dtype {I.dtype}")
    kernel = ints(kernel_shape, "kernel_shape", n, minimum=1)
    stride = per_axis(strides, "strides", n, 1, minimum=1)
    pairs = ((0, 0),) * n if pads is None else _pad_pairs(pads, n)
    default = tuple((d - 1) * s + k - b - e
                    for d, s, k, (b, e) in zip(X.shape[2:], stride, kernel, pairs))
    if output_shape is None:
        out = default
    else:
        full = ints(np.asarray(output_shape), "output_shape", n + 2, minimum=1)
        if full[:2] != X.shape[:2]:
            raise ValueError(f"output_shape {list(full)} must start with the batch and channel "
                             f"sizes {list(X.shape[:2])} of X")
        out = full[2:]
    if min(out) < 1:
        raise ValueError(f"the output of MaxUnpool would be empty: spatial shape {list(out)}")
    plane = math.prod(out)
    planes = np.arange(X.shape[0] * X.shape[1], dtype=np.int64).reshape(X.shape[:2] + (1,) * n)
    outside = (I < planes * plane) | (I >= (planes + 1) * plane)
    if outside.any():
        where = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(
            f"I{list(where)} = {int(I[where])} lies outside its (n, c) plane of the output "
            f"(flat positions {int(planes[where[:2]].item()) * plane} to "
            f"{(int(planes[where[:2]].item()) + 1) * plane - 1} of the output shape "
            f"{X.shape[:2] + tuple(out)}); fastdeconv scatters within each plane")
    padding = tuple((b + e) // 2 for b, e in pairs)
    own = tuple((d - 1) * s + k - 2 * p
                for d, s, k, p in zip(X.shape[2:], stride, kernel, padding))
    for axis, (o, d, s) in enumerate(zip(out, own, stride)):
        if abs(o - d) >= s:
            raise NotImplementedError(
                f"output size {o} along spatial axis {axis} is {abs(o - d)} away from "
                f"fastdeconv.max_unpool's size (D - 1) * stride + kernel - 2 * padding = {d}; "
                f"it accepts output sizes within stride ({s}) of it (PyTorch's rule)")
    operand = Operand(f"I % {plane}", np.remainder(I, plane))
    keywords = dict(kernel_size=kernel, stride=stride, padding=padding,
                    output_size=None if out == own else tuple(out))
    return canonical_call("max_unpool", [Operand("X", X), operand], keywords).finish(explain)
