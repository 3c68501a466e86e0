"""fastdeconv.shapes: every size it reports is the size the operators produce.

The oracles are the operators themselves (the shapes of real results) and, for
conv_transpose_as_conv, the transposed convolution it claims to equal, run on random data.
"""

import itertools

import numpy as np
import pytest

import fastdeconv
from fastdeconv import shapes

SIZES = [1, 4, 7]
KERNELS = [1, 2, 3, 4]
STRIDES = [1, 2, 3]
DILATIONS = [1, 2]
PADS = [0, 1, ((2, 0),), "same", "same_lower", "valid"]


def _cases():
    for n, k, s, d, p in itertools.product(SIZES, KERNELS, STRIDES, DILATIONS, PADS):
        yield n, k, s, d, p


@pytest.mark.parametrize("n, k, s, d, p", list(_cases()))
def test_conv_output_shape_is_the_shape_conv_returns(n, k, s, d, p):
    x, w = np.zeros((1, 1, n)), np.zeros((1, 1, k))
    try:
        expected = fastdeconv.conv(x, w, stride=s, padding=p, dilation=d).shape[2:]
    except ValueError as exc:
        with pytest.raises(ValueError, match="kernel size is larger"):
            shapes.conv_output_shape((n,), k, stride=s, padding=p, dilation=d)
        assert "kernel size is larger" in str(exc)
        return
    assert shapes.conv_output_shape((n,), k, stride=s, padding=p, dilation=d) == expected


@pytest.mark.parametrize("n, k, s, d, p", list(_cases()))
def test_conv_transpose_output_shape_is_the_shape_conv_transpose_returns(n, k, s, d, p):
    x, w = np.zeros((1, 1, n)), np.zeros((1, 1, k))
    for op in ([0] if isinstance(p, str) and p != "valid" else range(max(s, d))):
        try:
            expected = fastdeconv.conv_transpose(x, w, stride=s, padding=p, output_padding=op,
                                                 dilation=d).shape[2:]
        except ValueError:
            with pytest.raises(ValueError):
                shapes.conv_transpose_output_shape((n,), k, stride=s, padding=p,
                                                   output_padding=op, dilation=d)
            continue
        assert shapes.conv_transpose_output_shape(
            (n,), k, stride=s, padding=p, output_padding=op, dilation=d) == expected


def test_shapes_in_several_dimensions_and_int_input():
    assert shapes.conv_output_shape((9, 8, 7), (3, 2, 1), stride=(2, 1, 3),
                                    padding=((1, 0), (0, 0), (2, 2))) == (4, 7, 4)
    assert shapes.conv_output_shape(10, 3) == (8,)
    assert shapes.conv_output_shape(10, (3, 3)) == (8, 8)   # ndim from the kernel
    assert shapes.conv_transpose_output_shape((3, 4), (4, 3), stride=(2, 3), padding=1,
                                              output_padding=(1, 2)) == (7, 12)


@pytest.mark.parametrize("n, k, s, d", list(itertools.product([2, 5], [1, 3, 4], [1, 2, 3], [1, 2])))
@pytest.mark.parametrize("p", [0, 1, ((0, 2),), "same"])
def test_output_padding_for_reaches_every_reachable_size(n, k, s, d, p):
    x, w = np.zeros((1, 1, n)), np.zeros((1, 1, k))
    try:
        base = fastdeconv.conv_transpose(x, w, stride=s, padding=p, dilation=d).shape[2]
    except ValueError:
        return
    fixed = isinstance(p, str)
    reachable = [base] if fixed else range(base, base + s)      # PyTorch's output_size rule
    for target in reachable:
        op = shapes.output_padding_for((n,), (target,), k, stride=s, padding=p, dilation=d)
        if fixed:
            assert op == (0,)
        y = fastdeconv.conv_transpose(x, w, stride=s, padding=p, output_padding=op, dilation=d)
        assert y.shape[2] == target
        # the same rule as conv_transpose(..., output_size=)
        y2 = fastdeconv.conv_transpose(x, w, stride=s, padding=p, dilation=d,
                                       output_size=(target,))
        assert y2.shape == y.shape
    with pytest.raises(ValueError, match="output_size .* is unreachable"):
        shapes.output_padding_for((n,), (base + (1 if fixed else s),), k,
                                  stride=s, padding=p, dilation=d)


@pytest.mark.parametrize("n, k, s, d", list(itertools.product([3, 6, 7], [1, 2, 3, 4], [1, 2, 3], [1, 2])))
@pytest.mark.parametrize("lower", [False, True])
def test_same_padding_pairs_give_the_same_result_as_the_string(n, k, s, d, lower, rng):
    name = "same_lower" if lower else "same"
    x = rng.standard_normal((1, 2, n, n))
    w = rng.standard_normal((3, 2, k, k))
    pairs = shapes.same_padding((n, n), k, stride=s, dilation=d, lower=lower)
    np.testing.assert_allclose(fastdeconv.conv(x, w, stride=s, padding=pairs, dilation=d),
                               fastdeconv.conv(x, w, stride=s, padding=name, dilation=d))
    # transposed: the pairs, plus output_padding = s - k_e when the kernel is shorter than s
    wt = rng.standard_normal((2, 3, k, k))
    pairs_t = shapes.same_padding((n, n), k, stride=s, dilation=d, transpose=True, lower=lower)
    extra = max(s - (d * (k - 1) + 1), 0)
    expected = fastdeconv.conv_transpose(x, wt, stride=s, padding=name, dilation=d)
    assert expected.shape[2:] == (n * s, n * s)
    np.testing.assert_allclose(
        fastdeconv.conv_transpose(x, wt, stride=s, padding=pairs_t, dilation=d,
                                  output_padding=extra), expected)


@pytest.mark.parametrize("n, k, s, d", list(itertools.product([1, 3, 8], [1, 2, 3, 5], [1, 2, 3], [1, 2])))
@pytest.mark.parametrize("transpose", [False, True])
def test_padding_choices_are_exactly_the_paddings_that_reach_the_target(n, k, s, d, transpose):
    k_e = d * (k - 1) + 1
    for target in range(1, 2 * n * s + 3):
        (found,) = shapes.padding_choices((n,), (target,), k, stride=s, dilation=d,
                                          transpose=transpose)
        # brute force over totals and output paddings, judged by the defining relations:
        # conv: the last window fits and the next would not; transpose: the scatter's extent
        expected = []
        for total in range(0, (target + n + 2) * s + k_e):
            pair = (total // 2, total - total // 2)
            if transpose:
                for op in range(max(s, d)):
                    if (n - 1) * s + k_e - total + op == target:
                        expected.append(pair + (op,))
            elif (target - 1) * s + k_e <= n + total < target * s + k_e:
                expected.append(pair + (0,))
        assert sorted(tuple(c) for c in found) == sorted(expected)
        assert all(c.total == c.before + c.after for c in found)
        for c in found[:2]:      # and the operators agree
            x, w = np.zeros((1, 1, n)), np.zeros((1, 1, k))
            if transpose:
                y = fastdeconv.conv_transpose(x, w, stride=s, padding=((c.before, c.after),),
                                              output_padding=c.output_padding, dilation=d)
            else:
                y = fastdeconv.conv(x, w, stride=s, padding=((c.before, c.after),), dilation=d)
            assert y.shape[2] == target


def test_padding_choices_per_dimension():
    rows, cols = shapes.padding_choices((4, 5), (8, 10), (3, 4), stride=2, transpose=True)
    assert [tuple(c) for c in rows] == [(0, 1, 0), (1, 1, 1)]
    assert [tuple(c) for c in cols] == [(1, 1, 0), (1, 2, 1)]
    assert shapes.padding_choices((4,), (100,), 3, stride=2, transpose=True) == ([],)


CT_CASES = [
    dict(x=(2, 3, 5), w=(3, 2, 4), stride=2, padding=1),
    dict(x=(1, 4, 6), w=(4, 3, 3), stride=3, padding=2, output_padding=2, dilation=2, groups=2),
    dict(x=(1, 2, 4, 5), w=(2, 3, 3, 3), stride=2, padding=1),
    dict(x=(1, 2, 4, 5), w=(2, 3, 3, 2), stride=(2, 3), padding=((1, 0), (0, 2)),
         output_padding=(1, 2), dilation=(1, 2)),
    dict(x=(1, 4, 4, 4), w=(4, 1, 3, 3), stride=2, padding="same", groups=4),
    dict(x=(1, 2, 5), w=(2, 2, 1), stride=3, padding="same_lower"),      # k_e < s
    dict(x=(1, 2, 9), w=(2, 2, 3), stride=1, padding=3),                  # crops: p' < 0
    dict(x=(1, 2, 3, 4, 3), w=(2, 2, 2, 2, 2), stride=2),
    dict(x=(1, 2, 5), w=(2, 1, 3), stride=1, padding=1, output_padding=1, dilation=2),
]


@pytest.mark.parametrize("case", CT_CASES, ids=str)
def test_conv_transpose_as_conv_equals_conv_transpose(case, rng):
    params = {k: v for k, v in case.items() if k not in ("x", "w")}
    x, w = rng.standard_normal(case["x"]), rng.standard_normal(case["w"])
    b = rng.standard_normal(case["w"][1] * params.get("groups", 1))
    eq = shapes.conv_transpose_as_conv(case["x"][2:], case["w"][2:], **params)
    expected = fastdeconv.conv_transpose(x, w, b, **params)
    assert eq.output_size == expected.shape[2:]
    np.testing.assert_allclose(eq(x, w, b), expected, rtol=1e-12, atol=1e-12)
    # the pieces: zero insertion and padding give the direct conv's input size
    prepared = eq.prepare_input(x)
    assert prepared.shape[2:] == tuple(
        z + b_ + a for z, (b_, a) in zip(eq.zero_inserted_size, eq.padding))
    assert eq.weight(w).shape == (case["w"][1] * params.get("groups", 1),
                                  case["w"][0] // params.get("groups", 1)) + case["w"][2:]


def test_conv_transpose_as_conv_formulas_and_text():
    eq = shapes.conv_transpose_as_conv((4, 4), 3, stride=2, padding=1, output_padding=1)
    assert eq.zero_inserted_size == (7, 7)
    assert eq.padding == ((1, 2), (1, 2))           # (k - 1 - p, k - 1 - p + op)
    assert eq.output_size == (8, 8)
    eq = shapes.conv_transpose_as_conv(8, 2, stride=1, padding=3)
    assert eq.padding == ((-2, -2),)
    assert eq.output_size == (3,)
    assert "negative: cropped" in str(eq)
    w = np.arange(12.0).reshape(2, 3, 2)
    flipped = shapes.conv_transpose_as_conv(3, 2).weight(w)
    np.testing.assert_array_equal(flipped, np.swapaxes(w, 0, 1)[:, :, ::-1])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: shapes.conv_output_shape((4, "a"), 3), TypeError, "input_shape must be an int"),
        (lambda: shapes.conv_output_shape("44", 3), TypeError, "input_shape must be an int"),
        (lambda: shapes.conv_output_shape((4, 0), 3), ValueError, "input_shape must be >= 1"),
        (lambda: shapes.conv_output_shape((), 3), ValueError, "input_shape must have at least"),
        (lambda: shapes.conv_output_shape((4, 4), (3, 3, 3)), ValueError, "kernel_size must be"),
        (lambda: shapes.conv_output_shape((4,), 3, stride=0), ValueError, "stride must be"),
        (lambda: shapes.conv_output_shape((4,), 3, padding=-1), ValueError, "padding must be"),
        (lambda: shapes.conv_output_shape((4,), 3, padding="ful"), ValueError, "padding must be one of"),
        (lambda: shapes.conv_transpose_output_shape((4,), 3, stride=2, output_padding=2),
         ValueError, "output_padding must be smaller"),
        (lambda: shapes.output_padding_for((4,), (4, 4), 3), ValueError, "output_size must have"),
        (lambda: shapes.same_padding((4,), 3, transpose="yes"), TypeError, "transpose must be"),
        (lambda: shapes.padding_choices((4,), (4, 4), 3), ValueError, "output_shape must have"),
        (lambda: shapes.padding_choices((4,), 0, 3), ValueError, "output_shape must be >= 1"),
        (lambda: shapes.conv_transpose_as_conv((4,), 3, groups=0), ValueError, "groups must be"),
        (lambda: shapes.conv_transpose_as_conv((4,), 3, groups=2).weight(np.ones((3, 1, 3))),
         ValueError, "groups=2 must divide"),
        (lambda: shapes.conv_transpose_as_conv((4,), 3).weight(np.ones((3, 1, 2))),
         ValueError, "weight must have shape"),
        (lambda: shapes.conv_transpose_as_conv((4,), 3).prepare_input(np.ones((1, 1, 5))),
         ValueError, "x must have shape"),
    ],
)
def test_bad_arguments_name_the_parameter(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.torch
@pytest.mark.parametrize("n, k, s, p, d", [(4, 3, 2, 1, 1), (5, 4, 3, 0, 1), (7, 3, 2, 2, 2), (3, 1, 4, 0, 1)])
def test_output_padding_for_agrees_with_pytorch(torch, n, k, s, p, d):
    layer = torch.nn.ConvTranspose1d(1, 1, k, stride=s, padding=p, dilation=d)
    base = shapes.conv_transpose_output_shape(n, k, stride=s, padding=p, dilation=d)[0]
    for target in range(base, base + s):
        expected = layer._output_padding(torch.zeros(1, 1, n), [target], [s], [p], [k], 1, [d])
        assert shapes.output_padding_for(n, (target,), k, stride=s, padding=p, dilation=d) == \
            tuple(expected)
        out = layer(torch.zeros(1, 1, n), output_size=[target])
        assert out.shape[-1] == target
