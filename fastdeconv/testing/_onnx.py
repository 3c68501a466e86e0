"""Run one ONNX operator with ONNX Runtime (a test-time oracle).

ONNX Runtime is an optional oracle of the tests (ONNX ``Conv``, ``ConvTranspose``, ``Resize``,
``DepthToSpace``, ...). Its sessions take a serialized ``ModelProto``; this module builds one
with the ``onnx`` package's helpers (``onnx.helper``, ``onnx.numpy_helper``). Both packages
are optional: they are imported when a model is built or run, not with this module.

>>> import numpy as np
>>> from fastdeconv.testing._onnx import single_node_model
>>> model = single_node_model("Relu", [np.zeros((1, 2), np.float32)])
>>> isinstance(model, bytes)
True
"""

import numpy as np

__all__ = ["single_node_model", "run_single_node"]

#: IR version of the models: 8 is read by every ONNX Runtime since 1.10.
IR_VERSION = 8


def _attribute_value(value):
    """numpy scalars and arrays as the Python values ``onnx.helper.make_attribute`` takes."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, bytes, int, float)):
        return value
    return np.asarray(value).tolist()


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
    from onnx import helper, numpy_helper

    attributes = {k: _attribute_value(v) for k, v in (attributes or {}).items()}
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
            graph_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape))
        else:
            initializers.append(numpy_helper.from_array(array, name))
    outputs = [f"y{i}" for i in range(len(output_dtypes))]
    graph_outputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(d)), None)
        for n, d in zip(outputs, output_dtypes)
    ]
    node = helper.make_node(op_type, names, outputs, name="node", **attributes)
    graph = helper.make_graph([node], "fastdeconv_single_node", graph_inputs, graph_outputs,
                              initializer=initializers)
    model = helper.make_model(graph, producer_name="fastdeconv", ir_version=IR_VERSION,
                              opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


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
