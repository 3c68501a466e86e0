"""PyTorch as an oracle: outputs and autograd gradients over a randomised sweep.

ndim 1-3 x stride x padding (ints, per-dim, pairs, strings) x dilation x groups x
output_padding x padding_mode x dtype. PyTorch has no asymmetric or strided 'same' padding,
so this file resolves padding itself (its own formulas, not fastdeconv's) and applies it with
``F.pad`` (conv) or by cropping a padding-free transposed convolution.
Skipped without torch; CI installs torch==2.13.0 so these run there.
"""

import numpy as np
import pytest

import fastdeconv
from fastdeconv.testing import tolerances

pytestmark = pytest.mark.torch

N_CASES = 300          # per operator in the default run
N_CASES_SLOW = 5000    # with -m slow


def _same_pairs(sizes, kernel, stride, dilation, *, lower, transpose):
    pairs, extra = [], []
    for n, k, s, d in zip(sizes, kernel, stride, dilation):
        k_eff = d * (k - 1) + 1
        total = k_eff - s if transpose else max((-(-n // s) - 1) * s + k_eff - n, 0)
        extra.append(max(-total, 0))
        total = max(total, 0)
        small, big = total // 2, total - total // 2
        pairs.append((big, small) if lower else (small, big))
    return pairs, extra


def _pairs(padding, sizes, kernel, stride, dilation, transpose):
    ndim = len(kernel)
    if padding == "valid":
        return [(0, 0)] * ndim, [0] * ndim
    if padding in ("same", "same_lower"):
        return _same_pairs(sizes, kernel, stride, dilation, lower=padding == "same_lower", transpose=transpose)
    if isinstance(padding, int):
        return [(padding, padding)] * ndim, [0] * ndim
    if isinstance(padding[0], tuple):
        return list(padding), [0] * ndim
    return [(p, p) for p in padding], [0] * ndim


def _random_params(rng, op):
    ndim = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 1, 2, 3]))
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    kernel = tuple(int(v) for v in rng.integers(1, 5, ndim))
    stride = tuple(int(v) for v in rng.integers(1, 4, ndim))
    dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
    sizes = tuple(int(v) for v in rng.integers(1, 9 if ndim < 3 else 6, ndim))
    kind = rng.choice(["int", "per-dim", "pairs", "valid", "same", "same_lower"])
    pad_max = 3
    if kind == "int":
        padding = int(rng.integers(0, pad_max + 1))
    elif kind == "per-dim":
        padding = tuple(int(v) for v in rng.integers(0, pad_max + 1, ndim))
    elif kind == "pairs":
        padding = tuple((int(a), int(b)) for a, b in rng.integers(0, pad_max + 1, (ndim, 2)))
    else:
        padding = str(kind)
    dtype = str(rng.choice(["float32", "float64"]))
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if op == "conv":
        params["padding_mode"] = str(rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"]))
        return ndim, (c_in, c_out), kernel, sizes, params, dtype
    if not (isinstance(padding, str) and padding != "valid"):
        params["output_padding"] = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    return ndim, (c_in, c_out), kernel, sizes, params, dtype


def _torch_conv(torch, x, w, b, params, pairs):
    F = torch.nn.functional
    flat = [v for pair in reversed(pairs) for v in pair]
    mode = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}[params["padding_mode"]]
    xp = F.pad(x, flat, mode=mode) if any(flat) else x
    conv = getattr(F, f"conv{w.ndim - 2}d")
    return conv(xp, w, b, stride=params["stride"], dilation=params["dilation"], groups=params["groups"])


def _torch_conv_transpose(torch, x, w, b, params, pairs, extra):
    F = torch.nn.functional
    op = tuple(o + e for o, e in zip(params.get("output_padding", (0,) * len(pairs)), extra))
    full = getattr(F, f"conv_transpose{w.ndim - 2}d")(
        x, w, b, stride=params["stride"], output_padding=op, dilation=params["dilation"],
        groups=params["groups"],
    )
    crop = tuple(slice(before, full.shape[2 + i] - after) for i, (before, after) in enumerate(pairs))
    return full[(slice(None), slice(None)) + crop]


def _valid(op, sizes, kernel, params, pairs, extra):
    for i, (n, k, (before, after)) in enumerate(zip(sizes, kernel, pairs)):
        k_eff = params["dilation"][i] * (k - 1) + 1
        if op == "conv":
            if n + before + after < k_eff:
                return False
            mode = params["padding_mode"]
            if mode == "reflect" and max(before, after) >= n:
                return False
            if mode == "circular" and max(before, after) > n:
                return False
        else:
            out = (n - 1) * params["stride"][i] - before - after + k_eff + extra[i] + params.get("output_padding", (0,) * len(sizes))[i]
            if out < 1:
                return False
    return True


def _draw_cases(op, count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        ndim, (c_in, c_out), kernel, sizes, params, dtype = _random_params(rng, op)
        pairs, extra = _pairs(params["padding"], sizes, kernel, params["stride"], params["dilation"], op == "conv_transpose")
        if _valid(op, sizes, kernel, params, pairs, extra):
            cases.append((len(cases), ndim, c_in, c_out, kernel, sizes, params, dtype, pairs, extra))
    return cases


def _compare(torch, op, case, rng):
    _, ndim, c_in, c_out, kernel, sizes, params, dtype, pairs, extra = case
    groups = params["groups"]
    batch = int(rng.integers(1, 3))
    x = rng.standard_normal((batch, c_in) + sizes).astype(dtype)
    if op == "conv":
        w = rng.standard_normal((c_out, c_in // groups) + kernel).astype(dtype)
    else:
        w = rng.standard_normal((c_in, c_out // groups) + kernel).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    if op == "conv":
        yt = _torch_conv(torch, xt, wt, bt, params, pairs)
        y = fastdeconv.conv(x, w, b, **params)
    else:
        yt = _torch_conv_transpose(torch, xt, wt, bt, params, pairs, extra)
        y = fastdeconv.conv_transpose(x, w, b, **params)
    gy = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.tensor(gy))
    backward = fastdeconv.conv_backward if op == "conv" else fastdeconv.conv_transpose_backward
    grads = backward(gy, x, w, **params)
    rtol = tolerances(dtype)["rtol"]  # 1e-10 (float64), 1e-4 (float32) of the output scale
    for name, got, want in zip(("output", "grad_x", "grad_weight", "grad_bias"), (y,) + grads, (yt, xt.grad, wt.grad, bt.grad)):
        want = want.detach().numpy()
        assert got.shape == want.shape, (name, got.shape, want.shape)
        assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        err = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max(initial=0.0))
        assert err <= rtol * scale, f"{name}: max error {err:.3e} > {rtol:g} x {scale:.3g} for {params}, sizes {sizes}, kernel {kernel}"


def _ids(cases):
    return [f"{c[0]}-{c[1]}d-{c[7]}" for c in cases]


CONV_CASES = _draw_cases("conv", N_CASES, seed=2)
TRANSPOSE_CASES = _draw_cases("conv_transpose", N_CASES, seed=3)


@pytest.mark.parametrize("case", CONV_CASES, ids=_ids(CONV_CASES))
def test_conv_and_its_gradients_match_torch(torch, case, rng):
    _compare(torch, "conv", case, rng)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_ids(TRANSPOSE_CASES))
def test_conv_transpose_and_its_gradients_match_torch(torch, case, rng):
    _compare(torch, "conv_transpose", case, rng)


@pytest.mark.slow
@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_long_randomised_sweep_matches_torch(torch, op):
    rng = np.random.default_rng(11)
    for case in _draw_cases(op, N_CASES_SLOW, seed=5 if op == "conv" else 7):
        _compare(torch, op, case, rng)


def test_sweep_covers_every_padding_form_mode_dimension_and_dtype():
    seen = {"ndim": set(), "padding": set(), "mode": set(), "dtype": set(), "groups": set(), "output_padding": set()}
    for cases in (CONV_CASES, TRANSPOSE_CASES):
        for _, ndim, _, _, _, _, params, dtype, _, _ in cases:
            seen["ndim"].add(ndim)
            p = params["padding"]
            seen["padding"].add(p if isinstance(p, str) else "int" if isinstance(p, int) else "pairs" if isinstance(p[0], tuple) else "per-dim")
            seen["mode"].add(params.get("padding_mode", "-"))
            seen["dtype"].add(dtype)
            seen["groups"].add(params["groups"] > 1)
            seen["output_padding"].add(any(params.get("output_padding", (0,))))
    assert seen["ndim"] == {1, 2, 3}
    assert seen["padding"] == {"int", "per-dim", "pairs", "valid", "same", "same_lower"}
    assert seen["mode"] >= {"zeros", "reflect", "replicate", "circular"}
    assert seen["dtype"] == {"float32", "float64"}
    assert seen["groups"] == {True, False} and seen["output_padding"] == {True, False}
