"""Parameter descriptions shared by several docstrings (SciPy's ``_ni_docstrings`` pattern).

Write ``%(stride)s`` in a docstring and decorate the function with :func:`docfiller`.
"""

import textwrap

_PARAMETERS = {
    "stride": """\
stride : int or tuple of int, default 1
    Step between applications of the kernel, one value or one per spatial dimension.""",
    "padding_conv": """\
padding : int, tuple, or {"valid", "same", "same_lower"}, default 0
    Zero padding of the input, one of:

    - an int: the same padding on both sides of every spatial dimension;
    - a tuple of one int per spatial dimension (both sides);
    - a tuple of one ``(before, after)`` pair per spatial dimension (asymmetric, like ONNX
      ``pads`` and TensorFlow's explicit padding);
    - ``"valid"``: no padding;
    - ``"same"``: output size ``ceil(in / stride)``, total padding
      ``max((out - 1) * stride + dilation * (k - 1) + 1 - in, 0)`` split with the odd extra
      pad at the end (TensorFlow ``SAME``, ONNX ``SAME_UPPER``);
    - ``"same_lower"``: as ``"same"`` with the odd extra pad at the start (ONNX ``SAME_LOWER``).""",
    "padding_transpose": """\
padding : int, tuple, or {"valid", "same", "same_lower"}, default 0
    Padding of the underlying convolution's input, which crops the transposed convolution's
    output: an int, one int per spatial dimension, one ``(before, after)`` pair per spatial
    dimension, ``"valid"`` (no padding), ``"same"`` (output size ``in * stride`` as in
    TensorFlow/Keras/ONNX: total padding ``dilation * (k - 1) + 1 - stride`` with the odd
    extra at the end; when negative, the missing positions are zeros added at the end) or
    ``"same_lower"`` (odd extra at the start).""",
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
    "dtypes": """\
Inputs are promoted together with ``numpy.result_type`` and then mapped: float16 to
float32, bool and integers to float64; float32 and float64 are computed natively, complex
inputs raise ``TypeError``. Any memory layout is accepted (views, negative strides,
Fortran order, read-only arrays, anything ``numpy.asarray`` takes).""",
}


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
