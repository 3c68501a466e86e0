"""Shape arithmetic, checked through defining inequalities rather than by repeating formulas."""

import itertools

import numpy as np
import pytest

from fastdeconv._geometry import ConvGeometry, resolve_padding, source_index

SIZES = [1, 2, 5, 8, 13]
KERNELS = [1, 2, 3, 4]
STRIDES = [1, 2, 3]
DILATIONS = [1, 2]
PADS = [(0, 0), (1, 0), (0, 2), (2, 1)]


def _conv_cases():
    for n, k, s, d, (b, a) in itertools.product(SIZES, KERNELS, STRIDES, DILATIONS, PADS):
        if n + b + a >= d * (k - 1) + 1:
            yield n, k, s, d, (b, a)


@pytest.mark.parametrize("n, k, s, d, pad", list(_conv_cases()))
def test_conv_output_size_is_the_number_of_windows_that_fit(n, k, s, d, pad):
    g = ConvGeometry.for_conv((n,), (k,), stride=s, padding=(pad,), dilation=d)
    (out,) = g.output_size
    k_eff = d * (k - 1) + 1
    padded = n + sum(pad)
    # the last window fits, the next one would not (Chainer's test_conv inequality)
    assert (out - 1) * s + k_eff <= padded < out * s + k_eff


@pytest.mark.parametrize("n, k, s, d, pad", list(_conv_cases()))
def test_conv_transpose_output_maps_back_to_its_input_through_the_forward_conv(n, k, s, d, pad):
    for op in range(max(s, d)):
        try:
            t = ConvGeometry.for_conv_transpose((n,), (k,), stride=s, padding=(pad,),
                                                output_padding=op, dilation=d)
        except ValueError as exc:
            assert "empty" in str(exc)
            continue
        (out,) = t.input_size  # the transposed conv's output is the forward conv's input
        assert t.output_size == (n,)
        assert out == (n - 1) * s - sum(pad) + d * (k - 1) + 1 + op
        if op < s:  # every output size in the stride's range maps back to n
            fwd = ConvGeometry.for_conv((out,), (k,), stride=s, padding=(pad,), dilation=d)
            assert fwd.output_size == (n,)


@pytest.mark.parametrize("n, k, s, d", list(itertools.product(SIZES, KERNELS, STRIDES, DILATIONS)))
@pytest.mark.parametrize("mode", ["same", "same_lower"])
def test_same_padding_gives_ceil_of_size_over_stride_with_the_odd_pad_placed(n, k, s, d, mode):
    g = ConvGeometry.for_conv((n,), (k,), stride=s, padding=mode, dilation=d)
    assert g.output_size == (-(-n // s),)
    (before, after), = g.padding
    assert abs(before - after) <= 1
    assert (after >= before) if mode == "same" else (before >= after)
    # minimal: the last window fits in the padded input, and would not with one pad less
    (out,), k_eff, total = g.output_size, d * (k - 1) + 1, before + after
    assert (out - 1) * s + k_eff <= n + total
    assert total == 0 or (out - 1) * s + k_eff > n + total - 1


@pytest.mark.parametrize("n, k, s, d", list(itertools.product(SIZES, KERNELS, STRIDES, DILATIONS)))
@pytest.mark.parametrize("mode", ["same", "same_lower"])
def test_same_padding_for_conv_transpose_gives_size_times_stride(n, k, s, d, mode):
    t = ConvGeometry.for_conv_transpose((n,), (k,), stride=s, padding=mode, dilation=d)
    assert t.input_size == (n * s,)
    (before, after), = t.padding
    k_eff = d * (k - 1) + 1
    assert before + after == max(k_eff - s, 0)
    assert t.output_padding == (max(s - k_eff, 0),)
    assert (after >= before) if mode == "same" else (before >= after)


def test_valid_padding_is_zero_padding_in_both_directions():
    assert ConvGeometry.for_conv((9,), (3,), padding="valid").padding == ((0, 0),)
    t = ConvGeometry.for_conv_transpose((4,), (3,), stride=2, padding="valid", output_padding=1)
    assert t.padding == ((0, 0),) and t.input_size == ((4 - 1) * 2 + 3 + 1,)


@pytest.mark.parametrize(
    "padding, expected",
    [
        (1, ((1, 1), (1, 1))),
        ((1, 2), ((1, 1), (2, 2))),
        ([(1, 0), (0, 3)], ((1, 0), (0, 3))),
        (np.array([[2, 1], [0, 0]]), ((2, 1), (0, 0))),
    ],
)
def test_padding_forms_resolve_to_before_after_pairs(padding, expected):
    pairs, implied = resolve_padding(padding, (8, 8), (3, 3), (1, 1), (1, 1), transpose=False)
    assert pairs == expected and implied == (0, 0)


@pytest.mark.parametrize(
    "padding, error, match",
    [
        (-1, ValueError, "padding must be non-negative"),
        ((1, -2), ValueError, "padding must be non-negative"),
        ((1, 2, 3), ValueError, r"padding must be an int, a tuple of 2 ints"),
        (((1, 2),), ValueError, r"it has 1 pairs"),
        (((1, 2, 3), (0, 0)), ValueError, r"does not have 2 entries"),
        ("fulll", ValueError, r"padding must be one of \('valid', 'same', 'same_lower', 'full'\)"),
        (1.5, TypeError, r"padding must be an int"),
        (((1.0, 2), (0, 0)), TypeError, r"padding values must be ints"),
    ],
)
def test_bad_padding_is_rejected_naming_padding(padding, error, match):
    with pytest.raises(error, match=match):
        ConvGeometry.for_conv((8, 8), (3, 3), padding=padding)


def test_kernel_larger_than_padded_input_is_rejected():
    with pytest.raises(ValueError, match=r"kernel size is larger than the padded input in spatial dimension 1: dilated kernel extent 5 > padded input size 4"):
        ConvGeometry.for_conv((8, 2), (3, 3), padding=((0, 0), (1, 1)), dilation=2)


@pytest.mark.parametrize("name", ["stride", "dilation"])
def test_non_positive_stride_and_dilation_are_rejected(name):
    with pytest.raises(ValueError, match=rf"{name} must be an int or a tuple of 2 positive ints, got \(1, 0\)"):
        ConvGeometry.for_conv((8, 8), (3, 3), **{name: (1, 0)})


def test_output_padding_must_be_below_max_of_stride_and_dilation():
    ConvGeometry.for_conv_transpose((4,), (3,), stride=1, dilation=3, output_padding=2)
    with pytest.raises(ValueError, match=r"output_padding must be smaller than max\(stride, dilation\)"):
        ConvGeometry.for_conv_transpose((4,), (3,), stride=2, dilation=1, output_padding=2)
    with pytest.raises(ValueError, match="output_padding must be an int or a tuple of 1 non-negative ints, got -1"):
        ConvGeometry.for_conv_transpose((4,), (3,), stride=2, output_padding=-1)


def test_output_padding_must_be_zero_with_a_padding_string():
    with pytest.raises(ValueError, match="output_padding must be 0 when padding is 'same'"):
        ConvGeometry.for_conv_transpose((4,), (3,), stride=2, padding="same", output_padding=1)


@pytest.mark.parametrize("n, k, s, p", [(4, 3, 2, 1), (5, 4, 3, 0), (3, 1, 4, 0), (7, 5, 2, 2)])
def test_output_size_reaches_every_size_in_the_stride_range_like_pytorch(n, k, s, p):
    low = (n - 1) * s - 2 * p + k
    for want in range(low, low + s):
        t = ConvGeometry.for_conv_transpose((n,), (k,), stride=s, padding=p, output_size=(want,))
        assert t.input_size == (want,) and t.output_padding == (want - low,)
    full_shape = (2, 3, low)  # batch and channels are accepted and ignored
    assert ConvGeometry.for_conv_transpose((n,), (k,), stride=s, padding=p, output_size=full_shape).input_size == (low,)
    for want in (low - 1, low + s):
        with pytest.raises(ValueError, match=rf"output_size \({want},\) is unreachable: .* can only be {low} to {low + s - 1}"):
            ConvGeometry.for_conv_transpose((n,), (k,), stride=s, padding=p, output_size=(want,))


def test_output_size_errors_for_wrong_length_conflicts_and_types():
    with pytest.raises(ValueError, match="output_size must have 2 spatial sizes"):
        ConvGeometry.for_conv_transpose((4, 4), (3, 3), output_size=(6, 6, 6))
    with pytest.raises(ValueError, match="give output_size or output_padding, not both"):
        ConvGeometry.for_conv_transpose((4,), (3,), stride=2, output_padding=1, output_size=(10,))
    with pytest.raises(TypeError, match="output_size must be a sequence of ints"):
        ConvGeometry.for_conv_transpose((4,), (3,), output_size=6)
    with pytest.raises(ValueError, match=r"output_size \(9,\) is unreachable"):
        ConvGeometry.for_conv_transpose((4,), (3,), stride=2, padding="same", output_size=(9,))


def test_conv_transpose_with_an_empty_output_is_rejected():
    with pytest.raises(ValueError, match="conv_transpose output would be empty in spatial dimension 0"):
        ConvGeometry.for_conv_transpose((1,), (2,), padding=1)


@pytest.mark.parametrize("mode, np_mode", [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")])
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_source_index_agrees_with_numpy_pad(mode, np_mode, size):
    pad = size if mode != "reflect" else size - 1
    if mode == "reflect" and size == 1:
        pad = 0
    expected = np.pad(np.arange(size), (pad, pad), mode=np_mode)
    assert source_index(np.arange(-pad, size + pad), size, mode).tolist() == expected.tolist()


def test_source_index_marks_zero_padding_with_minus_one():
    assert source_index(np.arange(-2, 5), 3, "zeros").tolist() == [-1, -1, 0, 1, 2, -1, -1]


def test_pointwise_geometry_is_recognised_only_for_1x1_unit_stride_unpadded():
    assert ConvGeometry.for_conv((5, 4), (1, 1)).is_pointwise
    assert not ConvGeometry.for_conv((5, 4), (1, 1), stride=2).is_pointwise
    assert not ConvGeometry.for_conv((5, 4), (1, 1), padding=1).is_pointwise
    assert not ConvGeometry.for_conv((5, 4), (1, 2)).is_pointwise
    assert not ConvGeometry.for_conv_transpose((5,), (1,), dilation=2, output_padding=1).is_pointwise


@pytest.mark.parametrize("n_out, s, pad", [(1, 1, 0), (7, 2, 1), (13, 3, 4), (5, 8, 3), (16, 32, 16)])
def test_phase_range_lists_the_outputs_of_each_residue(n_out, s, pad):
    g = ConvGeometry(input_size=(n_out,), output_size=(1,), kernel_size=(1,), stride=(s,),
                     dilation=(1,), padding=((pad, 0),), output_padding=(0,))
    q_lo, q_hi = g.phase_range(0)
    for rho in range(s):
        reached = [q * s + rho - pad for q in range(q_lo[rho], q_hi[rho])]
        assert reached == [o for o in range(n_out) if (o + pad) % s == rho]


def test_output_size_error_points_to_output_padding_when_dilation_reaches_further():
    # output_size reaches p_o < stride (PyTorch's rule); output_padding itself may go up to
    # max(stride, dilation) - 1, which the message says when that would reach the size
    assert ConvGeometry.for_conv_transpose((4,), (3,), dilation=2, output_padding=1).input_size == (9,)
    with pytest.raises(ValueError, match=r"can only be 8 to 8 \(output_size picks an output_padding of 0 to 0, below the stride, as PyTorch does; output_padding up to 1 .* reaches up to 9 when passed directly\), got 9"):
        ConvGeometry.for_conv_transpose((4,), (3,), dilation=2, output_size=(9,))
    with pytest.raises(ValueError, match=r"as PyTorch does\), got 10"):   # beyond both: no hint
        ConvGeometry.for_conv_transpose((4,), (3,), dilation=2, output_size=(10,))


@pytest.mark.parametrize("n, k, d, pad, out_pad", [
    (n, k, d, pad, out_pad)
    for n, k, d, pad, out_pad in itertools.product([1, 4, 7], [1, 2, 3], [1, 2], [0, 1, 2, 4], [0, 1])
    if out_pad < d and (n - 1) - 2 * pad + d * (k - 1) + 1 + out_pad >= 1
])
def test_a_stride_1_transposed_convolution_is_a_forward_convolution_of_its_input(n, k, d, pad, out_pad):
    g = ConvGeometry.for_conv_transpose((n,), (k,), padding=pad, dilation=d,
                                        output_padding=out_pad)
    forward = g.transpose_as_forward()
    if pad > d * (k - 1):   # more padding than the kernel reaches: no forward form
        assert forward is None
        return
    # the transposed convolution's input to its output, through the same (flipped) kernel
    assert (forward.input_size, forward.output_size) == (g.output_size, g.input_size)
    rebuilt = ConvGeometry.for_conv(g.output_size, (k,), padding=forward.padding, dilation=d)
    assert rebuilt.output_size == g.input_size
    assert ConvGeometry.for_conv_transpose((n,), (k,), stride=2).transpose_as_forward() is None


@pytest.mark.parametrize("kernel, stride, r", [
    ((4, 4), (2, 2), 2), ((6, 6), (2, 2), 3), ((4, 6), (2, 3), 2), ((3, 3), (1, 1), None),
    ((4, 4), (2, 1), None), ((8, 8), (2, 2), None), ((4, 4, 4), (2, 2, 2), None),
])
def test_space_to_depth_rearranges_kernels_of_r_times_the_stride(kernel, stride, r):
    g = ConvGeometry.for_conv((13,) * len(kernel), kernel, stride=stride, padding=1)
    assert g.phase_sub_kernel == r
    s2d = g.space_to_depth()
    if r is None:
        assert s2d is None
        return
    assert s2d.kernel_size == (r, r) and s2d.stride == (1, 1) and not any(s2d.pad_before)
    assert s2d.output_size == g.output_size
    assert s2d.input_size == tuple(o + r - 1 for o in g.output_size)


def test_each_stride_phase_is_a_stride_1_forward_geometry_onto_its_outputs():
    g = ConvGeometry.for_conv_transpose((5, 6), (4, 3), stride=(2, 3), padding=1)
    for phase in g.transpose_phases():
        sub = g.phase_geometry(phase)
        assert sub.input_size == g.output_size and sub.output_size == phase["sub_out"]
        assert sub.kernel_size == phase["sub_kernel"] and sub.pad_before == phase["sub_pad"]
        assert sub.stride == sub.dilation == (1, 1)


def test_the_subpixel_grid_holds_every_phase_of_a_kernel_multiple_of_the_stride():
    g = ConvGeometry.for_conv_transpose((5, 6), (4, 6), stride=(2, 3), padding=1)
    u_min, common, sub = g.subpixel_grid()
    for dim in range(2):
        q_lo, q_hi = g.phase_range(dim)
        assert u_min[dim] == q_lo.min() and u_min[dim] + common[dim] == q_hi.max()
    assert sub.kernel_size == (2, 2) and sub.output_size == common
    assert ConvGeometry.for_conv_transpose((5,), (3,), stride=2).subpixel_grid() is None


def test_kernel_arguments_are_intp_arrays_of_the_named_fields():
    g = ConvGeometry.for_conv((9, 8), (3, 2), stride=(2, 1), padding=((1, 0), (0, 1)))
    args = g.as_kernel_args()
    assert [a.tolist() for a in args] == [[9, 8], list(g.output_size), [3, 2], [2, 1], [1, 1],
                                          [1, 0]]
    assert all(a.dtype == np.intp for a in args)
    assert [a.tolist() for a in g.as_kernel_args("stride", "input_size")] == [[2, 1], [9, 8]]
