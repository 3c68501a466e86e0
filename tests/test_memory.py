"""Memory: no leaks over 10,000 calls, bounded workspace, MemoryError with the size, 64-bit
index arithmetic."""

import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _dispatch, _validation
from fastdeconv._algorithms import current_budget, depthwise, phases
from fastdeconv._operators import OPERATORS
from fastdeconv.testing import conv_backward_reference, conv_transpose_reference


def _rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _mixed_calls(rng):
    """One call of the cycle: every registered operator and its backward (the registry's
    examples), then a call that fails validation."""
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    calls = [call for op in OPERATORS for call in op.example(x, rng)]

    def one(i):
        k = i % (len(calls) + 1)
        if k < len(calls):
            calls[k]()
        else:
            try:
                fastdeconv.conv(x, w, stride=0)
            except ValueError:
                pass
    return one


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_no_leak_over_10000_calls(rng):
    one = _mixed_calls(rng)
    for i in range(600):  # warm-up: caches, thread pools, BLAS buffers
        one(i)
    gc.collect()
    rss0 = _rss_bytes()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(10_000):
            one(i)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    rss_growth = _rss_bytes() - rss0
    assert growth < 256 * 1024, f"traced Python/NumPy memory grew by {growth} bytes"
    assert rss_growth < 16 * 2**20, f"RSS grew by {rss_growth / 2**20:.1f} MiB"


def test_workspace_is_bounded_when_the_full_im2col_buffer_would_not_fit(peak_extra_bytes,
                                                                        engine_scratch_allowance):
    # forward im2col of every sample at once: 4096 samples x (64*3*3 rows) x (32*32 cols)
    # x 4 bytes = 9 GiB; the tiled workspace stays under WORKSPACE_BYTES.
    n, c, h = 4096, 64, 32
    full_im2col = n * c * 9 * h * h * 4
    assert full_im2col > 8 * 2**30
    x = np.zeros((n, c, h, h), np.float32)  # 1 GiB, lazily zero (calloc)
    x[:, :, ::7, ::5] = 1.0
    w = np.ones((2, c, 3, 3), np.float32)
    extra, (y,) = peak_extra_bytes(lambda: fastdeconv.conv(x, w, padding=1))
    assert extra <= _dispatch.WORKSPACE_BYTES + engine_scratch_allowance(), extra
    assert y[0, 0, 0, 0] == fastdeconv.conv(x[:1, :, :2, :2], w, padding=1)[0, 0, 0, 0]


@pytest.mark.parametrize("call", [
    lambda: fastdeconv.conv_transpose(np.ones((1, 1, 2)), np.ones((1, 1, 1)), stride=2**50),
    lambda: fastdeconv.conv_transpose(np.ones((4, 8, 2, 2)), np.ones((8, 8, 3, 3)),
                                      output_size=(2**30, 2**30), stride=2**29),
    lambda: fastdeconv.conv(np.ones((1, 1, 1)), np.ones((1, 1, 1)), padding=2**50),
    lambda: fastdeconv.max_unpool(np.ones((1, 1, 2)), np.zeros((1, 1, 2), np.int64), 1,
                                  stride=2**60),
])
def test_an_output_that_cannot_be_allocated_raises_memoryerror_with_the_size(call):
    with pytest.raises(MemoryError, match=r"GiB"):
        call()


@pytest.mark.slow
def test_index_arithmetic_is_64_bit_beyond_2_31_elements():
    """An output of 2**31 + 9 float32 elements (8 GiB, lazily zeroed: only two are written)."""
    stride = 2**31 + 8
    x = np.array([[[1.5, 2.5]]], np.float32)
    idx = np.array([[[3, stride]]])
    y = fastdeconv.max_unpool(x, idx, 1, stride=stride)
    assert y.shape == (1, 1, 2**31 + 9)
    assert y[0, 0, 3] == 1.5 and y[0, 0, stride] == 2.5
    assert y[0, 0, 2**31 - 1] == 0 and y[0, 0, 2**31] == 0
    assert y[0, 0, stride - 1] == 0 and y.shape[-1] == stride + 1


@pytest.mark.parametrize("call", [
    # index arithmetic near 2**63 would overflow: rejected, naming the parameter
    lambda: fastdeconv.conv(np.ones((1, 1, 2, 1)), np.ones((1, 1, 1, 4)), stride=(1, 2**63 - 1), padding="same"),
    lambda: fastdeconv.conv(np.ones((1, 1, 2, 1)), np.ones((1, 1, 1, 4)), dilation=(1, 2**63 - 1), padding="same"),
    lambda: fastdeconv.conv_transpose(np.ones((1, 1, 2)), np.ones((1, 1, 2)), stride=2**62),
])
def test_geometry_beyond_64_bit_index_arithmetic_is_rejected(call):
    with pytest.raises(ValueError, match=r"too large for 64-bit index arithmetic"):
        call()


def test_huge_strides_do_not_enumerate_stride_phases():
    # kernel < stride with one group per channel would pick a phase algorithm; with 2**31
    # phases it must fall back to col2im (measured before: over 24 GB and an OOM kill)
    from fastdeconv._problem import conv_transpose_problem

    problem = conv_transpose_problem((1, 1, 2), (1, 1, 1), stride=2**31 + 7)
    assert _dispatch.plan("backward_input", problem, 4).algorithm == "col2im"


@pytest.mark.parametrize("stride", [(2**40, 2**40), (2**32, 2**32), (2**31, 2**31, 2**31)])
def test_stride_phases_are_counted_exactly_beyond_int64(stride):
    # prod(stride) overflows int64 (2**80 wraps to 0): counted with numpy.prod it looked
    # like "few phases", and the depthwise path enumerated them until memory ran out (the
    # long fuzz pass: conv_backward, stride (2**40, 2**40))
    from fastdeconv._problem import conv_transpose_problem

    ndim = len(stride)
    problem = conv_transpose_problem((1, 1) + (1,) * ndim, (1, 1) + (2,) * ndim, stride=stride)
    assert depthwise._is_depthwise(problem)
    assert not phases.phases_apply(problem, current_budget())
    assert _dispatch.plan("backward_input", problem, 8).algorithm == "col2im"


def test_conv_backward_and_conv_transpose_with_overflowing_stride_products(monkeypatch, rng):
    """Small outputs whose strides multiply beyond int64: results, without any phase list."""
    from fastdeconv._geometry import ConvGeometry

    def no_enumeration(self):
        raise AssertionError(f"enumerated the stride phases of stride {self.stride}")

    monkeypatch.setattr(ConvGeometry, "transpose_phases", no_enumeration)
    stride = (2**40, 2**40)
    x, w = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal((1, 1, 2, 2))
    gy = rng.standard_normal((2, 1, 1, 1))
    gx, gw, gb = fastdeconv.conv_backward(gy, x, w, stride=stride)
    ex, ew, eb = conv_backward_reference(x, w, gy, stride=stride)
    np.testing.assert_allclose(gx, ex, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, ew, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, eb, rtol=1e-12, atol=1e-12)
    # conv_transpose of a 1 x 1 input: the output is the kernel's size, whatever the stride
    x1 = rng.standard_normal((2, 1, 1, 1))
    y = fastdeconv.conv_transpose(x1, w, stride=stride)
    np.testing.assert_allclose(y, conv_transpose_reference(x1, w, stride=stride),
                               rtol=1e-12, atol=1e-12)


def test_resize_tables_that_cannot_fit_raise_memoryerror_before_they_are_built(monkeypatch):
    # 2 -> 2**24 outputs of a linear stencil: about 2 GiB of tables (the output is 64 MiB);
    # pretend only 1 GiB is available
    monkeypatch.setattr(_validation, "available_memory_bytes", lambda: 2**30)
    with pytest.raises(MemoryError, match=r"interpolation tables of resize from \(2,\) to "
                                          r"\(16777216,\) "
                                          r"would need about 2\.\d+ GiB; only 1 GiB"):
        fastdeconv.resize(np.ones((1, 1, 2), np.float32), 2**24, mode="linear")
    monkeypatch.setattr(_validation, "available_memory_bytes", lambda: None)  # not Linux
    assert fastdeconv.resize(np.ones((1, 1, 2)), 2**20, mode="linear").shape == (1, 1, 2**20)


def _pooled(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return fastdeconv.max_pool(x, 2, return_indices=True)


def _unpool_case(x):
    y, idx = _pooled(x.shape)
    return lambda: fastdeconv.max_unpool(y, idx, 2)


def _unpool_backward_case(x):
    _, idx = _pooled(x.shape)
    return lambda: fastdeconv.max_unpool_backward(x, idx)


_BIG = (16, 64, 128, 128)  # 64 MiB of float32
W3 = np.ones((64, 64, 3, 3), np.float32)
#: name -> function of the 64 MiB input returning the call to measure (inputs prepared)
MEMORY_CASES = {
    "conv": lambda x: lambda: fastdeconv.conv(x, W3, padding=1),
    "conv_transpose": lambda x: lambda: fastdeconv.conv_transpose(
        x, np.ones((64, 32, 4, 4), np.float32), stride=2, padding=1),
    "conv_transpose depthwise": lambda x: lambda: fastdeconv.conv_transpose(
        x, np.ones((64, 1, 4, 4), np.float32), stride=2, padding=1, groups=64),
    "conv_transpose subpixel": lambda x: lambda: fastdeconv.conv_transpose(
        x[:2], np.ones((64, 64, 8, 8), np.float32), stride=4, padding=2),
    "conv_backward": lambda x: lambda: fastdeconv.conv_backward(x, x, W3, padding=1),
    "resize linear": lambda x: lambda: fastdeconv.resize(x, (200, 200), mode="linear"),
    "resize cubic antialias": lambda x: lambda: fastdeconv.resize(x, (50, 50), mode="cubic",
                                                                  antialias=True),
    "max_pool": lambda x: lambda: fastdeconv.max_pool(x, 2, return_indices=True),
    "max_unpool": _unpool_case,
    "max_unpool_backward": _unpool_backward_case,
    "pixel_shuffle": lambda x: lambda: fastdeconv.pixel_shuffle(x, 2),
    # one plane of 2**24 outputs: scratch marks per thread would exceed the bound with 8
    "max_unpool_backward one plane": lambda x: _unpool_backward_case(x.reshape(1, 1, 4096, -1)),
}


@pytest.mark.parametrize("name", MEMORY_CASES)
@pytest.mark.parametrize("threads", [1, 8])
def test_peak_extra_memory_is_within_the_larger_operand_plus_32_mib(name, threads, peak_extra_bytes):
    # the bound of issue #5: peak extra memory <= max(input bytes, output bytes) + 32 MiB
    x = np.ones(_BIG, np.float32)
    previous = fastdeconv.set_num_threads(threads)
    try:
        extra, results = peak_extra_bytes(MEMORY_CASES[name](x))
    finally:
        fastdeconv.set_num_threads(previous)
    largest = max([x.nbytes] + [r.nbytes for r in results if r is not None])
    assert extra <= largest + 32 * 2**20, f"{extra / 2**20:.1f} MiB extra, " \
                                          f"operands up to {largest / 2**20:.1f} MiB"


@pytest.mark.parametrize("call, name", [
    (lambda: fastdeconv.conv_transpose(np.ones((1, 1, 2), np.float32),
                                       np.ones((1, 1, 1), np.float32), stride=2**31),
     r"the output of shape \(1, 1, 2147483649\) \(from x, weight, stride, padding and "
     r"dilation\) would have 2147483649 spatial positions"),
    (lambda: fastdeconv.conv(np.zeros((1, 1, 2**16, 2**15 + 1), np.float32),
                             np.ones((1, 1, 1, 1), np.float32)),
     "x has 2147549184 spatial positions"),
])
def test_more_than_2_31_positions_per_sample_is_a_named_limit_or_a_memoryerror(
        monkeypatch, call, name):
    # (the x above is 8 GiB of lazily zeroed pages: never touched, the check comes first)
    monkeypatch.setattr(_validation, "available_memory_bytes", lambda: 2**40)
    with pytest.raises(ValueError, match=name + r" per sample.*32-bit BLAS"):
        call()
    monkeypatch.setattr(_validation, "available_memory_bytes", lambda: 2**30)
    with pytest.raises(MemoryError, match=r"the output of shape .* would need about 8 GiB"):
        call()


# ------------------------------------------------------------- results on huge-page boundaries
_ON_LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"),
                               reason="the alignment is made on Linux only")


@_ON_LINUX
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("zero", [False, True])
def test_a_large_result_starts_on_a_huge_page_boundary_and_its_last_one_is_in_the_buffer(
        zero, dtype):
    shape = (3, 5, 4096, 29)    # 6.8 MiB of float32: not a multiple of 2 MiB
    y = _validation.allocate(shape, dtype, "output", zero=zero)
    assert y.ctypes.data % 2**21 == 0
    buffer_end = y.base.ctypes.data + y.base.nbytes
    assert buffer_end >= y.ctypes.data + -(-y.nbytes // 2**21) * 2**21
    assert y.shape == shape and y.dtype == dtype
    assert y.flags.c_contiguous and y.flags.writeable
    if zero:
        assert not y.any()
    y[...] = 3     # every byte is the array's own
    assert y.sum(dtype=np.float64) == 3 * y.size


@_ON_LINUX
def test_an_operator_result_of_4_mib_is_aligned_and_a_workspace_or_small_result_is_not(rng):
    x = rng.standard_normal((1, 64, 16, 16, 16)).astype(np.float32)
    w = rng.standard_normal((64, 32, 2, 2, 2)).astype(np.float32)
    y = fastdeconv.conv_transpose(x, w, stride=2)       # 1 x 32 x 32^3 float32: 4 MiB
    assert y.nbytes == _validation.HUGE_PAGE_ALIGN_FROM
    assert y.ctypes.data % 2**21 == 0
    np.testing.assert_allclose(y, conv_transpose_reference(x.astype(np.float64), w, stride=2),
                               rtol=1e-4, atol=1e-4)
    small = _validation.allocate((_validation.HUGE_PAGE_ALIGN_FROM // 4 - 1,), np.float32, "output")
    work = _validation.allocate((2**21,), np.float32, "workspace", result=False)
    assert small.base is None and work.base is None     # NumPy's own allocations
