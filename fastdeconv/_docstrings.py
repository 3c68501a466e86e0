"""Parameter descriptions shared by several docstrings (SciPy's ``_ni_docstrings`` pattern).

Write ``%(stride)s`` in a docstring and decorate the function with :func:`docfiller`.
"""

import textwrap

_PARAMETERS = {
    "stride": """\
stride : int or tuple of int, default 1
    Step between applications of the kernel, one value or one per spatial dimension.""",
    "padding_conv": """\
padding : int, tuple, or {"valid", "same", "same_lower", "full"}, default 0
    Zero padding of the input, one of:

    - an int: the same padding on both sides of every spatial dimension;
    - a tuple of one int per spatial dimension (both sides);
    - a tuple of one ``(before, after)`` pair per spatial dimension (asymmetric, like ONNX
      ``pads`` and TensorFlow's explicit padding);
    - ``"valid"``: no padding;
    - ``"same"``: output size ``ceil(in / stride)``, total padding
      ``max((out - 1) * stride + dilation * (k - 1) + 1 - in, 0)`` split with the odd extra
      pad at the end (TensorFlow ``SAME``, ONNX ``SAME_UPPER``);
    - ``"same_lower"``: as ``"same"`` with the odd extra pad at the start (ONNX ``SAME_LOWER``);
    - ``"full"``: ``dilation * (k - 1)`` on both sides, every partial overlap (NumPy's and
      SciPy's ``convolve(..., mode="full")``): output size ``in + dilation * (k - 1)`` at
      stride 1.""",
    "padding_transpose": """\
padding : int, tuple, or {"valid", "same", "same_lower", "full"}, default 0
    Padding of the underlying convolution's input, which crops the transposed convolution's
    output: an int, one int per spatial dimension, one ``(before, after)`` pair per spatial
    dimension, ``"valid"`` (no padding), ``"same"`` (output size ``in * stride`` as in
    TensorFlow/Keras/ONNX: total padding ``dilation * (k - 1) + 1 - stride`` with the odd
    extra at the end; when negative, the missing positions are zeros added at the end) or
    ``"same_lower"`` (odd extra at the start), or ``"full"`` (``dilation * (k - 1)`` on both
    sides: output size ``(in - 1) * stride - dilation * (k - 1) + 1 + output_padding``, Keras's
    ``deconv_output_length(..., "full")``; the adjoint of :func:`conv` with ``"full"``).""",
    "output_padding": """\
output_padding : int or tuple of int, default 0
    Extra positions added at the end of each spatial dimension of the output, to pick one of
    the several output sizes that a strided convolution maps to the same input size. Must be
    smaller than ``max(stride, dilation)`` per dimension (PyTorch's rule).""",
    "output_size": """\
output_size : sequence of int, optional
    Requested output spatial size (the full shape with batch and channels is accepted too);
    chooses ``output_padding`` as PyTorch's ``ConvTranspose*.forward(output_size=...)`` does.
    A size outside the reachable range raises ``ValueError``.""",
    "dilation": """\
dilation : int or tuple of int, default 1
    Spacing between kernel taps (atrous convolution), one value or one per dimension.""",
    "groups": """\
groups : int, default 1
    Number of channel groups: input and output channels are split into ``groups`` blocks
    and block ``g`` of the output only sees block ``g`` of the input. Must divide both
    channel counts; ``groups == C_in == C_out`` is a depthwise convolution.""",
    "padding_mode": """\
padding_mode : {"zeros", "reflect", "replicate", "circular"}, default "zeros"
    How the padded border is filled (PyTorch semantics): zeros; mirrored without repeating
    the edge (needs padding < input size); the edge value repeated; or wrapped around
    (needs padding <= input size).""",
    "resize_parameters": """\
size : int or sequence of int, optional
    Output spatial size, one value for every dimension or one per dimension. Give exactly one
    of ``size`` and ``scale_factor``.
scale_factor : float or sequence of float, optional
    Output size ``floor(in * scale_factor)`` per dimension. As in PyTorch (with
    ``recompute_scale_factor`` unset) and ONNX (``scales``), the given factor, not
    ``out / in``, enters the coordinate formula.
mode : {"nearest", "nearest-exact", "linear", "cubic", "area"}, default "nearest"
    ``"nearest"`` is PyTorch's legacy rule ``floor(o * in / out)`` (with
    ``coordinate_transformation_mode``: ONNX's nearest, rounded by ``nearest_mode``);
    ``"nearest-exact"`` rounds pixel centres (PyTorch only); ``"linear"`` (aliases
    ``"bilinear"`` for 2 and ``"trilinear"`` for 3 spatial dimensions) and ``"cubic"``
    (alias ``"bicubic"``, 2 dimensions) interpolate; ``"area"`` averages over
    ``[floor(o * in / out), ceil((o + 1) * in / out))`` (PyTorch's adaptive average pooling,
    PyTorch only).
align_corners : bool, optional
    PyTorch's keyword, for ``"linear"`` and ``"cubic"`` only (``None`` means False): map the
    centres of the corner pixels onto each other, ``x_in = o * (in - 1) / (out - 1)``,
    instead of the half-pixel rule ``x_in = (o + 0.5) / scale - 0.5``.
antialias : bool, default False
    For ``"linear"`` and ``"cubic"``: when downsampling, widen the interpolation filter by
    the reduction factor and normalize its weights (PyTorch's antialiased bilinear/bicubic,
    i.e. Pillow's; with ``coordinate_transformation_mode``, ONNX's ``antialias=1``, applied
    only when downsampling).
coordinate_transformation_mode : {"half_pixel", "pytorch_half_pixel", "align_corners", \
"asymmetric", "half_pixel_symmetric"}, optional
    Use the ONNX ``Resize`` semantics with this source-coordinate formula (``None``, the
    default, keeps PyTorch's). Not combinable with ``align_corners``, ``"nearest-exact"`` or
    ``"area"``.
nearest_mode : {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}, optional
    ONNX rounding of the source coordinate for ``"nearest"`` (needs
    ``coordinate_transformation_mode``; default ``"round_prefer_floor"`` as in ONNX).
cubic_coeff_a : float, optional
    Keys' cubic parameter ``a`` for ``"cubic"``: default -0.75 (PyTorch, ONNX), or -0.5
    with PyTorch's ``antialias=True``; TensorFlow, JAX and Pillow use -0.5.
exclude_outside : bool, default False
    ONNX's keyword: give zero weight to taps outside the input and renormalize the others
    (instead of repeating the edge pixel). Only matters for ``"cubic"`` and antialiased
    ``"linear"``; TensorFlow 2's bicubic and JAX use it.""",
    "resize_notes": r"""Resizing is separable: along each spatial dimension, output index :math:`o` reads the
input at a source coordinate :math:`x(o)` and interpolates between its neighbours,

.. math::

    y[o] = \sum_k w_k(x(o))\, x_\text{in}[\operatorname{clamp}(i_k(x(o)), 0, n_\text{in} - 1)].

With ``s`` the scale (``scale_factor``, or ``out / in`` when ``size`` is given) the
coordinate is ``(o + 0.5) / s - 0.5`` (half pixel: PyTorch's default, ONNX
``"half_pixel"``), ``o / s`` (``"asymmetric"``, PyTorch's legacy ``"nearest"`` which
floors it) or ``o (in - 1) / (out - 1)`` (``align_corners``). The output size along each
dimension is ``size`` or ``floor(in * scale_factor)``. The same per-dimension plans feed
this kernel, :func:`resize_backward` and :func:`fastdeconv.sparse.resize_matrix`. PyTorch
computes the source index of its nearest modes in float32 arithmetic (by rules that differ
between its 2-D and its 1-D/3-D kernels and, for the latter, between float32 and float64
tensors); this is emulated, so the same pixels are picked as by PyTorch for the same dtype.
With ``coordinate_transformation_mode`` the nearest-neighbour rounding is decided in exact
arithmetic.""",
    "data_format": """\
data_format : str, default "channels_first"
    Layout of the data arrays (inputs, outputs, gradients and pooling indices alike): ``"channels_first"``,
    ``(N, C, *spatial)`` as in PyTorch and ONNX, or ``"channels_last"``, ``(N, *spatial, C)``
    as in TensorFlow, Keras, JAX/flax and TFLite; the explicit strings ``"NCW"``, ``"NWC"``,
    ``"NCHW"``, ``"NHWC"``, ``"NCDHW"`` and ``"NDHWC"`` are accepted too and checked against
    the rank. Results and gradients come back in the same layout; a channels-last result
    computed in channels-first memory is returned as a view of it (no copy; handing it to
    the next channels-last call costs no copy either), so apply ``numpy.ascontiguousarray``
    where C-contiguous channels-last memory is needed.""",
    "weight_format_conv": """\
weight_format : str, optional
    Layout of ``weight`` (and of the returned weight gradient): the letters ``O`` (output
    channels), ``I`` (input channels per group) and the spatial letters ``W``, ``HW`` or
    ``DHW`` in any order. Default ``"OIHW"`` (PyTorch, ONNX); TensorFlow, Keras and JAX use
    ``"HWIO"``, TFLite ``"OHWI"``. See the porting page of the user guide.""",
    "weight_format_transpose": """\
weight_format : str, optional
    Layout of ``weight`` (and of the returned weight gradient): the letters ``I`` (this
    operator's input channels), ``O`` (its output channels per group) and the spatial letters
    ``W``, ``HW`` or ``DHW`` in any order. Default ``"IOHW"`` (PyTorch, ONNX); TensorFlow's
    ``conv2d_transpose`` and Keras's ``Conv2DTranspose`` use ``"HWOI"``. See the porting page
    of the user guide.""",
    "grads": """\
grads : sequence of {"x", "weight", "bias"}, default all three
    Which gradients to compute; the others are returned as ``None`` (a weight-gradient-only
    call skips the transposed convolution that ``grad_x`` costs).""",
    "dtypes": """\
Inputs are promoted together with ``numpy.result_type`` and then mapped: float16 to
float32, bool and integers to float64; float32 and float64 are computed natively, complex
inputs raise ``TypeError``. Any memory layout is accepted (views, negative strides,
Fortran order, read-only arrays, anything ``numpy.asarray`` takes).""",
}

# The keywords of conv and of conv_transpose, in their signatures' order.
_PARAMETERS["conv_keywords"] = "\n".join(
    _PARAMETERS[k] for k in ("stride", "padding_conv", "dilation", "groups", "padding_mode"))
_PARAMETERS["conv_transpose_keywords"] = "\n".join(
    _PARAMETERS[k] for k in ("stride", "padding_transpose", "output_padding", "dilation",
                             "groups", "output_size"))


def docfiller(func):
    """Substitute ``%(name)s`` placeholders in ``func.__doc__`` with the shared texts."""
    doc = func.__doc__
    if doc is None:
        return func
    filled = {}
    for key, text in _PARAMETERS.items():
        # Indentation of the placeholder line is applied to every line of the text.
        for line in doc.splitlines():
            marker = f"%({key})s"
            if marker in line:
                indent = line[: len(line) - len(line.lstrip())]
                filled[key] = textwrap.indent(text, indent)[len(indent):]
                break
        else:
            filled[key] = text
    func.__doc__ = doc % filled
    return func
