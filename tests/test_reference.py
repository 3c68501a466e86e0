"""The NumPy oracles of fastdeconv.testing, checked against loops, each other, torch and FD."""

import itertools
from math import ceil

import numpy as np

import fastdeconv
import pytest

from fastdeconv.testing import (
    TOLERANCES,
    assert_adjoint,
    conv_backward_reference,
    conv_reference,
    conv_transpose_backward_reference,
    conv_transpose_reference,
    conv_weight_grad_reference,
    directional_derivative_check,
    tolerances,
)

F64 = TOLERANCES[np.float64]


# ---------------------------------------------------------------------------- naive loops
def naive_source(i, n, mode):
    """Input position copied into padded position ``i`` (None: a zero of the border)."""
    if 0 <= i < n:
        return i
    if mode == "zeros":
        return None
    if mode == "replicate":
        return min(max(i, 0), n - 1)
    if mode == "circular":
        return i % n
    while not 0 <= i < n:  # reflect: bounce off the edges
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def naive_conv(x, w, bias, stride, pairs, dilation, groups, mode):
    """Direct definition: loops over batch, output channel, output position and taps."""
    batch, c_in, *in_sizes = x.shape
    c_out, cig, *kernel = w.shape
    cog = c_out // groups
    out_sizes = [(n + b + a - d * (k - 1) - 1) // s + 1
                 for n, (b, a), k, s, d in zip(in_sizes, pairs, kernel, stride, dilation)]
    y = np.zeros((batch, c_out, *out_sizes))
    for n in range(batch):
        for co in range(c_out):
            group = co // cog
            for o in itertools.product(*map(range, out_sizes)):
                acc = 0.0 if bias is None else bias[co]
                for ci, t in itertools.product(range(cig), itertools.product(*map(range, kernel))):
                    src = [naive_source(o_d * s - b + t_d * d, size, mode)
                           for o_d, t_d, s, (b, _), d, size
                           in zip(o, t, stride, pairs, dilation, in_sizes)]
                    if None not in src:
                        acc += w[(co, ci, *t)] * x[(n, group * cig + ci, *src)]
                y[(n, co, *o)] = acc
    return y


# (in_sizes, kernel, stride, (before, after) pairs, dilation, groups, padding_mode)
NAIVE_CASES = [
    ((9,), (3,), (2,), ((1, 2),), (1,), 1, "zeros"),
    ((8,), (3,), (1,), ((2, 2),), (2,), 2, "reflect"),
    ((6,), (2,), (3,), ((3, 1),), (1,), 1, "circular"),
    ((5,), (4,), (1,), ((0, 3),), (1,), 1, "replicate"),
    ((6, 7), (3, 2), (2, 1), ((1, 0), (2, 1)), (1, 2), 2, "reflect"),
    ((5, 5), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, "replicate"),
    ((7, 5), (2, 3), (3, 2), ((2, 2), (0, 1)), (2, 1), 3, "circular"),
    ((6, 6), (3, 3), (2, 2), ((0, 0), (0, 0)), (1, 1), 1, "zeros"),
    ((4, 5, 3), (2, 3, 2), (1, 2, 1), ((1, 0), (1, 1), (0, 1)), (1, 1, 1), 1, "zeros"),
    ((5, 4, 4), (2, 2, 2), (2, 2, 2), ((1, 1), (1, 1), (1, 1)), (2, 1, 1), 2, "reflect"),
]


def _case_id(case):
    in_sizes, kernel, stride, pairs, dilation, groups, mode = case
    return f"{len(in_sizes)}d-k{kernel}-s{stride}-p{pairs}-d{dilation}-g{groups}-{mode}"


@pytest.mark.parametrize("case", NAIVE_CASES, ids=_case_id)
def test_conv_reference_matches_naive_loops(case):
    in_sizes, kernel, stride, pairs, dilation, groups, mode = case
    rng = np.random.default_rng(0)
    c_in, c_out = 2 * groups, 2 * groups
    x = rng.standard_normal((2, c_in, *in_sizes))
    w = rng.standard_normal((c_out, c_in // groups, *kernel))
    bias = rng.standard_normal(c_out)
    got = conv_reference(x, w, bias, stride=stride, padding=pairs, dilation=dilation,
                         groups=groups, padding_mode=mode)
    expected = naive_conv(x, w, bias, stride, pairs, dilation, groups, mode)
    np.testing.assert_allclose(got, expected, **F64)


@pytest.mark.parametrize("padding, pairs", [(2, ((2, 2),)), ((3,), ((3, 3),)),
                                            ("valid", ((0, 0),)), (((1, 4),), ((1, 4),))])
def test_conv_reference_accepts_every_padding_spelling(padding, pairs):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 1, 8)), rng.standard_normal((1, 1, 3))
    np.testing.assert_allclose(conv_reference(x, w, padding=padding),
                               naive_conv(x, w, None, (1,), pairs, (1,), 1, "zeros"), **F64)


# (in_size, kernel, stride, dilation, expected "same" pairs); "same_lower" mirrors them.
SAME_CASES = [
    (10, 3, 2, 1, (0, 1)),   # out 5, total 1: odd extra at the end
    (7, 4, 1, 2, (3, 3)),    # k_eff 7, total 6
    (5, 2, 3, 1, (0, 0)),    # out 2 already reached without padding
    (6, 4, 1, 1, (1, 2)),
]


@pytest.mark.parametrize("in_size, kernel, stride, dilation, same_pairs", SAME_CASES)
@pytest.mark.parametrize("padding", ["same", "same_lower"])
def test_conv_reference_same_padding_is_ceil_division_with_odd_pad_placed(
        in_size, kernel, stride, dilation, same_pairs, padding):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, in_size)), rng.standard_normal((3, 2, kernel))
    pairs = same_pairs if padding == "same" else same_pairs[::-1]
    got = conv_reference(x, w, stride=stride, padding=padding, dilation=dilation)
    assert got.shape[-1] == ceil(in_size / stride)
    np.testing.assert_array_equal(
        got, conv_reference(x, w, stride=stride, padding=(pairs,), dilation=dilation))


def test_conv_reference_dtype_keyword_sets_compute_dtype():
    x = np.ones((1, 1, 5), dtype=np.float64)
    w = np.ones((1, 1, 2), dtype=np.int64)
    assert conv_reference(x, w).dtype == np.float64
    assert conv_reference(x, w, dtype=np.float32).dtype == np.float32


# ---------------------------------------------------------------------------- transpose
# (in_sizes of the transposed conv, kernel, stride, padding, output_padding, dilation, groups)
TRANSPOSE_CASES = [
    ((5,), (3,), (2,), 1, 1, (1,), 1),
    ((4,), (4,), (3,), ((2, 0),), 2, (1,), 2),
    ((6,), (3,), (1,), 2, 1, (2,), 1),           # output_padding >= stride, < dilation
    ((3, 4), (3, 2), (2, 1), ((1, 2), (0, 1)), (1, 0), (1, 2), 2),
    ((4, 3), (2, 2), (2, 3), 0, (1, 2), (1, 1), 1),
    ((2, 3, 2), (2, 3, 2), (2, 1, 2), ((0, 1), (1, 1), (1, 0)), (1, 0, 0), (1, 1, 2), 3),
    ((4,), (3,), (2,), "same", 0, (1,), 1),
    ((3, 5), (1, 2), (3, 2), "same_lower", 0, (1, 1), 1),  # k_eff < stride: implied padding
]


def _transpose_id(case):
    in_sizes, kernel, stride, padding, output_padding, dilation, groups = case
    return (f"{len(in_sizes)}d-k{kernel}-s{stride}-p{padding}-op{output_padding}"
            f"-d{dilation}-g{groups}")


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_transpose_id)
def test_conv_transpose_reference_is_adjoint_of_conv_reference(case):
    in_sizes, kernel, stride, padding, output_padding, dilation, groups = case
    rng = np.random.default_rng(3)
    c_in, c_out = 2 * groups, groups
    w = rng.standard_normal((c_in, c_out // groups, *kernel))
    x_shape = (2, c_in, *in_sizes)
    kwargs = dict(stride=stride, dilation=dilation, groups=groups)
    y_shape = conv_transpose_reference(np.zeros(x_shape), w, padding=padding,
                                       output_padding=output_padding, **kwargs).shape
    # A string padding is resolved for the transposed direction (total k_eff - stride, odd
    # extra at the end, a negative total becomes output padding): spell it out for conv.
    if isinstance(padding, str):
        assert y_shape[2:] == tuple(n * s for n, s in zip(in_sizes, stride))
        pairs, output_padding = [], []
        for k, s, d in zip(kernel, stride, dilation):
            total = d * (k - 1) + 1 - s
            output_padding.append(max(-total, 0))
            low, high = max(total, 0) // 2, max(total, 0) - max(total, 0) // 2
            pairs.append((low, high) if padding == "same" else (high, low))
        padding = tuple(pairs)
    crop = (slice(None), slice(None)) + tuple(slice(n) for n in in_sizes)
    assert_adjoint(
        lambda y: conv_transpose_reference(y, w, padding=padding, output_padding=output_padding,
                                           **kwargs),
        lambda g: conv_reference(g, w, padding=padding, **kwargs)[crop],
        x_shape, y_shape, rng=rng)


def test_conv_transpose_reference_of_unit_impulse_is_the_kernel():
    w = np.arange(1.0, 4.0).reshape(1, 1, 3)
    y = conv_transpose_reference(np.array([[[0.0, 1.0, 0.0]]]), w, stride=2)
    np.testing.assert_array_equal(y, [[[0, 0, 1, 2, 3, 0, 0]]])


TORCH_TRANSPOSE_CASES = [
    ((7,), (3,), 2, 1, 1, 1, 1),
    ((5,), (4,), 3, 2, 2, 2, 2),
    ((6,), (3,), 1, 0, 1, 2, 1),
    ((4, 5), (3, 2), (2, 1), (1, 0), (1, 0), (1, 2), 2),
    ((3, 4), (2, 3), 3, (2, 1), (2, 0), 1, 3),
    ((3, 2, 4), (2, 3, 2), (2, 1, 2), (0, 1, 1), (1, 0, 1), (1, 1, 2), 2),
]


@pytest.mark.torch
@pytest.mark.parametrize("case", TORCH_TRANSPOSE_CASES, ids=_transpose_id)
def test_conv_transpose_reference_matches_torch(case, torch):
    in_sizes, kernel, stride, padding, output_padding, dilation, groups = case
    rng = np.random.default_rng(4)
    c_in, c_out = 2 * groups, 3 * groups
    x = rng.standard_normal((2, c_in, *in_sizes))
    w = rng.standard_normal((c_in, c_out // groups, *kernel))
    bias = rng.standard_normal(c_out)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding,
                  dilation=dilation, groups=groups)
    torch_fn = getattr(torch.nn.functional, f"conv_transpose{len(in_sizes)}d")
    expected = torch_fn(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias),
                        **kwargs).numpy()
    np.testing.assert_allclose(conv_transpose_reference(x, w, bias, **kwargs), expected, **F64)


@pytest.mark.torch
@pytest.mark.parametrize("case", [c for c in NAIVE_CASES if c[-1] != "zeros"], ids=_case_id)
def test_conv_reference_padding_modes_match_torch_pad(case, torch):
    in_sizes, kernel, stride, pairs, dilation, groups, mode = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2 * groups, *in_sizes))
    w = rng.standard_normal((3 * groups, 2, *kernel))
    torch_pad = tuple(v for pair in reversed(pairs) for v in pair)  # last dim first
    padded = torch.nn.functional.pad(torch.from_numpy(x), torch_pad, mode=mode)
    torch_fn = getattr(torch.nn.functional, f"conv{len(in_sizes)}d")
    expected = torch_fn(padded, torch.from_numpy(w), stride=stride, dilation=dilation,
                        groups=groups).numpy()
    got = conv_reference(x, w, stride=stride, padding=pairs, dilation=dilation, groups=groups,
                         padding_mode=mode)
    np.testing.assert_allclose(got, expected, **F64)


# ---------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("case", NAIVE_CASES, ids=_case_id)
def test_conv_backward_reference_matches_directional_differences(case):
    in_sizes, kernel, stride, pairs, dilation, groups, mode = case
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2 * groups, *in_sizes))
    w = rng.standard_normal((groups, 2, *kernel))
    bias = rng.standard_normal(groups)
    kwargs = dict(stride=stride, padding=pairs, dilation=dilation, groups=groups,
                  padding_mode=mode)
    gy = rng.standard_normal(conv_reference(x, w, **kwargs).shape)
    grad_x, grad_w, grad_b = conv_backward_reference(x, w, gy, **kwargs)
    np.testing.assert_allclose(conv_weight_grad_reference(x, gy, w.shape, **kwargs), grad_w,
                               **F64)

    def loss(x=x, w=w, bias=bias):
        return np.vdot(conv_reference(x, w, bias, **kwargs), gy)

    # loss is linear in each argument: eps=1 makes the central difference exact.
    for name, value, grad in (("x", x, grad_x), ("w", w, grad_w), ("bias", bias, grad_b)):
        directional_derivative_check(lambda v, name=name: loss(**{name: v}), value,
                                     rng.standard_normal(value.shape), grad, eps=1.0,
                                     rtol=1e-12)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_transpose_id)
def test_conv_transpose_backward_reference_matches_directional_differences(case):
    in_sizes, kernel, stride, padding, output_padding, dilation, groups = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 2 * groups, *in_sizes))
    w = rng.standard_normal((2 * groups, 1, *kernel))
    bias = rng.standard_normal(groups)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding,
                  dilation=dilation, groups=groups)
    gy = rng.standard_normal(conv_transpose_reference(x, w, **kwargs).shape)
    grads = conv_transpose_backward_reference(x, w, gy, **kwargs)

    def loss(x=x, w=w, bias=bias):
        return np.vdot(conv_transpose_reference(x, w, bias, **kwargs), gy)

    for name, value, grad in zip(("x", "w", "bias"), (x, w, bias), grads):
        directional_derivative_check(lambda v, name=name: loss(**{name: v}), value,
                                     rng.standard_normal(value.shape), grad, eps=1.0,
                                     rtol=1e-12)


def test_conv_weight_grad_reference_small_step_finite_difference():
    """Small eps also works (the loss is linear, so only rounding error remains)."""
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2))
    kwargs = dict(stride=(2, 1), padding="same", dilation=(1, 2))
    gy = rng.standard_normal(conv_reference(x, w, **kwargs).shape)
    grad_w = conv_weight_grad_reference(x, gy, w.shape, **kwargs)
    directional_derivative_check(lambda v: np.vdot(conv_reference(x, v, **kwargs), gy), w,
                                 rng.standard_normal(w.shape), grad_w, eps=1e-4, rtol=1e-8)


# ---------------------------------------------------------------------------- checks
def test_assert_adjoint_reports_both_inner_products_for_a_wrong_adjoint():
    a = np.arange(6.0).reshape(2, 3)
    with pytest.raises(AssertionError, match=r"<A x, y> = .* but <x, A\^T y> = "):
        assert_adjoint(lambda x: a @ x, lambda y: 2 * a.T @ y, (3,), (2,), rng=0)


def test_assert_adjoint_checks_output_shapes():
    a = np.ones((2, 3))
    with pytest.raises(AssertionError, match=r"adjoint\(y\) has shape"):
        assert_adjoint(lambda x: a @ x, lambda y: a @ a.T @ y, (3,), (2,), rng=0)


def test_directional_derivative_check_reports_a_wrong_gradient():
    x = np.array([1.0, -2.0, 0.5])
    with pytest.raises(AssertionError, match="finite difference .* but <grad, direction>"):
        directional_derivative_check(lambda v: np.sum(v ** 2), x, np.ones(3), x)
    directional_derivative_check(lambda v: np.sum(v ** 2), x, np.ones(3), 2 * x)


def test_tolerances_are_looked_up_by_any_dtype_spelling():
    assert tolerances("float32") is TOLERANCES[np.float32]
    assert tolerances(np.dtype(np.float64)) is TOLERANCES[np.float64]
    with pytest.raises(ValueError, match="no tolerances for dtype float16"):
        tolerances(np.float16)


def test_transpose_reference_when_a_crop_reaches_into_the_other_sides_padding():
    # found by hypothesis on a fresh clone: padding 2 before, output_padding 2 after, input 1
    x = np.ones((1, 1, 1, 1, 1))
    w = np.ones((1, 1, 1, 1, 1))
    kw = dict(stride=(1, 1, 3), padding=((0, 0), (0, 0), (2, 0)), output_padding=(0, 0, 2))
    expected = fastdeconv.conv_transpose(x, w, **kw)
    assert expected.shape == (1, 1, 1, 1, 1)
    np.testing.assert_array_equal(conv_transpose_reference(x, w, **kw), expected)
