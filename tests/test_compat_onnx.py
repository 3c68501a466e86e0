"""fastdeconv.compat.onnx against the ONNX backend node tests, and its explained calls.

The ONNX backend node tests (``onnx/backend/test/data/node/test_conv*``, ``test_convtranspose*``,
``test_resize*``, ``test_depthtospace*``, ``test_maxunpool*``, ...) are the model and the
input/output tensors that ``onnx.backend.test.case.node.<operator>`` writes with
``backend-test-tools generate-data``; the wheel of ``onnx`` does not ship the written
directories, so the cases are generated here from the same modules (same names, models and
data). Every case of the five operators either matches (the node's attributes passed as
keywords, the data sets' inputs as arguments, ONNX's tolerances rtol 1e-3, atol 1e-7) or is
listed in ``UNSUPPORTED`` with the reason, and then the compat function must refuse it.

``python tests/test_compat_onnx.py`` prints the counts per operator.
"""

import collections
import importlib

import numpy as np
import pytest

import fastdeconv
import fastdeconv.compat

onnx = pytest.importorskip("onnx", reason="the ONNX node tests need the onnx package")
from onnx import helper, numpy_helper  # noqa: E402

compat = fastdeconv.compat.onnx

#: The onnx.backend.test.case.node modules of the operators of fastdeconv.compat.onnx.
CASE_MODULES = ("conv", "convtranspose", "resize", "depthtospace", "maxunpool")
FUNCTIONS = {"Conv": compat.conv, "ConvTranspose": compat.conv_transpose,
             "Resize": compat.resize, "DepthToSpace": compat.depth_to_space,
             "MaxUnpool": compat.max_unpool}

_CROP = ("Resize's coordinate_transformation_mode='tf_crop_and_resize' (resample the region "
         "roi, extrapolation_value outside) has no fastdeconv.resize equivalent")
_EXPANDED = ("the function expansion of {}: the same data through a graph of Reshape / "
             "Transpose nodes, no DepthToSpace node to translate")

#: Cases that fastdeconv.compat.onnx cannot express, with the reason (the test checks that
#: the compat function refuses them with NotImplementedError).
UNSUPPORTED = {
    "test_resize_tf_crop_and_resize": _CROP,
    "test_resize_tf_crop_and_resize_extrapolation_value": _CROP,
    "test_resize_tf_crop_and_resize_axes_2_3": _CROP,
    "test_resize_tf_crop_and_resize_axes_3_2": _CROP,
    "test_depthtospace_example_expanded": _EXPANDED.format("test_depthtospace_example"),
    "test_depthtospace_crd_mode_example_expanded":
        _EXPANDED.format("test_depthtospace_crd_mode_example"),
}

_FRACTIONAL = ("the data, written by the ONNX reference implementation, uses the fractional "
               "output width D * scale in align_corners' x * (D - 1) / (width - 1); ONNX "
               "Runtime uses the output's integer length (the spec's length_resized), as "
               "fastdeconv does")

#: Cases whose data disagrees with ONNX Runtime, which fastdeconv.compat.onnx follows (the test
#: checks that it matches ONNX Runtime on the case's model, and not the data).
FOLLOWS_ONNXRUNTIME = {
    "test_resize_downsample_scales_linear_align_corners": _FRACTIONAL,
    "test_resize_downsample_scales_cubic_align_corners": _FRACTIONAL,
    "test_maxunpool_export_with_output_shape":
        "the data scatters I into the default output shape (D - 1) * stride + kernel - pads "
        "and pads the result with zeros at the end up to output_shape; ONNX Runtime (and "
        "PyTorch's max_unpool with output_size) read I as flat positions in output_shape, "
        "which is where a MaxPool of an input of that shape points; fastdeconv does too",
}


def node_cases():
    """The backend node test cases of the five operators, by name."""
    from onnx.backend.test.case import node

    for name in CASE_MODULES:
        importlib.import_module(f"onnx.backend.test.case.node.{name}")
    ops = {op.lower() for op in FUNCTIONS}
    cases = {}
    for case in node._NodeTestCases:   # the list collect_testcases() returns
        op = case.model.graph.node[0].op_type
        if op in FUNCTIONS or any(case.name.startswith(f"test_{o}") for o in ops):
            cases[case.name] = case
    return cases


CASES = node_cases()


def _operator(case):
    ops = [n.op_type for n in case.model.graph.node if n.op_type in FUNCTIONS]
    return ops[0] if ops else None


def _as_array(value):
    return value if isinstance(value, np.ndarray) else numpy_helper.to_array(value)


def run_case(case):
    """The compat function on the case's node and inputs; returns (results, expected)."""
    (node,) = case.model.graph.node
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attributes = {k: v.decode() if isinstance(v, bytes) else v for k, v in attributes.items()}
    results = []
    for inputs, outputs in case.data_sets:
        supplied = iter(_as_array(v) for v in inputs)
        arguments = [None if name == "" else next(supplied) for name in node.input]
        results.append((FUNCTIONS[node.op_type](*arguments, **attributes),
                        _as_array(outputs[0])))
    return results


def operator_name(name):
    case = CASES[name]
    return _operator(case) or next(op for op in FUNCTIONS if name.startswith(
        f"test_{op.lower()}"))


def test_there_are_node_cases_of_every_operator():
    counts = collections.Counter(operator_name(name) for name in CASES)
    assert set(counts) == set(FUNCTIONS), counts
    assert len(CASES) >= 60


def test_every_listed_case_exists():
    assert set(UNSUPPORTED) | set(FOLLOWS_ONNXRUNTIME) <= set(CASES)
    assert not set(UNSUPPORTED) & set(FOLLOWS_ONNXRUNTIME)


MATCHING = sorted(set(CASES) - set(UNSUPPORTED) - set(FOLLOWS_ONNXRUNTIME))


@pytest.mark.parametrize("name", MATCHING)
def test_node_case_matches(name):
    case = CASES[name]
    for result, expected in run_case(case):
        assert result.shape == expected.shape
        np.testing.assert_allclose(result, expected, rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_node_case_is_refused(name):
    case = CASES[name]
    if name.endswith("_expanded"):
        assert _operator(case) is None     # no node of the operator in the graph
        assert name.removesuffix("_expanded") in CASES
        return
    with pytest.raises(NotImplementedError, match="tf_crop_and_resize"):
        run_case(case)


@pytest.mark.parametrize("name", sorted(FOLLOWS_ONNXRUNTIME))
def test_case_whose_data_disagrees_with_onnxruntime_follows_onnxruntime(name):
    ort = pytest.importorskip("onnxruntime")

    case = CASES[name]
    session = ort.InferenceSession(case.model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    inputs, _ = case.data_sets[0]
    feeds = {i.name: _as_array(v) for i, v in zip(session.get_inputs(), inputs)}
    (runtime,) = session.run(None, feeds)
    ((result, data),) = run_case(case)
    np.testing.assert_allclose(result, runtime, rtol=case.rtol, atol=case.atol)
    assert not np.allclose(result, data, rtol=case.rtol, atol=case.atol)


def counts():
    """{operator: (cases, matching, unsupported, following ONNX Runtime, mismatching)}."""
    table = collections.defaultdict(lambda: [0, 0, 0, 0, 0])
    for name, case in sorted(CASES.items()):
        row = table[operator_name(name)]
        row[0] += 1
        if name in UNSUPPORTED:
            row[2] += 1
            continue
        try:
            for result, expected in run_case(case):
                np.testing.assert_allclose(result, expected, rtol=case.rtol, atol=case.atol)
        except Exception:   # a mismatch or an error
            row[3 if name in FOLLOWS_ONNXRUNTIME else 4] += 1
        else:
            row[1] += 1
    return {op: tuple(row) for op, row in sorted(table.items())}


# ---------------------------------------------------------------------- explained calls
def _explained_equals_result(function, arguments, keywords, names):
    """The text of explain=True, evaluated with the operands bound to the caller's names,
    gives the compat function's result."""
    text = function(*arguments, explain=True, **keywords)
    assert isinstance(text, str) and text.startswith("fastdeconv.")
    scope = {"np": np, "fastdeconv": fastdeconv}
    scope.update((n, a) for n, a in zip(names, arguments) if n is not None)
    expected = function(*arguments, **keywords)
    np.testing.assert_array_equal(eval(text, scope), expected)
    return text


@pytest.mark.parametrize("name", sorted(set(CASES) - set(UNSUPPORTED)))
def test_explained_call_of_every_node_case_gives_the_result(name):
    (node,) = CASES[name].model.graph.node
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attributes = {k: v.decode() if isinstance(v, bytes) else v for k, v in attributes.items()}
    inputs, _ = CASES[name].data_sets[0]
    supplied = iter(_as_array(v) for v in inputs)
    arguments = [None if n == "" else next(supplied) for n in node.input]
    names = {"Conv": ["X", "W", "B"], "ConvTranspose": ["X", "W", "B"],
             "Resize": ["X", "roi", "scales", "sizes"], "DepthToSpace": ["input"],
             "MaxUnpool": ["X", "I", "output_shape"]}[node.op_type]
    _explained_equals_result(FUNCTIONS[node.op_type], arguments, attributes, names)


def test_explained_texts_show_the_translation():
    X, W, B = np.ones((1, 2, 3, 3)), np.ones((2, 4, 3, 3)), np.ones(4)
    text = _explained_equals_result(
        compat.conv_transpose, (X, W, B),
        dict(strides=[2, 2], pads=[1, 1, 0, 0], output_padding=[1, 1]), "XWB")
    assert text == ("fastdeconv.conv_transpose(X, W, B, stride=(2, 2), padding=((1, 0), (1, 0)),"
                    " output_padding=(1, 1))")
    text = _explained_equals_result(compat.conv, (X, np.ones((4, 1, 2, 2))),
                                    dict(group=2, dilations=[2, 1], auto_pad="VALID"), "XW")
    assert text == "fastdeconv.conv(X, W, padding='valid', dilation=(2, 1), groups=2)"
    x = np.arange(24.0).reshape(2, 3, 4)
    text = _explained_equals_result(compat.resize, (x, None, None, [4, 3, 2]),
                                    dict(mode="linear"), ["X", "roi", "scales", "sizes"])
    assert text == ("fastdeconv.resize(X.reshape(1, 1, 2, 3, 4), size=(4, 3, 2), mode='linear', "
                    "coordinate_transformation_mode='half_pixel').reshape(4, 3, 2)")


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("function, keywords, error, match", [
    (compat.conv, dict(auto_pad="SAME"), ValueError, "auto_pad must be one of"),
    (compat.conv, dict(pads=[1, 1, 1]), ValueError, "pads must have 4 entries"),
    (compat.conv, dict(pads=[1, 1, 1, -1]), ValueError, r"pads must be >= 0.*\[1, 1, 1, -1\]"),
    (compat.conv, dict(strides=[2, 2.5]), TypeError, "strides must be an int, got 2.5"),
    (compat.conv, dict(strides=2), TypeError, "strides must be a list of 2 ints, got 2"),
    (compat.conv, dict(kernel_shape=[2, 2]), ValueError, r"kernel_shape \[2, 2\] does not match"),
    (compat.conv, dict(group=0), ValueError, "group must be >= 1, got 0"),
    (compat.conv, dict(auto_pad="SAME_UPPER", pads=[1, 1, 1, 1]), ValueError,
     "pads cannot be used together with auto_pad='SAME_UPPER'"),
    (compat.conv, dict(explain="yes"), TypeError, "explain must be True or False"),
    (compat.conv_transpose, dict(output_shape=[9, 6]), ValueError,
     r"output_shape \[9, 6\] is larger than the full transposed convolution \[5, 5\] "
     r".* by max\(stride, dilation\) or more"),
    (compat.conv_transpose, dict(strides=[4, 4], auto_pad="SAME_LOWER"), ValueError,
     "negative: the ONNX specification leaves that undefined"),
    (compat.conv_transpose, dict(output_padding=[0]), ValueError, "output_padding must have 2"),
])
def test_bad_conv_attributes_are_named(function, keywords, error, match):
    X, W = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3))
    with pytest.raises(error, match=match):
        function(X, W, **keywords)


@pytest.mark.parametrize("arguments, keywords, error, match", [
    ((), {}, ValueError, "give exactly one of scales and sizes"),
    ((None, None, [1, 1, 2, 2]), dict(scales=[1, 1, 2, 2]), TypeError, "multiple values"),
    ((None, [1.0, 1.0, 2.0, 2.0], [1, 1, 8, 8]), {}, ValueError, r"\(both were given\)"),
    ((None, [1.0, 2.0]), {}, ValueError, "one entry per axis of X"),
    ((None, [2.0, 2.0]), dict(axes=[2, 2]), ValueError, "axes must be distinct"),
    ((None, [1.0, 1.0, 2.0, 0.0]), {}, ValueError, "scales must be positive"),
    ((None, None, [1, 1, 8, 8]), dict(mode="bilinear"), ValueError, "mode must be one of"),
    ((None, None, [1, 1, 8, 8]), dict(antialias=2), ValueError, "antialias must be 0 or 1"),
    ((None, None, [1, 1, 8, 8]), dict(nearest_mode="round"), ValueError, "nearest_mode"),
    ((None, None, [1, 1, 8, 8]), dict(cubic_coeff_a="a"), TypeError, "cubic_coeff_a"),
    ((None, None, [1, 1, 8, 8]), dict(coordinate_transformation_mode="tf_crop_and_resize"),
     NotImplementedError, "tf_crop_and_resize"),
    ((None, [2.0, 1.0, 2.0, 2.0]), {}, NotImplementedError,
     r"resizing axes \[0, 2, 3\] of a rank-4 X"),
    ((None, None, [3, 3]), dict(keep_aspect_ratio_policy="not_smaller", axes=[2, 3],
                                mode="cubic", exclude_outside=1),
     NotImplementedError, r"round\(D \* scale\), not floor\(D \* scale\).*short by "
                          r"\[0, 0, 0, 1\]"),
])
def test_bad_resize_arguments_are_named(arguments, keywords, error, match, rng):
    X = rng.standard_normal((1, 1, 4, 6))
    with pytest.raises(error, match=match):
        compat.resize(X, *arguments, **keywords)


def test_resize_of_batch_and_channel_axes_reshapes(rng):
    X = rng.standard_normal((2, 3, 4))
    y = compat.resize(X, None, np.array([1.0, 2.0, 1.5]), mode="linear")
    expected = fastdeconv.resize(X[None, None], scale_factor=(1.0, 2.0, 1.5), mode="linear",
                                 coordinate_transformation_mode="half_pixel")[0, 0]
    np.testing.assert_array_equal(y, expected)


def test_bad_unpool_and_depth_to_space_arguments_are_named():
    X = np.ones((1, 2, 2, 2))
    I = np.zeros((1, 2, 2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match=r"I\[0, 1, 0, 0\] = 0 lies outside its \(n, c\) plane"):
        compat.max_unpool(X, I, kernel_shape=[2, 2], strides=[2, 2])
    with pytest.raises(TypeError, match="I must hold integers"):
        compat.max_unpool(X, I.astype(float), kernel_shape=[2, 2])
    with pytest.raises(ValueError, match="output_shape .* must start with"):
        compat.max_unpool(X, I, [1, 3, 4, 4], kernel_shape=[2, 2], strides=[2, 2])
    with pytest.raises(NotImplementedError, match="within stride"):
        in_planes = I + np.arange(2).reshape(1, 2, 1, 1) * 36
        compat.max_unpool(X, in_planes, [1, 2, 9, 4], kernel_shape=[2, 2], strides=[2, 2])
    with pytest.raises(ValueError, match="mode must be one of 'DCR', 'CRD'"):
        compat.depth_to_space(np.ones((1, 4, 1, 1)), 2, mode="RDC")
    with pytest.raises(ValueError, match="divisible by blocksize"):
        compat.depth_to_space(np.ones((1, 6, 1, 1)), 2)
    with pytest.raises(ValueError, match=r"input must have shape \(N, C, H, W\)"):
        compat.depth_to_space(np.ones((1, 4, 1)), 2)


if __name__ == "__main__":
    print(f"{'operator':<14} {'cases':>5} {'match':>5} {'unsupported':>11} "
          f"{'as ONNX Runtime':>15} {'mismatch':>8}")
    for op, (total, good, listed, runtime, bad) in counts().items():
        print(f"{op:<14} {total:>5} {good:>5} {listed:>11} {runtime:>15} {bad:>8}")
