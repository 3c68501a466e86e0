"""fastdeconv.resize / resize_backward against PyTorch, ONNX Runtime, the NumPy reference, the
sparse matrix and the dot test; conventions, dtypes, threads and bad input."""

import itertools
import math

import numpy as np
import pytest

import fastdeconv
from fastdeconv.sparse import resize_matrix
from fastdeconv.testing import (
    assert_adjoint,
    resize_backward_reference,
    resize_reference,
)

DTYPES = ["float32", "float64"]
SCALES = [0.3, 0.5, 0.75, 1.3, 1.5, 2.0, 2.5, 3.0, 4.0, 1 / 3, 2 / 3, 1.7]
ONNX_COORDINATES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "half_pixel_symmetric"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def _torch_mode(mode, ndim):
    if mode == "linear":
        return {1: "linear", 2: "bilinear", 3: "trilinear"}[ndim]
    return "bicubic" if mode == "cubic" else mode


def _draw(rng, ndim, by_scale, *, max_in=9, min_last_out=1, avoid_equal=False):
    """Random spatial input size and (size, scale_factor) keywords of a resize."""
    max_in = max_in if ndim < 3 else 6
    while True:
        in_size = tuple(int(v) for v in rng.integers(1, max_in + 1, ndim))
        if by_scale:
            scales = tuple(float(rng.choice(SCALES)) for _ in range(ndim))
            out = tuple(math.floor(n * s) for n, s in zip(in_size, scales))
            kwargs = dict(scale_factor=scales if ndim > 1 else scales[0])
        else:
            out = tuple(int(v) for v in rng.integers(1, 2 * max_in + 2, ndim))
            kwargs = dict(size=out if ndim > 1 or rng.random() < 0.5 else out[0])
        if min(out) < 1 or out[-1] < min_last_out:
            continue
        if avoid_equal and any(o == n for o, n in zip(out, in_size)):
            continue
        return in_size, out, kwargs


# ======================================================================== PyTorch oracle
def _torch_cases():
    cases = []
    for ndim, mode in itertools.product([1, 2, 3], ["nearest", "nearest-exact", "linear",
                                                    "cubic", "area"]):
        if mode == "cubic" and ndim != 2:   # PyTorch has bicubic only
            continue
        interpolating = mode in ("linear", "cubic")
        for align, aa, by_scale, dtype in itertools.product(
                [None, False, True] if interpolating else [None],
                [False, True] if interpolating and ndim == 2 else [False],
                [False, True], DTYPES):
            cases.append((ndim, mode, align, aa, by_scale, dtype))
    return cases


TORCH_CASES = _torch_cases()


def _ids(cases):
    return ["-".join(str(v) for v in case) for case in cases]


def _torch_nearest_self_adjoint(torch, n_in, kwargs_1d, mode, dtype):
    """Whether PyTorch's nearest backward picks the pixels its forward picks, along one dim.

    PyTorch's forward and backward compute the nearest index with different formulas (the
    backward with shortcuts and float32 scales), so for rare sizes its autograd is not the
    adjoint of its forward; fastdeconv is the exact adjoint of the forward.
    """
    tdtype = getattr(torch, dtype)
    x = torch.arange(n_in, dtype=tdtype).reshape(1, 1, n_in)
    forward = torch.nn.functional.interpolate(x, mode=mode, **kwargs_1d)[0, 0].long().numpy()
    n_out = forward.size
    xs = torch.zeros((1, n_out, n_in), dtype=tdtype, requires_grad=True)
    y = torch.nn.functional.interpolate(xs, mode=mode, **kwargs_1d)
    (grad,) = torch.autograd.grad(y, xs, torch.eye(n_out, dtype=tdtype)[None])
    return np.array_equal(grad[0].argmax(-1).numpy(), forward)


def _one_dim_kwargs(kwargs, d, ndim):
    if "size" in kwargs:
        size = kwargs["size"]
        return dict(size=size[d] if isinstance(size, tuple) else size)
    sf = kwargs["scale_factor"]
    return dict(scale_factor=sf[d] if isinstance(sf, tuple) else sf)


def _compare_torch(torch, case, rng, assert_close):
    ndim, mode, align, aa, by_scale, dtype = case
    # PyTorch's antialiased kernels are wrong for an output width of 1 (torch 2.13: every
    # output row equals the first); fastdeconv computes it correctly.
    in_size, out, kwargs = _draw(rng, ndim, by_scale, min_last_out=2 if aa else 1)
    x = rng.standard_normal((2, 3) + in_size).astype(dtype)
    keywords = dict(mode=mode, align_corners=align, antialias=aa, **kwargs)
    y = fastdeconv.resize(x, **keywords)
    tmode = _torch_mode(mode, ndim)
    tkw = dict(kwargs)
    if "scale_factor" in tkw and ndim > 1:
        tkw["scale_factor"] = tuple(tkw["scale_factor"])
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.interpolate(xt, mode=tmode, align_corners=align, antialias=aa, **tkw)
    assert y.dtype == np.dtype(dtype) and y.shape == tuple(yt.shape)
    if mode.startswith("nearest"):
        np.testing.assert_array_equal(y, yt.detach().numpy())
    else:
        assert_close(y, yt.detach().numpy(), dtype)
    g = rng.standard_normal(y.shape).astype(dtype)
    (gxt,) = torch.autograd.grad(yt, xt, torch.from_numpy(g))
    gx = fastdeconv.resize_backward(g, x.shape, **keywords)
    if mode.startswith("nearest") and not all(
            _torch_nearest_self_adjoint(torch, n, _one_dim_kwargs(kwargs, d, ndim), tmode, dtype)
            for d, n in enumerate(in_size)):
        expected = resize_backward_reference(g, x.shape, **keywords)
    elif aa and by_scale and any(o == n for o, n in zip(out, in_size)):
        # PyTorch's antialiased forward skips a dimension whose size is kept, but its
        # backward interpolates it with the given scale factor: not the adjoint.
        expected = resize_backward_reference(g, x.shape, **keywords)
    elif mode == "cubic" and by_scale and out == in_size:
        # PyTorch's bicubic backward copies when no size changes, its forward interpolates
        # with the given scale factor: not the adjoint either.
        expected = resize_backward_reference(g, x.shape, **keywords)
    else:
        expected = gxt.numpy()
    assert_close(gx, expected, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("case", TORCH_CASES, ids=_ids(TORCH_CASES))
def test_resize_and_its_gradient_match_torch(torch, case, rng, assert_close):
    for _ in range(8):
        _compare_torch(torch, case, rng, assert_close)


@pytest.mark.torch
@pytest.mark.slow
def test_long_torch_sweep(torch, assert_close):
    rng = np.random.default_rng(5)
    for case in TORCH_CASES:
        for _ in range(200):
            _compare_torch(torch, case, rng, assert_close)


def test_torch_sweep_covers_every_combination():
    seen = {(ndim, mode, align, aa, by_scale)
            for ndim, mode, align, aa, by_scale, _ in TORCH_CASES}
    assert {m for _, m, *_ in seen} == {"nearest", "nearest-exact", "linear", "cubic", "area"}
    assert {n for n, *_ in seen} == {1, 2, 3}
    for ndim in (1, 2, 3):
        for align in (None, False, True):
            assert (ndim, "linear", align, False, True) in seen
            assert (ndim, "linear", align, False, False) in seen
    for mode, align, by_scale in itertools.product(["linear", "cubic"], [False, True],
                                                   [False, True]):
        assert (2, mode, align, True, by_scale) in seen


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_nearest_picks_torch_pixels_exactly(torch, mode, dtype, ndim):
    """Sizes up to 40 -> 90 and a set of scales, along the last dimension (the others go
    2 -> 3): PyTorch's float arithmetic, which differs between its 2-D and 1-D/3-D kernels."""
    lead_in, lead_out, lead_scale = (2,) * (ndim - 1), (3,) * (ndim - 1), (1.7,) * (ndim - 1)
    for n_in in range(1, 41, 3):
        x = np.broadcast_to(np.arange(n_in, dtype=dtype), (1, 1) + lead_in + (n_in,)).copy()
        xt = torch.from_numpy(x)
        for n_out in range(1, 91, 2):
            expected = torch.nn.functional.interpolate(xt, size=lead_out + (n_out,), mode=mode)
            np.testing.assert_array_equal(
                fastdeconv.resize(x, lead_out + (n_out,), mode=mode), expected.numpy())
        for s in SCALES + [2.01, 1.1, 5.7]:
            if math.floor(n_in * s) < 1:
                continue
            expected = torch.nn.functional.interpolate(xt, scale_factor=lead_scale + (s,),
                                                       mode=mode)
            np.testing.assert_array_equal(
                fastdeconv.resize(x, scale_factor=lead_scale + (s,), mode=mode),
                expected.numpy())


@pytest.mark.torch
def test_torch_nearest_backward_is_not_always_its_adjoint(torch):
    """Documented: PyTorch's nearest-exact 2 -> 41 backward differs from its forward."""
    x = np.zeros((1, 1, 2))
    assert not _torch_nearest_self_adjoint(torch, 2, dict(size=41), "nearest-exact", "float32")
    assert_adjoint(lambda v: fastdeconv.resize(v, 41, mode="nearest-exact"),
                   lambda g: fastdeconv.resize_backward(g, x.shape, 41, mode="nearest-exact"),
                   x.shape, (1, 1, 41), rng=0)


# =================================================================== ONNX Runtime oracle
def _onnx_cases():
    cases = []
    for ndim, ctm in itertools.product([1, 2, 3], ONNX_COORDINATES):
        for nm in NEAREST_MODES:
            cases.append((ndim, ctm, "nearest", nm, None, False, False))
        for aa in (False, True):
            cases.append((ndim, ctm, "linear", None, None, False, aa))
            if aa:
                cases.append((ndim, ctm, "linear", None, None, True, aa))
            if ndim == 2:   # ONNX Runtime has bicubic only
                for a, excl in itertools.product([-0.75, -0.5], [False, True]):
                    cases.append((ndim, ctm, "cubic", None, a, excl, aa))
    return cases


ONNX_CASES = _onnx_cases()


def _robust_outputs(in_size, out, kwargs, ctm):
    """Per dimension, the output indices whose nearest-neighbour rounding does not depend on
    float32 rounding: ONNX Runtime computes coordinates in float32, so where an exact
    coordinate lies within 1e-4 of a multiple of 1/2 (without float32 computing it exactly)
    its rounding may differ from the exact rule fastdeconv follows."""
    from fastdeconv._resize_plan import _onnx_coordinates

    keep = []
    for d, (n_in, n_out) in enumerate(zip(in_size, out)):
        scale = None
        if "scale_factor" in kwargs:
            sf = kwargs["scale_factor"]
            scale = sf[d] if isinstance(sf, tuple) else sf
        x = _onnx_coordinates(np.arange(n_out), n_in, n_out, scale, ctm)
        dist = np.abs(2 * x - np.round(2 * x)) / 2
        exact = np.abs(x * 2 ** 10 - np.round(x * 2 ** 10)) == 0   # short binary fractions
        if ctm == "align_corners":
            exact &= math.log2(max(n_out - 1, 1)).is_integer() or (n_in - 1) % (n_out - 1) == 0
        elif scale is not None:
            exact &= math.log2(scale).is_integer()
        else:
            exact &= math.log2(n_out / n_in).is_integer()
        keep.append(np.flatnonzero((dist >= 1e-4) | ((dist == 0) & exact)))
    return keep


def _compare_onnx(case, rng, assert_close):
    from fastdeconv.testing._onnx import run_single_node

    ndim, ctm, mode, nm, a, excl, aa = case
    by_scale = bool(rng.integers(0, 2))
    while True:
        # ONNX Runtime copies when no size changes; keep every size different.
        in_size, out, kwargs = _draw(rng, ndim, by_scale, avoid_equal=True)
        keep = _robust_outputs(in_size, out, kwargs, ctm) if mode == "nearest" else None
        if keep is None or all(k.size for k in keep):
            break
    if "size" in kwargs:
        kwargs["size"] = out
    x = rng.standard_normal((2, 3) + in_size).astype(np.float32)
    keywords = dict(mode=mode, coordinate_transformation_mode=ctm, antialias=aa,
                    exclude_outside=excl, nearest_mode=nm, cubic_coeff_a=a, **kwargs)
    attrs = dict(mode=mode, coordinate_transformation_mode=ctm, antialias=int(aa),
                 exclude_outside=int(excl))
    if nm:
        attrs["nearest_mode"] = nm
    if a is not None:
        attrs["cubic_coeff_a"] = a
    if "size" in kwargs:
        inputs = [x, None, None, np.array((2, 3) + out, dtype=np.int64)]
    else:
        sf = kwargs["scale_factor"]
        sf = sf if isinstance(sf, tuple) else (sf,) * ndim
        sf = tuple(float(np.float32(s)) for s in sf)   # ONNX scales are float32
        keywords["scale_factor"] = sf
        inputs = [x, None, np.array((1.0, 1.0) + sf, dtype=np.float32)]
    (expected,) = run_single_node("Resize", inputs, attrs, opset=19)
    y = fastdeconv.resize(x, **keywords)
    assert y.shape == expected.shape
    if mode == "nearest":
        grid = (slice(None), slice(None)) + np.ix_(*keep)
        np.testing.assert_array_equal(y[grid], expected[grid])
    else:
        assert_close(y, expected, "float32")


@pytest.mark.parametrize("case", ONNX_CASES, ids=_ids(ONNX_CASES))
def test_onnx_conventions_match_onnxruntime(case, rng, assert_close):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")   # builds the one-node models
    for _ in range(4):
        _compare_onnx(case, rng, assert_close)


# ====================================================== reference, sparse matrix, adjoint
def _all_mode_keywords():
    """Every keyword combination of both conventions (PyTorch's and ONNX's)."""
    combos = []
    for mode in ["nearest", "nearest-exact", "linear", "cubic", "area"]:
        interpolating = mode in ("linear", "cubic")
        for align, aa in itertools.product([None, True] if interpolating else [None],
                                           [False, True] if interpolating else [False]):
            combos.append(dict(mode=mode, align_corners=align, antialias=aa))
    combos.append(dict(mode="cubic", cubic_coeff_a=-0.5))
    for ctm in ONNX_COORDINATES:
        for nm in NEAREST_MODES:
            combos.append(dict(mode="nearest", coordinate_transformation_mode=ctm,
                               nearest_mode=nm))
        for mode, aa, excl in itertools.product(["linear", "cubic"], [False, True],
                                                [False, True]):
            combos.append(dict(mode=mode, coordinate_transformation_mode=ctm, antialias=aa,
                               exclude_outside=excl))
    return combos


ALL_KEYWORDS = _all_mode_keywords()


def _kw_id(kw):
    return "-".join(f"{v}" for k, v in kw.items() if v not in (None, False))


@pytest.mark.parametrize("keywords", ALL_KEYWORDS, ids=[_kw_id(k) for k in ALL_KEYWORDS])
def test_kernels_match_reference_sparse_matrix_and_adjoint(keywords, rng, assert_close):
    for ndim, dtype in itertools.product([1, 2, 3], DTYPES):
        in_size, out, kwargs = _draw(rng, ndim, bool(rng.integers(0, 2)), max_in=7)
        kw = dict(keywords, **kwargs)
        x = rng.standard_normal((2, 2) + in_size).astype(dtype)
        y = fastdeconv.resize(x, **kw)
        expected = resize_reference(x, **kw)
        assert y.shape == (2, 2) + out and y.dtype == np.dtype(dtype)
        if kw["mode"].startswith("nearest"):
            np.testing.assert_array_equal(y, expected)
        else:
            assert_close(y, expected, dtype)
        g = rng.standard_normal(y.shape).astype(dtype)
        gx = fastdeconv.resize_backward(g, x.shape, **kw)
        assert_close(gx, resize_backward_reference(g, x.shape, **kw), dtype)
        # the sparse matrix, one sample at a time, forward and transposed
        m = resize_matrix(x.shape[1:], dtype=dtype, **kw)
        assert m.dtype == np.dtype(dtype)
        ys = np.stack([m @ xi.ravel() for xi in x]).reshape(y.shape)
        assert_close(y, ys, dtype)
        gs = np.stack([m.T @ gi.ravel() for gi in g]).reshape(x.shape)
        assert_close(gx, gs, dtype)
        assert_adjoint(lambda v: fastdeconv.resize(v, **kw),
                       lambda w: fastdeconv.resize_backward(w, x.shape, **kw),
                       x.shape, y.shape, rng=rng, dtype=dtype)


@pytest.mark.slow
def test_reference_long_sweep(assert_close):
    rng = np.random.default_rng(3)
    for keywords in ALL_KEYWORDS:
        for _ in range(60):
            ndim = int(rng.integers(1, 4))
            in_size, out, kwargs = _draw(rng, ndim, bool(rng.integers(0, 2)), max_in=12)
            kw = dict(keywords, **kwargs)
            x = rng.standard_normal((1, 2) + in_size)
            assert_close(fastdeconv.resize(x, **kw), resize_reference(x, **kw), "float64")


def test_matrix_is_kronecker_of_one_dimensional_matrices():
    m2 = resize_matrix((1, 3, 4), (5, 7), mode="cubic", align_corners=True).toarray()
    a = resize_matrix((1, 3), 5, mode="cubic", align_corners=True).toarray()
    b = resize_matrix((1, 4), 7, mode="cubic", align_corners=True).toarray()
    np.testing.assert_allclose(m2, np.kron(a, b), rtol=0, atol=1e-15)
    channels = resize_matrix((3, 4), 7, mode="linear").toarray()
    one = resize_matrix((1, 4), 7, mode="linear").toarray()
    np.testing.assert_array_equal(channels, np.kron(np.eye(3), one))


# ============================================================ conventions and semantics
def test_documented_values():
    x = np.arange(4.0).reshape(1, 1, 4)
    assert fastdeconv.resize(x, 8).ravel().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert fastdeconv.resize(x, 8, mode="linear").ravel().tolist() == [
        0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]
    tf1 = fastdeconv.resize(x, 8, mode="linear", coordinate_transformation_mode="asymmetric")
    assert tf1.ravel().tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3]
    # area of integer factors is the mean of each block
    x2 = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(fastdeconv.resize(x2, (2, 2), mode="area"),
                                  x2.reshape(1, 1, 2, 2, 2, 2).mean(axis=(3, 5)))


def test_scale_factor_enters_the_coordinate_formula():
    """PyTorch: scale_factor=1.7 on 5 pixels gives 8 outputs at (o + 0.5) / 1.7 - 0.5, not
    at (o + 0.5) * 5 / 8 - 0.5 (what size=8 gives)."""
    x = np.arange(5.0).reshape(1, 1, 5)
    by_scale = fastdeconv.resize(x, scale_factor=1.7, mode="linear").ravel()
    by_size = fastdeconv.resize(x, 8, mode="linear").ravel()
    o = np.arange(8)
    np.testing.assert_allclose(by_scale, np.clip((o + 0.5) / 1.7 - 0.5, 0, 4), atol=1e-15)
    np.testing.assert_allclose(by_size, np.clip((o + 0.5) * 5 / 8 - 0.5, 0, 4), atol=1e-15)


def test_nearest_exact_is_onnx_half_pixel_round_prefer_ceil():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 7, 5))
    for size in [(13, 3), (4, 11), (21, 10)]:
        np.testing.assert_array_equal(
            fastdeconv.resize(x, size, mode="nearest-exact"),
            fastdeconv.resize(x, size, mode="nearest", coordinate_transformation_mode="half_pixel",
                              nearest_mode="round_prefer_ceil"))


def test_legacy_nearest_is_onnx_asymmetric_floor():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 6))
    for size in [3, 12, 18, 5]:   # float64: the exact rule; sizes without float ties
        np.testing.assert_array_equal(
            fastdeconv.resize(x, size),
            fastdeconv.resize(x, size, coordinate_transformation_mode="asymmetric",
                              nearest_mode="floor"))


def test_pytorch_antialias_is_onnx_half_pixel_with_exclude_outside(assert_close):
    """PyTorch's antialiased downsampling = ONNX half_pixel + antialias + exclude_outside
    (with a = -0.5 for cubic)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 1, 17, 13))
    for mode, a in [("linear", None), ("cubic", -0.5)]:
        assert_close(
            fastdeconv.resize(x, (5, 4), mode=mode, antialias=True),
            fastdeconv.resize(x, (5, 4), mode=mode, antialias=True, cubic_coeff_a=a,
                              coordinate_transformation_mode="half_pixel",
                              exclude_outside=True), "float64")


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_pytorch_antialias_propagates_a_nan_under_a_zero_weight_tap(mode):
    # 3 -> 5, output 2: PyTorch's window reads inputs 1 and 2, input 2 with weight exactly 0,
    # so a NaN there gives NaN (0 * NaN), as torch.nn.functional.interpolate(..., mode=
    # "bilinear", antialias=True) does; the plan dropped zero weights (found by the fuzz)
    x = np.array([[[0.1, -0.1, np.nan]]])
    y = fastdeconv.resize(x, 5, mode=mode, antialias=True)
    expected = resize_reference(x, 5, mode=mode, antialias=True)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    if mode == "linear":
        assert np.isnan(y[0, 0, 2])
    np.testing.assert_allclose(y[~np.isnan(y)], expected[~np.isnan(expected)], rtol=1e-12)


def test_upsampling_keeps_constants_and_linear_ramps(assert_close):
    ones = np.ones((1, 1, 5, 4))
    for kw in ALL_KEYWORDS:
        if kw.get("antialias") and kw.get("coordinate_transformation_mode") is None and \
                kw["mode"] == "cubic":
            continue
        y = fastdeconv.resize(ones, (11, 9), **kw)
        assert_close(y, np.ones_like(y), "float64")
    # align_corners linear interpolation reproduces a ramp exactly
    ramp = np.arange(6.0).reshape(1, 1, 6)
    y = fastdeconv.resize(ramp, 11, mode="linear", align_corners=True)
    np.testing.assert_allclose(y.ravel(), np.linspace(0, 5, 11), atol=1e-14)


# ================================================================== dtypes, layout, threads
@pytest.mark.parametrize("dtype, expected", [
    (np.float16, np.float32), (np.float32, np.float32), (np.float64, np.float64),
    (np.int32, np.float64), (np.uint8, np.float64), (np.bool_, np.float64),
])
def test_dtype_policy(dtype, expected):
    x = (np.arange(12) % 3).astype(dtype).reshape(1, 1, 3, 4)
    y = fastdeconv.resize(x, (5, 6), mode="linear")
    assert y.dtype == expected
    gx = fastdeconv.resize_backward(np.ones((1, 1, 5, 6), dtype=dtype), x.shape, (5, 6),
                                    mode="linear")
    assert gx.dtype == expected


def test_any_memory_layout():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3, 4, 10, 12))
    view = base[::-1, ::2, 1::2, ::-3]
    expected = fastdeconv.resize(np.ascontiguousarray(view), (7, 9), mode="cubic")
    np.testing.assert_array_equal(fastdeconv.resize(view, (7, 9), mode="cubic"), expected)
    fortran = np.asfortranarray(view)
    np.testing.assert_array_equal(fastdeconv.resize(fortran, (7, 9), mode="cubic"), expected)
    readonly = np.ascontiguousarray(view)
    readonly.flags.writeable = False
    np.testing.assert_array_equal(fastdeconv.resize(readonly, (7, 9), mode="cubic"), expected)


def test_empty_batch_and_identity():
    x = np.zeros((0, 3, 4, 5))
    assert fastdeconv.resize(x, (8, 10)).shape == (0, 3, 8, 10)
    assert fastdeconv.resize_backward(np.zeros((0, 3, 8, 10)), x.shape, (8, 10)).shape == x.shape
    y = np.arange(20.0).reshape(1, 1, 4, 5)
    out = fastdeconv.resize(y, (4, 5), mode="linear")
    np.testing.assert_array_equal(out, y)
    assert not np.shares_memory(out, y)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic", "area"])
@pytest.mark.parametrize("batch", [(3, 5), (1, 2)])   # more planes than threads, and fewer
def test_bit_identical_for_any_thread_count(mode, batch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(batch + (17, 300)).astype(np.float32)
    g = rng.standard_normal(batch + (31, 8)).astype(np.float32)
    previous = fastdeconv.set_num_threads(1)
    try:
        y1 = fastdeconv.resize(x, (31, 8), mode=mode)
        g1 = fastdeconv.resize_backward(g, x.shape, (31, 8), mode=mode)
        fastdeconv.set_num_threads(3)
        y3 = fastdeconv.resize(x, (31, 8), mode=mode)
        g3 = fastdeconv.resize_backward(g, x.shape, (31, 8), mode=mode)
    finally:
        fastdeconv.set_num_threads(previous)
    np.testing.assert_array_equal(y1, y3)
    np.testing.assert_array_equal(g1, g3)
    np.testing.assert_allclose(y1, resize_reference(x, (31, 8), mode=mode), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(g1, resize_backward_reference(g, x.shape, (31, 8), mode=mode),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape, size", [((1, 1, 40, 700), (90, 600)),
                                         ((1, 2, 6, 5, 300), (7, 11, 520))])
def test_few_planes_split_passes_match_one_thread(shape, size, rng):
    """Fewer planes than threads: passes split in rows and column chunks (CHUNK = 256)."""
    x = rng.standard_normal(shape)
    out = shape[:2] + size
    g = rng.standard_normal(out)
    previous = fastdeconv.set_num_threads(1)
    try:
        y1 = fastdeconv.resize(x, size, mode="cubic")
        g1 = fastdeconv.resize_backward(g, shape, size, mode="cubic")
        fastdeconv.set_num_threads(4)
        y4 = fastdeconv.resize(x, size, mode="cubic")
        g4 = fastdeconv.resize_backward(g, shape, size, mode="cubic")
    finally:
        fastdeconv.set_num_threads(previous)
    np.testing.assert_array_equal(y1, y4)
    np.testing.assert_array_equal(g1, g4)
    m = resize_matrix(shape[1:], size, mode="cubic")
    np.testing.assert_allclose(y4[0].ravel(), m @ x[0].ravel(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g4[0].ravel(), m.T @ g[0].ravel(), rtol=1e-12, atol=1e-12)


# =============================================================================== bad input
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(mode="bogus", size=4), ValueError, "mode must be one of"),
    (dict(mode="bilinear", size=4), ValueError, "mode='bilinear' is for 2 spatial"),
    (dict(mode="trilinear", size=4), ValueError, "mode='trilinear' is for 3"),
    (dict(mode="bicubic", size=4), ValueError, "mode='bicubic' is for 2"),
    (dict(mode="nearest", size=4, align_corners=True), ValueError, "align_corners can only"),
    (dict(mode="area", size=4, align_corners=False), ValueError, "align_corners can only"),
    (dict(mode="nearest", size=4, antialias=True), ValueError, "antialias only applies"),
    (dict(mode="area", size=4, antialias=True), ValueError, "antialias only applies"),
    (dict(size=4, scale_factor=2.0), ValueError, "exactly one of size and scale_factor"),
    (dict(), ValueError, "exactly one of size and scale_factor"),
    (dict(size=0), ValueError, "size must be positive"),
    (dict(size=-3), ValueError, "size must be positive"),
    (dict(size=(4, 4)), ValueError, "size must have one entry per spatial dimension"),
    (dict(size=4.0), TypeError, "size must be an int"),
    (dict(size="4"), TypeError, "size must be an int"),
    (dict(scale_factor=0.0), ValueError, "scale_factor must be positive"),
    (dict(scale_factor=-2.0), ValueError, "scale_factor must be positive"),
    (dict(scale_factor=float("inf")), ValueError, "scale_factor must be positive"),
    (dict(scale_factor=float("nan")), ValueError, "scale_factor must be positive"),
    (dict(scale_factor=(2.0, 2.0)), ValueError, "scale_factor must have one entry"),
    (dict(scale_factor="2"), TypeError, "scale_factor must be a number"),
    (dict(scale_factor=0.1), ValueError, "empty output"),
    (dict(size=4, align_corners=1), TypeError, "align_corners must be a bool"),
    (dict(size=4, mode="linear", antialias="yes"), TypeError, "antialias must be a bool"),
    (dict(size=4, coordinate_transformation_mode="tf_crop_and_resize"), ValueError,
     "coordinate_transformation_mode must be one of"),
    (dict(size=4, mode="linear", align_corners=True,
          coordinate_transformation_mode="half_pixel"), ValueError,
     "align_corners is PyTorch's keyword"),
    (dict(size=4, mode="area", coordinate_transformation_mode="half_pixel"), ValueError,
     "mode='area'"),
    (dict(size=4, mode="nearest-exact", coordinate_transformation_mode="half_pixel"),
     ValueError, "nearest_mode"),
    (dict(size=4, nearest_mode="floor"), ValueError, "nearest_mode is an ONNX keyword"),
    (dict(size=4, mode="linear", nearest_mode="floor", coordinate_transformation_mode="half_pixel"),
     ValueError, "nearest_mode only applies"),
    (dict(size=4, nearest_mode="round", coordinate_transformation_mode="half_pixel"),
     ValueError, "nearest_mode must be one of"),
    (dict(size=4, mode="linear", cubic_coeff_a=-0.5), ValueError, "cubic_coeff_a only"),
    (dict(size=4, mode="cubic", cubic_coeff_a="a"), TypeError, "cubic_coeff_a must be"),
    (dict(size=4, mode="cubic", cubic_coeff_a=float("nan")), ValueError,
     "cubic_coeff_a must be finite"),
    (dict(size=4, mode="cubic", exclude_outside=True), ValueError,
     "exclude_outside is an ONNX keyword"),
    (dict(size=4, coordinate_transformation_mode="half_pixel", exclude_outside=True),
     ValueError, "exclude_outside only applies"),
])
def test_bad_keywords(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastdeconv.resize(np.zeros((1, 1, 5)), **kwargs)


def test_bad_arrays():
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, \*spatial\)"):
        fastdeconv.resize(np.zeros((4, 5)), 3)
    with pytest.raises(ValueError, match="1 to 3 spatial dimensions"):
        fastdeconv.resize(np.zeros((1, 1, 2, 2, 2, 2)), 3)
    with pytest.raises(TypeError, match="x has complex dtype"):
        fastdeconv.resize(np.zeros((1, 1, 4), dtype=complex), 3)
    with pytest.raises(TypeError, match="x has unsupported dtype"):
        fastdeconv.resize(np.array([[["a", "b"]]]), 3)
    with pytest.raises(ValueError, match="spatial size of x must be positive"):
        fastdeconv.resize(np.zeros((1, 1, 0)), 3)
    with pytest.raises(ValueError, match=r"grad_output must have the output shape \(1, 1, 8\)"):
        fastdeconv.resize_backward(np.zeros((1, 1, 7)), (1, 1, 4), 8)
    with pytest.raises(ValueError, match="input_shape must be the full shape"):
        fastdeconv.resize_backward(np.zeros((1, 1, 8)), (4,), 8)
    with pytest.raises(TypeError, match="input_shape must be a sequence"):
        fastdeconv.resize_backward(np.zeros((1, 1, 8)), 4, 8)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        resize_matrix((1, 4), 8, dtype=np.int32)
    with pytest.raises(ValueError, match="input_shape must be the shape"):
        resize_matrix((4,), 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("in_size, out_size", [
    ((1, 2), (40, 97)), ((13, 54), (105, 89)), ((1, 98), (4, 150)), ((1, 2), (2, 97)),
    ((7, 9), (64, 64)), ((7, 9), (64, 65)), ((31, 17), (130, 77)), ((64, 64), (128, 128)),
])
def test_2d_nearest_picks_pytorchs_pixels_on_both_sides_of_its_kernel_switch(torch, mode, in_size, out_size, dtype):
    # ATen switches 2-D nearest kernels (and their index rounding) at out_h + out_w = 128
    x = np.arange(np.prod(in_size), dtype=dtype).reshape((1, 1) + in_size)
    expected = torch.nn.functional.interpolate(torch.tensor(x), size=out_size, mode=mode).numpy()
    np.testing.assert_array_equal(fastdeconv.resize(x, out_size, mode=mode), expected)


@pytest.mark.parametrize("mode, torch_mode", [("linear", "bilinear"), ("cubic", "bicubic")])
def test_infinities_take_pytorchs_pass_order_and_give_its_nan_pattern(torch, mode, torch_mode):
    # 64 -> 4 rows and 4 -> 16 columns: the cheapest order shrinks the rows first, PyTorch
    # nests its sums columns first; with infinities, inf - inf (NaN) lands where the order
    # puts it, so non-finite inputs run in PyTorch's order
    from fastdeconv._resize import _program
    from fastdeconv._resize_plan import resolve_resize

    spec = resolve_resize((64, 4), (4, 16), mode=mode)
    assert not _program(spec, np.dtype(np.float64)).is_canonical  # the precondition
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 4))
    x[0, 0, 7, 1], x[0, 0, 8, 2] = np.inf, -np.inf      # rows 7, 8, 23, 24 are read
    x[1, 2, 23, 0], x[1, 2, 24, 3] = np.inf, -np.inf
    y = fastdeconv.resize(x, (4, 16), mode=mode)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=(4, 16),
                                               mode=torch_mode).numpy()
    assert np.isnan(expected).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-12, atol=1e-12)
    # finite inputs keep the fast order and the same values
    x[~np.isfinite(x)] = 1.0
    np.testing.assert_allclose(fastdeconv.resize(x, (4, 16), mode=mode),
                               torch.nn.functional.interpolate(
                                   torch.from_numpy(x), size=(4, 16), mode=torch_mode).numpy(),
                               rtol=1e-12, atol=1e-12)
