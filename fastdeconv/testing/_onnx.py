"""Run one ONNX operator with ONNX Runtime, without the ``onnx`` package.

ONNX Runtime is an optional oracle of the tests (ONNX ``Resize``, ``DepthToSpace``, ...). Its
sessions take a serialized ``ModelProto``; this module writes one with a minimal protobuf
encoder (field numbers from ``onnx/onnx.proto``), so the heavy ``onnx`` package is not needed.

>>> import numpy as np
>>> from fastdeconv.testing._onnx import single_node_model
>>> model = single_node_model("Relu", [np.zeros((1, 2), np.float32)])
>>> isinstance(model, bytes)
True
"""

import struct

import numpy as np

__all__ = ["single_node_model", "run_single_node"]

# TensorProto.DataType
_ELEM_TYPE = {
    np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3,
    np.dtype(np.int32): 6, np.dtype(np.int64): 7, np.dtype(np.bool_): 9,
    np.dtype(np.float16): 10, np.dtype(np.float64): 11,
}
# AttributeProto.AttributeType
_FLOAT, _INT, _STRING, _FLOATS, _INTS = 1, 2, 3, 6, 7


def _varint(value):
    value &= (1 << 64) - 1  # negative ints: two's complement, as protobuf's int64
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _field(number, value):
    """One protobuf field: int as varint, float as fixed32, str/bytes length-delimited."""
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if isinstance(value, (int, np.integer)):
        return _varint(number << 3) + _varint(int(value))
    if isinstance(value, (float, np.floating)):
        return _varint(number << 3 | 5) + struct.pack("<f", float(value))
    if isinstance(value, str):
        value = value.encode()
    return _varint(number << 3 | 2) + _varint(len(value)) + bytes(value)


def _attribute(name, value):
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return _field(1, name) + _field(20, _INT) + _field(3, int(value))
    if isinstance(value, (float, np.floating)):
        return _field(1, name) + _field(20, _FLOAT) + _field(2, float(value))
    if isinstance(value, (str, bytes)):
        return _field(1, name) + _field(20, _STRING) + _field(4, value)
    values = list(value)
    if all(isinstance(v, (int, np.integer)) for v in values):
        return _field(1, name) + _field(20, _INTS) + b"".join(_field(8, int(v)) for v in values)
    return (_field(1, name) + _field(20, _FLOATS)
            + b"".join(_field(7, float(v)) for v in values))


def _tensor(name, array):
    array = np.asarray(array)
    raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return (b"".join(_field(1, int(n)) for n in array.shape) + _field(2, _ELEM_TYPE[array.dtype])
            + _field(8, name) + _field(9, raw))


def _value_info(name, dtype, shape=None):
    tensor_type = _field(1, _ELEM_TYPE[np.dtype(dtype)])
    if shape is not None:
        tensor_type += _field(2, b"".join(_field(1, _field(1, int(n))) for n in shape))
    return _field(1, name) + _field(2, _field(1, tensor_type))


def single_node_model(op_type, inputs, attributes=None, *, output_dtypes=None, opset=19,
                      constant_inputs=True):
    """Serialized ONNX ``ModelProto`` of one node ``op_type(inputs) -> outputs``.

    Parameters
    ----------
    op_type : str
        ONNX operator, e.g. ``"Resize"``.
    inputs : sequence of ndarray or None
        The node's inputs in order; ``None`` leaves an optional input out (empty name). The
        first is the graph input ``"x0"`` fed at run time; with ``constant_inputs`` the others
        are initializers (constants, as exporters write ``scales`` or ``sizes``), otherwise
        graph inputs ``"x1"``, ``"x2"``, ...
    attributes : dict, optional
        Attribute values: int, float, str, or sequences of ints or floats.
    output_dtypes : sequence of dtype, optional
        dtypes of the outputs ``"y0"``, ``"y1"``, ...; default one output of the first input's
        dtype.
    opset : int, default 19
        Version of the default ONNX domain.
    constant_inputs : bool, default True
        Whether inputs after the first are initializers.

    Returns
    -------
    bytes
    """
    attributes = attributes or {}
    inputs = list(inputs)
    if output_dtypes is None:
        output_dtypes = [np.asarray(inputs[0]).dtype]
    names, graph_inputs, initializers = [], [], []
    for i, array in enumerate(inputs):
        if array is None:
            names.append("")
            continue
        name = f"x{i}"
        names.append(name)
        array = np.asarray(array)
        if i == 0 or not constant_inputs:
            graph_inputs.append(_value_info(name, array.dtype, array.shape))
        else:
            initializers.append(_tensor(name, array))
    outputs = [f"y{i}" for i in range(len(output_dtypes))]
    node = (b"".join(_field(1, n) for n in names) + b"".join(_field(2, n) for n in outputs)
            + _field(3, "node") + _field(4, op_type)
            + b"".join(_field(5, _attribute(k, v)) for k, v in attributes.items()))
    graph = (_field(1, node) + _field(2, "fastdeconv_single_node")
             + b"".join(_field(5, t) for t in initializers)
             + b"".join(_field(11, v) for v in graph_inputs)
             + b"".join(_field(12, _value_info(n, d)) for n, d in zip(outputs, output_dtypes)))
    opset_import = _field(1, "") + _field(2, opset)
    return _field(1, 8) + _field(2, "fastdeconv") + _field(7, graph) + _field(8, opset_import)


def run_single_node(op_type, inputs, attributes=None, *, output_dtypes=None, opset=19,
                    constant_inputs=True, threads=1):
    """Run :func:`single_node_model` in an ONNX Runtime CPU session; return the outputs.

    Feeds every non-constant input; the list of outputs follows ``output_dtypes``.
    """
    import onnxruntime as ort

    model = single_node_model(op_type, inputs, attributes, output_dtypes=output_dtypes,
                              opset=opset, constant_inputs=constant_inputs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # expected failures (unsupported cases) stay quiet
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feeds = {f"x{i}": np.asarray(a) for i, a in enumerate(inputs)
             if a is not None and (i == 0 or not constant_inputs)}
    return session.run(None, feeds)
