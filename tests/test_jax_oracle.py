r"""JAX as an oracle for every data and weight layout of the convolution family and of the
upsampling operators.

Each case draws a random geometry (1-3 spatial dimensions, groups, stride, dilation, integer /
per-dimension / asymmetric ``(before, after)`` / ``"valid"`` / ``"same"`` / ``"same_lower"`` /
``"full"`` padding, output_padding or output_size, padding modes), a ``data_format``
(``"channels_first"``, ``"channels_last"`` or the explicit ``"NCW"`` ... ``"NDHWC"``) and a
``weight_format``, and compares fastdeconv's output and gradients with JAX's output and
``jax.vjp`` of it. JAX gets the arrays in the caller's layout and is told the layout in its
own terms (``dimension_numbers`` strings), so no axis is moved by the test: a layout bug in
fastdeconv cannot be mirrored here. The oracle runs in float64 (float32 cases compare
fastdeconv's float32 result with JAX's float64 one of the same float32 inputs, to float32's
tolerance).

Correspondence with JAX (written out here, since JAX's conventions differ from PyTorch's)
---------------------------------------------------------------------------------------

``conv(x, w, b, stride=s, padding=p, dilation=d, groups=g, data_format=D, weight_format=F)``
    is ``lax.conv_general_dilated(x, w, window_strides=s, padding=P, rhs_dilation=d,
    dimension_numbers=(D', F, D'), feature_group_count=g) + b``, where ``D'`` is the data
    layout as a string (``"NCHW"`` / ``"NHWC"``, ...) and ``F`` is fastdeconv's weight format
    unchanged (JAX matches the spatial letters of the data and the kernel by name, as
    fastdeconv does). JAX orders the spatial dimensions as the *kernel* spec lists them
    (``conv_general_permutations``), so ``window_strides``, ``padding`` and ``rhs_dilation``
    are given in that order: for ``F = "OIWH"`` they are ``(s_W, s_H)``, ... (passing them
    in the data's order is wrong, and crashed XLA's compiler in one vjp, a check failure
    that kills the process). ``P`` is the padding as pairs, or JAX's own ``"VALID"``,
    ``"SAME"`` (odd extra pad at the end) and ``"SAME_LOWER"``; ``"full"`` is ``(K - 1, K - 1)`` with
    the dilated kernel size ``K = d (k - 1) + 1``. ``padding_mode`` reflect / replicate /
    circular is ``jnp.pad(x, pairs, mode="reflect" / "edge" / "wrap")`` and ``"VALID"``.

``conv_transpose(x, w, b, stride=s, padding=(p_b, p_a), output_padding=q, dilation=d,
data_format=D, weight_format=F)`` has two oracles, used on alternate cases:

1. ``lax.conv_transpose(x, w, s, padding, rhs_dilation=d, dimension_numbers=(D', F', D'),
   transpose_kernel=True, use_consistent_padding=True)``, one call per group (the groups'
   channel blocks split off ``x`` and ``w`` and the outputs concatenated: JAX's
   ``conv_transpose`` has no ``feature_group_count``). ``F'`` is ``F`` with ``I`` and ``O``
   swapped: with ``transpose_kernel=True`` JAX's kernel spec names the layout of the
   *forward* convolution's kernel, whose output channels are the transposed convolution's
   input channels (so PyTorch's ``"IOHW"`` weight is JAX's ``"OIHW"``). With
   ``use_consistent_padding=True`` a pair ``(p_b, p_a)`` is the forward convolution's
   padding, as in fastdeconv; ``output_padding`` ``q`` is the pair ``(p_b, p_a - q)``
   (positions added at the end = less padding cropped there); ``"SAME"`` is JAX's string
   (output ``in * s``; when ``K < s`` the missing ``s - K`` positions are zeros at the end);
   ``"VALID"`` is JAX's string only when ``q == max(s - K, 0)`` (JAX and Keras's
   ``"valid"`` output is ``in * s + max(K - s, 0)``, fastdeconv's ``(in - 1) s + K + q``);
   ``"full"`` is ``(K - 1, K - 1 - q)``; ``"same_lower"`` (which JAX does not have) the pair
   resolved by the formula of :func:`_resolve_transpose_padding`.
2. ``lax.conv_general_dilated(x, w_fwd, window_strides=1, padding=[(K - 1 - p_b,
   K - 1 - p_a + q)], lhs_dilation=s, rhs_dilation=d, feature_group_count=g)``: the
   transposed convolution as the stride-1 convolution of the input dilated by ``s`` (zeros
   between samples) with the flipped kernel, where ``w_fwd`` is ``w`` in ``"IOHW"``
   (``jnp.transpose`` by letters), spatially flipped and regrouped from ``(g, C_in / g,
   C_out / g, *k)`` to ``(g, C_out / g, C_in / g, *k)`` = ``(C_out, C_in / g, *k)``
   (``"OIHW"``). Negative pads crop.

The upsampling operators (resize, max_pool, max_unpool, pixel_shuffle and their backward
passes / inverses) are compared in every ``data_format`` too; their JAX counterparts are
listed at their section below.

Gradients are ``jax.vjp`` of these functions with respect to ``(x, w, b)``, given in the
caller's layouts, so ``grad_weight`` is checked in ``F``.

An XLA bug and its workaround
-----------------------------

XLA:CPU's compiler (jaxlib 0.10.2) kills the process (a CHECK failure, which pytest cannot
catch) on some convolutions: ``algebraic_simplifier.cc: Check failed: ... Window dimensions
do not match RHS shape``. When a convolution's kernel is "bigger" than its input, the
algebraic simplifier swaps the two operands, but copies unchanged every spatial dimension
that looks like one of its own group-convolution rewrite: window size ``k``, input (lhs)
dilation ``k``, window stride ``k - 1``, no padding, no kernel (rhs) dilation. Where the
input's size is not ``k`` there, the swapped convolution is invalid. The oracles above meet
it with ``k = 2``: a transposed convolution's input dilation ``s = 2`` (both conv_transpose
oracles, e.g. the slow sweep's case 1383) and JAX's vjp w.r.t. ``x`` of a stride-2 conv (an
input-dilated convolution of the output gradient). So each oracle is traced before it is
compiled (``jax.jit(f).trace``) and, if one of its convolutions (forward or vjp) has a
dimension that may be read so (:func:`_xla_may_misread_a_dimension`, a necessary condition of
the abort), it is compiled with that pass disabled (``XLA_WORKAROUND``): the same JAX
computation, without the optimisation that breaks it, so the case is still checked against
JAX (``test_oracle_counts`` prints how many were). Rewriting the computation instead is no
way round: XLA folds explicit zeros between samples (``lax.pad``'s interior padding, also
JAX's transpose of a strided slice) back into an input dilation.

Every sweep counts its cases and mismatches per operator (``COUNTS``) and collects every
mismatch instead of stopping at the first; ``test_oracle_counts`` prints the table (visible
with ``pytest -s``) and fails on any mismatch. CI installs jax and sets
``FASTDECONV_REQUIRE_JAX=1``, so these tests cannot be skipped there.
"""

import collections
import itertools
import os

import numpy as np
import pytest

import fastdeconv
from fastdeconv.sparse import conv_matrix, conv_transpose_matrix, linear_operator
from fastdeconv.testing import tolerances

N_CASES = 40           # per operator in the default run (about 0.1-0.2 s of XLA compiling each)
#: with -m slow (FASTDECONV_JAX_SLOW_CASES=n for another count)
N_CASES_SLOW = int(os.environ.get("FASTDECONV_JAX_SLOW_CASES", 1500))

SPATIAL = {1: "W", 2: "HW", 3: "DHW"}
ALIASES = {(False, 1): "NCW", (True, 1): "NWC", (False, 2): "NCHW", (True, 2): "NHWC",
           (False, 3): "NCDHW", (True, 3): "NDHWC"}

#: operator -> [cases, mismatches], filled by every test of this module
COUNTS = collections.defaultdict(lambda: [0, 0])
#: operator -> descriptions of its mismatches
MISMATCHES = collections.defaultdict(list)
#: operator -> cases whose oracle was compiled with ``XLA_WORKAROUND``
WORKAROUNDS = collections.Counter()
#: compiler options of an oracle that XLA's algebraic simplifier would abort on (see the
#: module docstring)
XLA_WORKAROUND = {"xla_disable_hlo_passes": "algsimp"}


# ------------------------------------------------------------------------- bookkeeping
def _record(operator, failures, description):
    COUNTS[operator][0] += 1
    if failures:
        COUNTS[operator][1] += 1
        MISMATCHES[operator].append(f"{description}: {'; '.join(failures)}")


def _assert_no_mismatches(*operators):
    lines = [m for op in operators for m in MISMATCHES[op]]
    summary = ", ".join(f"{op} {COUNTS[op][1]}/{COUNTS[op][0]}" for op in operators)
    assert not lines, f"mismatches/cases: {summary}\n" + "\n".join(lines[:20])


def _compare(name, got, want, dtype, failures):
    """Append to ``failures`` unless ``got`` matches ``want`` (float64) to ``dtype``'s
    tolerance, with the shape and ``dtype`` promised (a channels-last result may be a view
    of channels-first memory, so its strides are not checked)."""
    if want is None or got is None:
        if (want is None) != (got is None):
            failures.append(f"{name}: got {type(got).__name__}, expected "
                            f"{'None' if want is None else 'an array'}")
        return
    got, want = np.asarray(got), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        failures.append(f"{name}: shape {got.shape}, expected {want.shape}")
        return
    if got.dtype != np.dtype(dtype):
        failures.append(f"{name}: dtype {got.dtype}, expected {dtype}")
    rtol = tolerances(dtype)["rtol"]
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got.astype(np.float64) - want).max(initial=0.0))
    if not err <= rtol * scale:
        failures.append(f"{name}: max error {err:.3e} > {rtol:g} x {scale:.3g}")


# ------------------------------------------------------------------------------ cases
def _weight_formats(ndim):
    """The named layouts (PyTorch conv / transposed conv, TF/JAX, Keras transposed, TFLite and
    the remaining two) and None (the canonical one)."""
    sp = SPATIAL[ndim]
    return [None, "OI" + sp, "IO" + sp, sp + "IO", sp + "OI", "O" + sp + "I", "I" + sp + "O"]


def _effective(kernel, dilation):
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def _resolve_transpose_padding(padding, kernel, stride, dilation):
    """conv_transpose's padding as ``(before, after)`` pairs plus the zeros added at the end
    (only ``"same"`` / ``"same_lower"`` with ``K < s`` add any), from the documented rules:
    ``"same"`` crops ``K - s`` with the odd one at the end (``"same_lower"``: at the start)."""
    ndim = len(kernel)
    K = _effective(kernel, dilation)
    if isinstance(padding, int):
        return [(padding, padding)] * ndim, [0] * ndim
    if padding == "valid":
        return [(0, 0)] * ndim, [0] * ndim
    if padding == "full":
        return [(k - 1, k - 1) for k in K], [0] * ndim
    if padding in ("same", "same_lower"):
        pairs, extra = [], []
        for k, s in zip(K, stride):
            total = k - s
            small, big = max(total, 0) // 2, max(total, 0) - max(total, 0) // 2
            pairs.append((big, small) if padding == "same_lower" else (small, big))
            extra.append(max(-total, 0))
        return pairs, extra
    if isinstance(padding[0], tuple):
        return list(padding), [0] * ndim
    return [(p, p) for p in padding], [0] * ndim


def _conv_pairs(jax, padding, sizes, kernel, stride, dilation):
    """conv's padding as pairs: JAX resolves its own strings (``lax.padtype_to_pads``)."""
    K = _effective(kernel, dilation)
    ndim = len(kernel)
    if isinstance(padding, int):
        return [(padding, padding)] * ndim
    if padding == "full":
        return [(k - 1, k - 1) for k in K]
    if isinstance(padding, str):
        return [tuple(map(int, p)) for p in
                jax.lax.padtype_to_pads(sizes, K, stride, padding.upper())]
    if isinstance(padding[0], tuple):
        return list(padding)
    return [(p, p) for p in padding]


def _draw_case(rng, op, index, *, ndim=None, weight_format="random", dtype=None):
    """One random case (a dict), not yet checked for validity."""
    ndim = ndim or int(rng.integers(1, 4))
    sp = SPATIAL[ndim]
    groups = int(rng.choice([1, 1, 2, 3]))
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    kernel = tuple(int(v) for v in rng.integers(1, 5 if ndim < 3 else 4, ndim))
    stride = tuple(int(v) for v in rng.integers(1, 4, ndim))
    dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
    sizes = tuple(int(v) for v in rng.integers(1, 9 if ndim < 3 else 6, ndim))
    kind = str(rng.choice(["int", "per-dim", "pairs", "pairs", "valid", "same", "same_lower",
                           "full"]))
    if kind == "int":
        padding = int(rng.integers(0, 4))
    elif kind == "per-dim":
        padding = tuple(int(v) for v in rng.integers(0, 4, ndim))
    elif kind == "pairs":
        padding = tuple((int(a), int(b)) for a, b in rng.integers(0, 4, (ndim, 2)))
    else:
        padding = kind
    last = bool(rng.integers(0, 2))
    data_format = (ALIASES[last, ndim] if rng.random() < 0.4
                   else "channels_last" if last else "channels_first")
    if weight_format == "random":
        formats = _weight_formats(ndim)
        weight_format = (formats[int(rng.integers(0, len(formats)))] if rng.random() < 0.85
                         else "".join(rng.permutation(list("OI" + sp))))
    case = dict(op=op, index=index, ndim=ndim, groups=groups, c_in=c_in, c_out=c_out,
                kernel=kernel, stride=stride, dilation=dilation, sizes=sizes, kind=kind,
                padding=padding, last=last, data_format=data_format,
                weight_format=weight_format, batch=int(rng.integers(1, 3)),
                dtype=dtype or str(rng.choice(["float64", "float64", "float64", "float32"])),
                bias=bool(rng.random() < 0.8), path=("conv_transpose", "lhs_dilation")[index % 2],
                padding_mode="zeros", output_padding=(0,) * ndim, output_size=None,
                grads=("x", "weight", "bias"))
    if rng.random() < 0.3:
        case["grads"] = tuple(g for g in ("x", "weight", "bias") if rng.random() < 0.5) or ("x",)
    if op == "conv":
        if index % 3 == 1:   # every third case, in turn
            case["padding_mode"] = ("reflect", "replicate", "circular")[index // 3 % 3]
    elif kind != "same" and kind != "same_lower":
        K = _effective(kernel, dilation)
        if kind == "valid" and rng.random() < 0.5:   # Keras's and JAX's "valid"
            case["output_padding"] = tuple(max(s - k, 0) for s, k in zip(stride, K))
        else:
            case["output_padding"] = tuple(int(rng.integers(0, max(s, d)))
                                           for s, d in zip(stride, dilation))
        # output_size picks an output_padding below the stride (PyTorch's rule)
        if rng.random() < 0.25 and all(qq < s for qq, s in zip(case["output_padding"], stride)):
            case["output_size"] = "spatial" if rng.random() < 0.5 else "full"
    return case


def _valid(jax, case):
    n, K, s = case["sizes"], _effective(case["kernel"], case["dilation"]), case["stride"]
    if case["op"] == "conv":
        pairs = _conv_pairs(jax, case["padding"], n, case["kernel"], s, case["dilation"])
        mode = case["padding_mode"]
        for size, k, (before, after) in zip(n, K, pairs):
            if size + before + after < k:
                return False
            if mode == "reflect" and max(before, after) >= size:
                return False
            if mode == "circular" and max(before, after) > size:
                return False
        return True
    pairs, extra = _resolve_transpose_padding(case["padding"], case["kernel"], s,
                                              case["dilation"])
    return all((i - 1) * st + k - b - a + e + q >= 1 for i, k, st, (b, a), e, q in
               zip(n, K, s, pairs, extra, case["output_padding"]))


def _draw_cases(jax, op, count, seed, **fixed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        case = _draw_case(rng, op, len(cases), **fixed)
        if _valid(jax, case):
            cases.append(case)
    return cases


def _describe(case):
    keys = ("ndim", "dtype", "data_format", "weight_format", "batch", "c_in", "c_out", "groups",
            "sizes", "kernel", "stride", "dilation", "padding", "output_padding", "output_size",
            "padding_mode", "bias", "grads")
    text = " ".join(f"{k}={case[k]!r}" for k in keys)
    if case["op"] == "conv_transpose":
        text += f" oracle={case['path']}"
    if case.get("xla_workaround"):
        text += " (oracle compiled without XLA's algebraic simplifier)"
    return f"{case['op']} case {case['index']}: {text}"


# ------------------------------------------------------------------------ the arrays
def _data_spec(case):
    sp = SPATIAL[case["ndim"]]
    return "N" + sp + "C" if case["last"] else "NC" + sp


def _weight_spec(case):
    """The weight's layout letters (fastdeconv's ``weight_format``, None: canonical)."""
    canonical = ("OI" if case["op"] == "conv" else "IO") + SPATIAL[case["ndim"]]
    return case["weight_format"] or canonical


def _arrays(case, rng):
    """x, w and b in the caller's layouts, built letter by letter from the case."""
    sp, g = SPATIAL[case["ndim"]], case["groups"]
    sizes = dict(zip(sp, case["sizes"]))
    x_shape = tuple(case["batch"] if c == "N" else case["c_in"] if c == "C" else sizes[c]
                    for c in _data_spec(case))
    if case["op"] == "conv":
        letters = {"O": case["c_out"], "I": case["c_in"] // g}
    else:
        letters = {"I": case["c_in"], "O": case["c_out"] // g}
    letters.update(zip(sp, case["kernel"]))
    w_shape = tuple(letters[c] for c in _weight_spec(case))
    dtype = case["dtype"]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(case["c_out"]).astype(dtype)
    return x, w, b


# -------------------------------------------------------------------------- JAX oracle
def _jax_forward(jax, case):
    """``f(x, w, b)``: the case's operator in JAX, on arrays in the caller's layouts."""
    lax, jnp = jax.lax, jax.numpy
    spec = _data_spec(case)
    c_axis = spec.index("C")
    kernel, stride, dilation = case["kernel"], case["stride"], case["dilation"]
    K = _effective(kernel, dilation)
    g = case["groups"]
    highest = lax.Precision.HIGHEST

    def add_bias(y, b):
        return y + b.reshape(tuple(-1 if a == c_axis else 1 for a in range(y.ndim)))

    w_spec = _weight_spec(case)
    # JAX orders the spatial dimensions of a convolution as the kernel spec lists them
    # (conv_general_permutations), and takes strides, dilations and pads in that order
    order = [SPATIAL[case["ndim"]].index(c) for c in w_spec if c not in "OI"]

    def in_kernel_order(values):
        return values if isinstance(values, str) else tuple(values[i] for i in order)

    if case["op"] == "conv":
        dn = (spec, w_spec, spec)
        padding = case["padding"]
        mode = case["padding_mode"]
        if mode != "zeros":
            pairs = _conv_pairs(jax, padding, case["sizes"], kernel, stride, dilation)
            spatial_pairs = dict(zip(SPATIAL[case["ndim"]], pairs))
            widths = [spatial_pairs.get(c, (0, 0)) for c in spec]
            jnp_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
            padding = "VALID"
        elif isinstance(padding, str):
            padding = ([(k - 1, k - 1) for k in K] if padding == "full"
                       else padding.upper())        # JAX's own VALID / SAME / SAME_LOWER
        else:
            padding = _conv_pairs(jax, padding, case["sizes"], kernel, stride, dilation)

        padding = in_kernel_order(padding)

        def forward(x, w, b):
            if mode != "zeros":
                x = jnp.pad(x, widths, mode=jnp_mode)
            y = lax.conv_general_dilated(x, w, in_kernel_order(stride), padding,
                                         rhs_dilation=in_kernel_order(dilation),
                                         dimension_numbers=dn, feature_group_count=g,
                                         precision=highest)
            return add_bias(y, b)
        return forward

    q = case["output_padding"]
    pairs, extra = _resolve_transpose_padding(case["padding"], kernel, stride, dilation)
    if case["path"] == "conv_transpose":
        kind = case["kind"]
        if kind == "same":
            padding = "SAME"
        elif kind == "valid" and all(qq == max(s - k, 0) for qq, s, k in zip(q, stride, K)):
            padding = "VALID"
        else:
            padding = tuple((b, a - e - qq) for (b, a), e, qq in zip(pairs, extra, q))
        jax_spec = w_spec.translate(str.maketrans("IO", "OI"))
        i_axis = w_spec.index("I")

        def forward(x, w, b):
            ys = [lax.conv_transpose(xg, wg, in_kernel_order(stride), in_kernel_order(padding),
                                     rhs_dilation=in_kernel_order(dilation),
                                     dimension_numbers=(spec, jax_spec, spec),
                                     transpose_kernel=True, use_consistent_padding=True,
                                     precision=highest)
                  for xg, wg in zip(jnp.split(x, g, axis=c_axis), jnp.split(w, g, axis=i_axis))]
            return add_bias(jnp.concatenate(ys, axis=c_axis), b)
        return forward

    sp = SPATIAL[case["ndim"]]
    pads = [(k - 1 - b, k - 1 - a + e + qq) for k, (b, a), e, qq in zip(K, pairs, extra, q)]
    to_iohw = [w_spec.index(c) for c in "IO" + sp]
    c_in, c_out = case["c_in"], case["c_out"]

    def forward(x, w, b):
        w = jnp.flip(jnp.transpose(w, to_iohw), axis=tuple(range(2, 2 + case["ndim"])))
        w = w.reshape((g, c_in // g, c_out // g) + kernel).swapaxes(1, 2)
        w = w.reshape((c_out, c_in // g) + kernel)
        y = lax.conv_general_dilated(x, w, (1,) * case["ndim"], pads, lhs_dilation=stride,
                                     rhs_dilation=dilation,
                                     dimension_numbers=(spec, "OI" + sp, spec),
                                     feature_group_count=g, precision=highest)
        return add_bias(y, b)
    return forward


def _conv_equations(jaxpr):
    """The ``conv_general_dilated`` equations of a jaxpr, nested ones (jit, ...) included."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                sub = getattr(sub, "jaxpr", sub)     # a ClosedJaxpr's Jaxpr
                if hasattr(sub, "eqns"):
                    yield from _conv_equations(sub)


def _xla_may_misread_a_dimension(eqn):
    """Whether a convolution has a spatial dimension that XLA's operand swap may take for a
    group dimension (the module docstring's bug): input dilation ``k >= 2``, window stride
    ``k - 1`` and no kernel dilation. A necessary condition of the abort, with a margin for
    XLA's rewrites before the swap: a negative pad may become a slice of the input, so it
    is not required that the padding be 0 (only that none be positive) nor that the input's
    size there differ from ``k``; the abort also needs the swap to look worthwhile (the
    other dimensions' kernel bigger than their input). 77 of the 3000 slow sweep cases (2
    of the default 80) have such a dimension; one of them (conv_transpose case 1383) aborted."""
    params = eqn.params
    dn = params["dimension_numbers"]
    rhs = eqn.invars[1].aval.shape
    for i, (stride, (lo, hi), lhs_dil, rhs_dil) in enumerate(zip(
            params["window_strides"], params["padding"], params["lhs_dilation"],
            params["rhs_dilation"])):
        k = rhs[dn.rhs_spec[2 + i]]
        if k >= 2 and lhs_dil == k and stride == k - 1 and rhs_dil == 1 and max(lo, hi) <= 0:
            return True
    return False


def _compiled(jax, fn, *args, case=None):
    """``fn`` compiled by XLA for ``args``' shapes, with ``XLA_WORKAROUND`` if one of its
    convolutions may abort the compiler (then noted in ``case`` and counted)."""
    traced = jax.jit(fn).trace(*args)
    options = None
    if any(map(_xla_may_misread_a_dimension, _conv_equations(traced.jaxpr.jaxpr))):
        options = dict(XLA_WORKAROUND)
        if case is not None:
            case["xla_workaround"] = True
            WORKAROUNDS[case["op"]] += 1
    return traced.lower().compile(options)


def _output_and_vjp(jax, forward):
    def output_and_vjp(x, w, b, gy):
        y, vjp = jax.vjp(forward, x, w, b)
        return (y,) + tuple(vjp(gy))
    return output_and_vjp


def _jax_results(jax, case, x, w, b, rng, *, compiler_options="auto"):
    """JAX's output, a random output gradient and the vjp, all float64 numpy arrays
    (``compiler_options``: XLA's for this oracle instead of the automatic choice)."""
    forward = _jax_forward(jax, case)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    out_shape = jax.eval_shape(forward, x64, w64, b64).shape
    grad_y = rng.standard_normal(out_shape).astype(case["dtype"])
    args = (x64, w64, b64, grad_y.astype(np.float64))
    fn = _output_and_vjp(jax, forward)
    compiled = (_compiled(jax, fn, *args, case=case) if compiler_options == "auto" else
                jax.jit(fn).trace(*args).lower().compile(compiler_options))
    return grad_y, [np.asarray(r) for r in compiled(*args)]


# -------------------------------------------------------------------- fastdeconv calls
def _keywords(case, y_shape=None):
    kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
              groups=case["groups"], data_format=case["data_format"],
              weight_format=case["weight_format"])
    if case["op"] == "conv":
        kw["padding_mode"] = case["padding_mode"]
    elif case["output_size"] is not None and y_shape is not None:
        spatial = [y_shape[i] for i, c in enumerate(_data_spec(case)) if c not in "NC"]
        kw["output_size"] = tuple(y_shape) if case["output_size"] == "full" else tuple(spatial)
    else:
        kw["output_padding"] = case["output_padding"]
    return kw


def _check_case(jax, case, rng):
    """Run one case through fastdeconv and JAX; record it under the operator and its
    backward pass."""
    x, w, b = _arrays(case, rng)
    grad_y, (y_jax, gx_jax, gw_jax, gb_jax) = _jax_results(jax, case, x, w, b, rng)
    kw = _keywords(case, y_jax.shape)
    forward = fastdeconv.conv if case["op"] == "conv" else fastdeconv.conv_transpose
    backward = (fastdeconv.conv_backward if case["op"] == "conv"
                else fastdeconv.conv_transpose_backward)
    description = _describe(case)
    failures = []
    try:
        y = forward(x, w, b if case["bias"] else None, **kw)
        _compare("output", y, y_jax if case["bias"] else y_jax - _bias_term(case, b, y_jax),
                 case["dtype"], failures)
    except Exception as error:  # noqa: BLE001 - a refusal of a valid case is a mismatch
        failures.append(f"output: raised {type(error).__name__}: {error}")
    _record(case["op"], failures, description)
    failures = []
    try:
        grads = backward(grad_y, x, w, grads=case["grads"], **kw)
        for name, got, want in zip(("x", "weight", "bias"), grads, (gx_jax, gw_jax, gb_jax)):
            _compare(f"grad_{name}", got, want if name in case["grads"] else None,
                     case["dtype"], failures)
    except Exception as error:  # noqa: BLE001
        failures.append(f"backward: raised {type(error).__name__}: {error}")
    _record(case["op"] + "_backward", failures, description)
    return x, w, grad_y, y_jax, gx_jax


def _bias_term(case, b, y):
    c_axis = _data_spec(case).index("C")
    return b.astype(np.float64).reshape(tuple(-1 if a == c_axis else 1 for a in range(y.ndim)))


# ----------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def conv_cases(jax):
    return _draw_cases(jax, "conv", N_CASES, seed=20)


@pytest.fixture(scope="module")
def conv_transpose_cases(jax):
    return _draw_cases(jax, "conv_transpose", N_CASES, seed=30)


@pytest.mark.jax
def test_conv_and_its_gradients_match_jax(jax, conv_cases, rng):
    for case in conv_cases:
        _check_case(jax, case, rng)
    _assert_no_mismatches("conv", "conv_backward")


@pytest.mark.jax
def test_conv_transpose_and_its_gradients_match_jax(jax, conv_transpose_cases, rng):
    for case in conv_transpose_cases:
        _check_case(jax, case, rng)
    _assert_no_mismatches("conv_transpose", "conv_transpose_backward")


@pytest.mark.jax
@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_every_2d_weight_format_matches_jax(jax, op, rng):
    """All 24 orders of O, I, H and W, each on a random 2-d case (channels-first and -last
    alternating)."""
    for i, letters in enumerate(itertools.permutations("OIHW")):
        case = _draw_cases(jax, op, 1, seed=100 + i, ndim=2, weight_format="".join(letters))[0]
        case["index"] = f"perm-{''.join(letters)}"
        case["last"] = bool(i % 2)
        case["data_format"] = ("NHWC", "channels_last")[i % 4 // 2] if case["last"] else (
            ("NCHW", "channels_first")[i % 4 // 2])
        _check_case(jax, case, rng)
    _assert_no_mismatches(op, op + "_backward")


@pytest.mark.jax
@pytest.mark.slow
@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_long_sweep_matches_jax(jax, op):
    rng = np.random.default_rng(41)
    for case in _draw_cases(jax, op, N_CASES_SLOW, seed=50 if op == "conv" else 60):
        _check_case(jax, case, rng)
    _assert_no_mismatches(op, op + "_backward")


#: geometries whose JAX oracle aborts XLA:CPU's compiler (see the module docstring)
XLA_ABORTS = [
    # the slow conv_transpose sweep's case 1383, in its forward convolution (both oracles):
    # W has kernel 2, input dilation 2, stride 1, no padding and input 3
    dict(op="conv_transpose", ndim=2, groups=3, c_in=3, c_out=3, kernel=(3, 2), stride=(2, 2),
         dilation=(1, 1), sizes=(2, 3), kind="per-dim", padding=(1, 1), last=False,
         data_format="channels_first", weight_format="WOHI", output_padding=(0, 0)),
    # a stride-2 conv, in JAX's vjp w.r.t. x: W has kernel 2, grad_y (size 3) dilated by 2
    dict(op="conv", ndim=2, groups=1, c_in=1, c_out=1, kernel=(2, 2), stride=(1, 2),
         dilation=(1, 1), sizes=(1, 4), kind="pairs", padding=((1, 0), (1, 1)), last=True,
         data_format="NHWC", weight_format=None, output_padding=(0, 0)),
]


def _xla_abort_cases(geometry):
    paths = ("conv_transpose", "lhs_dilation") if geometry["op"] == "conv_transpose" else (
        "conv_transpose",)     # (conv ignores it)
    return [dict(geometry, index=f"xla-abort-{path}", path=path, batch=2, dtype="float64",
                 bias=True, padding_mode="zeros", output_size=None,
                 grads=("x", "weight", "bias")) for path in paths]


@pytest.mark.jax
@pytest.mark.parametrize("geometry", XLA_ABORTS, ids=["conv_transpose", "conv"])
def test_geometries_that_abort_xla_are_checked_with_the_workaround(jax, geometry, rng):
    """These oracles (compiled as the other cases' are, they kill the process) are compiled
    with ``XLA_WORKAROUND``, and fastdeconv matches them."""
    for case in _xla_abort_cases(geometry):
        before = WORKAROUNDS[case["op"]]
        _check_case(jax, case, rng)
        assert case.get("xla_workaround") and WORKAROUNDS[case["op"]] == before + 1
    _assert_no_mismatches(geometry["op"], geometry["op"] + "_backward")


@pytest.mark.jax
@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_oracles_compiled_with_the_workaround_are_unchanged(jax, op):
    """``XLA_WORKAROUND`` changes how XLA compiles an oracle, not what it computes: on random
    cases that XLA compiles either way (both conv_transpose oracles) the outputs and vjps
    agree to rounding."""
    compared = 0
    for case in _draw_cases(jax, op, 30, seed=120 if op == "conv" else 121, dtype="float64"):
        results = []
        for options in ("auto", XLA_WORKAROUND):
            _, out = _jax_results(jax, case, *_arrays(case, np.random.default_rng(0)),
                                  np.random.default_rng(1), compiler_options=options)
            results.append(out)
        if case.get("xla_workaround"):     # compiled with XLA_WORKAROUND both times
            continue
        compared += 1
        failures = []
        for name, got, want in zip(("output", "grad_x", "grad_weight", "grad_bias"), *results):
            _compare(name, got, want, "float64", failures)
        _record(f"{op} oracle: XLA_WORKAROUND = default", failures, _describe(case))
    assert compared >= 25
    _assert_no_mismatches(f"{op} oracle: XLA_WORKAROUND = default")


def _family(weight_format):
    """``"OIHW"`` -> ``"OIS"``, ...: the order of O, I and the (contiguous, ordered) spatial
    letters; ``"mixed"`` when the spatial letters are split or reordered."""
    if weight_format is None:
        return None
    spatial = "".join(c for c in weight_format if c not in "OI")
    family = weight_format.replace(spatial, "S")
    return family if len(family) == 3 else "mixed"


@pytest.mark.jax
def test_sweeps_cover_every_layout_padding_and_geometry(jax, conv_cases, conv_transpose_cases):
    seen = collections.defaultdict(set)
    for case in conv_cases + conv_transpose_cases:
        seen["ndim"].add(case["ndim"])
        seen["kind"].add(case["kind"])
        seen["data_format"].add(case["data_format"])
        seen["weight_format"].add(_family(case["weight_format"]))
        seen["groups"].add(case["groups"] > 1)
        seen["dilation"].add(max(case["dilation"]) > 1)
        seen["stride"].add(max(case["stride"]) > 1)
        seen["asymmetric"].add(isinstance(case["padding"], tuple)
                               and isinstance(case["padding"][0], tuple)
                               and any(b != a for b, a in case["padding"]))
        seen["dtype"].add(case["dtype"])
        seen["mode"].add(case["padding_mode"])
        seen["output_padding"].add(any(case["output_padding"]))
        seen["output_size"].add(case["output_size"])
        seen["path"].add(case["path"] if case["op"] == "conv_transpose" else None)
    assert seen["ndim"] == {1, 2, 3}
    assert seen["kind"] == {"int", "per-dim", "pairs", "valid", "same", "same_lower", "full"}
    assert seen["data_format"] == {"channels_first", "channels_last", *ALIASES.values()}
    assert seen["weight_format"] == {None, "OIS", "IOS", "SIO", "SOI", "OSI", "ISO", "mixed"}
    for key in ("groups", "dilation", "stride", "asymmetric", "output_padding"):
        assert seen[key] == {True, False}, key
    assert seen["dtype"] == {"float32", "float64"}
    assert seen["mode"] == {"zeros", "reflect", "replicate", "circular"}
    assert seen["output_size"] == {None, "spatial", "full"}
    assert seen["path"] == {None, "conv_transpose", "lhs_dilation"}


# --------------------------------------------------------------- the sparse matrices
@pytest.mark.jax
def test_sparse_matrices_and_linear_operators_match_jax(jax, rng):
    """``conv_matrix`` / ``conv_transpose_matrix`` times a sample and ``linear_operator``'s
    ``matvec`` and ``to_sparse()`` product equal JAX's output, and ``rmatvec`` of the output
    gradient JAX's grad_x, with the vectors flattened in the caller's layout."""
    for op, seed in (("conv", 70), ("conv_transpose", 80)):
        cases = _draw_cases(jax, op, 8, seed=seed, dtype="float64")
        for case in cases:
            case.update(batch=1, bias=False, grads=("x", "weight", "bias"),
                        output_size=case["output_size"] and "spatial")
            x, w, b = _arrays(case, rng)
            grad_y, (y_jax, gx_jax, _, _) = _jax_results(jax, case, x, w, 0 * b, rng)
            kw = _keywords(case, y_jax.shape)
            name = "sparse." + ("conv_matrix" if op == "conv" else "conv_transpose_matrix")
            failures = []
            try:
                matrix = (conv_matrix if op == "conv" else conv_transpose_matrix)(
                    x.shape[1:], w, **kw)
                _compare("matrix @ x", matrix @ x[0].ravel(), y_jax[0].ravel(), "float64",
                         failures)
            except Exception as error:  # noqa: BLE001
                failures.append(f"raised {type(error).__name__}: {error}")
            _record(name, failures, _describe(case))
            failures = []
            try:
                operator = linear_operator(op, x.shape[1:], weight=w, **kw)
                _compare("matvec", operator.matvec(x[0].ravel()), y_jax[0].ravel(),
                         "float64", failures)
                _compare("rmatvec", operator.rmatvec(grad_y[0].ravel()), gx_jax[0].ravel(),
                         "float64", failures)
                _compare("to_sparse() @ x", operator.to_sparse() @ x[0].ravel(),
                         y_jax[0].ravel(), "float64", failures)
            except Exception as error:  # noqa: BLE001
                failures.append(f"raised {type(error).__name__}: {error}")
            _record(f"linear_operator({op!r})", failures, _describe(case))
    _assert_no_mismatches("sparse.conv_matrix", "sparse.conv_transpose_matrix",
                          "linear_operator('conv')", "linear_operator('conv_transpose')")


# ------------------------------------------------------------------------ deconvolve
@pytest.mark.jax
def test_deconvolve_solves_the_normal_equations_of_jax_operator(jax, rng):
    """``deconvolve`` in every layout returns a least-squares solution of the operator that
    JAX computes: ``A^T (A x - y) = 0``, with ``A^T`` JAX's vjp, far below ``A^T y``."""
    for op, seed in (("conv", 90), ("conv_transpose", 91)):
        cases = _draw_cases(jax, op, 6, seed=seed, dtype="float64")
        for case in cases:
            case.update(padding_mode="zeros", output_padding=(0,) * case["ndim"],
                        output_size=None, bias=False)
            x, w, b = _arrays(case, rng)
            forward = _jax_forward(jax, case)
            zero = np.zeros_like(b)
            y = rng.standard_normal(jax.eval_shape(forward, x, w, zero).shape)

            def normal_residual(x_solution):
                def apply(v):
                    return forward(v, w, zero)
                Ax, vjp = jax.vjp(apply, x_solution)
                return vjp(Ax - y)[0], vjp(y)[0]

            kw = _keywords(case)
            del kw["output_padding" if op == "conv_transpose" else "padding_mode"]
            failures = []
            try:
                sizes = case["sizes"]
                result = fastdeconv.deconvolve(y, w, transpose=op == "conv_transpose",
                                               input_size=sizes, tol=1e-12, **kw)
                if result.x.shape != x.shape:
                    failures.append(f"x: shape {result.x.shape}, expected {x.shape}")
                else:
                    x_solution = np.asarray(result.x)
                    grad, aty = (np.asarray(a) for a in _compiled(
                        jax, normal_residual, x_solution, case=case)(x_solution))
                    scale = max(1.0, float(np.abs(aty).max()))
                    err = float(np.abs(grad).max())
                    if not err <= 1e-6 * scale:
                        failures.append(f"A^T (A x - y): {err:.3e} > 1e-6 x {scale:.3g}")
            except Exception as error:  # noqa: BLE001
                failures.append(f"raised {type(error).__name__}: {error}")
            _record("deconvolve", failures, _describe(case))
    _assert_no_mismatches("deconvolve")


# ------------------------------------------------------ padding="full" without JAX
def _dilated(kernel, dilation):
    """A kernel with ``dilation - 1`` zeros between its taps, per spatial axis (the leading
    axes; trailing axes, e.g. channels, are left alone)."""
    spatial = len(dilation)
    shape = tuple(d * (k - 1) + 1 for k, d in zip(kernel.shape[:spatial], dilation))
    out = np.zeros(shape + kernel.shape[spatial:], dtype=kernel.dtype)
    out[tuple(slice(None, None, d) for d in dilation)] = kernel
    return out


def test_full_padding_is_numpy_and_scipy_full_mode(rng):
    """At stride 1, ``conv(..., padding="full")`` is ``numpy.convolve(x, w[::-1], "full")``
    and ``scipy.signal.correlate(x, w, "full")`` (a dilated kernel is the kernel with zeros
    between its taps), and ``conv_transpose(..., padding="full")``, its adjoint, is
    ``numpy.convolve(x, w, "valid")`` / ``scipy.signal.convolve(x, w, "valid")``; in n-d,
    channels-last with HWIO / HWOI weights, summed over input channels."""
    from scipy import signal

    for n, k, d in itertools.product(range(1, 8), range(1, 5), range(1, 4)):
        x, w = rng.standard_normal(n), rng.standard_normal(k)
        wd = _dilated(w, (d,))
        failures = []
        y = fastdeconv.conv(x[None, None], w[None, None], padding="full", dilation=d)[0, 0]
        _compare("numpy.convolve full", y, np.convolve(x, wd[::-1], "full"), "float64", failures)
        _compare("scipy.signal.correlate full", y, signal.correlate(x, wd, "full"), "float64",
                 failures)
        _record("conv full vs numpy/scipy", failures, f"n={n} k={k} dilation={d}")
        if n >= len(wd):   # numpy's "valid" swaps its arguments when the kernel is longer
            failures = []
            y = fastdeconv.conv_transpose(x[None, None], w[None, None], padding="full",
                                          dilation=d)[0, 0]
            _compare("numpy.convolve valid", y, np.convolve(x, wd, "valid"), "float64",
                     failures)
            _record("conv_transpose full vs numpy/scipy", failures, f"n={n} k={k} dilation={d}")
    for case in range(24):
        ndim = 2 + case % 2
        sizes = tuple(int(v) for v in rng.integers(3, 7, ndim))
        kernel = tuple(int(v) for v in rng.integers(1, 4, ndim))
        dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
        c_in, c_out = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        x = rng.standard_normal((2,) + sizes + (c_in,))
        description = f"{ndim}-d sizes={sizes} kernel={kernel} dilation={dilation}"
        w = rng.standard_normal(kernel + (c_in, c_out))                 # HWIO
        wd = _dilated(w, dilation)
        want = np.stack([np.stack([sum(signal.correlate(x[b, ..., c], wd[..., c, o], "full",
                                                        method="direct") for c in range(c_in))
                                   for o in range(c_out)], axis=-1) for b in range(2)])
        failures = []
        y = fastdeconv.conv(x, w, padding="full", dilation=dilation,
                            data_format="channels_last", weight_format=SPATIAL[ndim] + "IO")
        _compare("scipy.signal.correlate full", y, want, "float64", failures)
        _record("conv full vs numpy/scipy", failures, description)
        w = rng.standard_normal(kernel + (c_out, c_in))                 # HWOI
        wd = _dilated(w, dilation)
        if any(n < k for n, k in zip(sizes, wd.shape)):
            continue
        want = np.stack([np.stack([sum(signal.convolve(x[b, ..., c], wd[..., o, c], "valid",
                                                       method="direct") for c in range(c_in))
                                   for o in range(c_out)], axis=-1) for b in range(2)])
        failures = []
        y = fastdeconv.conv_transpose(x, w, padding="full", dilation=dilation,
                                      data_format="channels_last",
                                      weight_format=SPATIAL[ndim] + "OI")
        _compare("scipy.signal.convolve valid", y, want, "float64", failures)
        _record("conv_transpose full vs numpy/scipy", failures, description)
    _assert_no_mismatches("conv full vs numpy/scipy", "conv_transpose full vs numpy/scipy")


def _keras_deconv_output_length(input_length, filter_size, padding, output_padding=None,
                                stride=0, dilation=1):
    """Keras's ``deconv_output_length`` (``keras/utils/conv_utils.py`` of Keras 2, the same in
    ``tensorflow/python/keras/utils/conv_utils.py``; Keras 3's ``Conv*DTranspose`` output
    shapes follow it), written out here as the spec of ``padding="full"``."""
    filter_size = filter_size + (filter_size - 1) * (dilation - 1)
    if output_padding is None:
        if padding == "valid":
            return input_length * stride + max(filter_size - stride, 0)
        if padding == "full":
            return input_length * stride - (stride + filter_size - 2)
        return input_length * stride                                  # "same"
    pad = {"same": filter_size // 2, "valid": 0, "full": filter_size - 1}[padding]
    return (input_length - 1) * stride + filter_size - 2 * pad + output_padding


def _keras_conv_output_length(input_length, filter_size, padding, stride, dilation=1):
    """Keras's ``conv_output_length`` (same file), for ``"valid"``, ``"same"`` and ``"full"``."""
    dilated = filter_size + (filter_size - 1) * (dilation - 1)
    length = {"same": input_length, "valid": input_length - dilated + 1,
              "full": input_length + dilated - 1}[padding]
    return (length + stride - 1) // stride


def test_full_padding_output_lengths_are_keras(rng):
    """``padding="full"`` output lengths: Keras's ``deconv_output_length(..., "full")`` for
    conv_transpose (``output_padding=None`` is 0) and ``conv_output_length(..., "full")``
    for conv, over every small geometry, through :mod:`fastdeconv.shapes` and, for a sample
    of them, the operators themselves (channels-last)."""
    from fastdeconv.shapes import conv_output_shape, conv_transpose_output_shape

    for i, k, s, d in itertools.product(range(1, 8), range(1, 5), range(1, 5), range(1, 4)):
        sample = rng.random() < 0.05
        for q in [None] + list(range(max(s, d))):
            want = _keras_deconv_output_length(i, k, "full", q, s, d)
            failures = []
            try:
                got = conv_transpose_output_shape(i, k, stride=s, padding="full",
                                                  output_padding=q or 0, dilation=d)[0]
                if got != want:
                    failures.append(f"shapes: {got}, Keras {want}")
                if sample:
                    y = fastdeconv.conv_transpose(np.ones((1, i, 1)), np.ones((k, 1, 1)),
                                                  stride=s, padding="full",
                                                  output_padding=q or 0, dilation=d,
                                                  data_format="NWC", weight_format="WOI")
                    if y.shape != (1, want, 1):
                        failures.append(f"conv_transpose: shape {y.shape}, Keras {want}")
            except ValueError as error:
                if want >= 1:
                    failures.append(f"raised {error}")
            _record("conv_transpose full length vs Keras", failures,
                    f"i={i} k={k} stride={s} dilation={d} output_padding={q}")
        want = _keras_conv_output_length(i, k, "full", s, d)
        failures = []
        got = conv_output_shape(i, k, stride=s, padding="full", dilation=d)[0]
        if got != want:
            failures.append(f"shapes: {got}, Keras {want}")
        if sample:
            y = fastdeconv.conv(np.ones((1, i, 1)), np.ones((k, 1, 1)), stride=s,
                                padding="full", dilation=d, data_format="NWC",
                                weight_format="WIO")
            if y.shape != (1, want, 1):
                failures.append(f"conv: shape {y.shape}, Keras {want}")
        _record("conv full length vs Keras", failures, f"i={i} k={k} stride={s} dilation={d}")
    _assert_no_mismatches("conv_transpose full length vs Keras", "conv full length vs Keras")



# ------------------------------------------------------------- the upsampling operators
#
# JAX's counterparts, in the caller's layout (channels-first or channels-last, JAX does not
# care: it resizes / pools the axes it is told to):
#
# resize            jax.image.resize(x, out_shape, method, antialias): half-pixel centres,
#                   scale out / in. "nearest" picks floor((o + 0.5) in / out), which is
#                   ONNX's half_pixel with nearest_mode="round_prefer_ceil" (and PyTorch's
#                   "nearest-exact"); "linear" / "cubic" drop the taps outside the input and
#                   renormalize (ONNX exclude_outside=True), "cubic" is Keys' a = -0.5, and
#                   antialias widens the filter when downsampling as ONNX's antialias does.
# resize_backward   jax.vjp of that.
# max_pool          lax.reduce_window(x, -inf, lax.max, ...) with PyTorch's padding (and,
#                   for ceil_mode, the extra end padding of PyTorch's output-size rule);
#                   with dilation, for which JAX has no vjp of reduce_window, jnp.max over
#                   the stacked strided views of the -inf-padded input, one per kernel tap.
# max_pool_backward jax.vjp of that (random data: no ties).
# max_unpool        jnp.zeros(...).at[n, index, c].set(x) on the spatially flattened planes.
# max_unpool_backward  jax.vjp of that scatter.
# pixel_shuffle / pixel_unshuffle  a jnp reshape / transpose written below (both orders).

N_UPSAMPLE_CASES = 24      # per operator in the default run
N_UPSAMPLE_CASES_SLOW = max(N_CASES_SLOW // 4, 1)


def _draw_layout(rng, ndim):
    last = bool(rng.integers(0, 2))
    if rng.random() < 0.4:
        return last, ALIASES[last, ndim]
    return last, "channels_last" if last else "channels_first"


def _data_shape(batch, channels, sizes, last):
    return (batch,) + (tuple(sizes) + (channels,) if last else (channels,) + tuple(sizes))


def _spatial_axes(ndim, last):
    return tuple(range(1, 1 + ndim)) if last else tuple(range(2, 2 + ndim))


def _jit_output_and_vjp(jax, forward, args, grad_y):
    def output_and_vjp(grad_y, *args):
        y, vjp = jax.vjp(forward, *args)
        return (y,) + tuple(vjp(grad_y))
    return [np.asarray(r) for r in jax.jit(output_and_vjp)(grad_y, *args)]


def _check_resize(jax, rng, index):
    ndim = int(rng.integers(1, 4))
    last, data_format = _draw_layout(rng, ndim)
    method = str(rng.choice(["nearest", "linear", "cubic"]))
    antialias = bool(rng.integers(0, 2))
    dtype = str(rng.choice(["float64", "float64", "float32"]))
    sizes = tuple(int(v) for v in rng.integers(1, 9 if ndim < 3 else 6, ndim))
    out = tuple(int(v) for v in rng.integers(1, 13 if ndim < 3 else 7, ndim))
    x = rng.standard_normal(_data_shape(int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                                        sizes, last)).astype(dtype)
    out_shape = _data_shape(x.shape[0], x.shape[-1 if last else 1], out, last)
    grad_y = rng.standard_normal(out_shape).astype(dtype)
    y_jax, gx_jax = _jit_output_and_vjp(
        jax, lambda x: jax.image.resize(x, out_shape, method, antialias=antialias),
        (x.astype(np.float64),), grad_y.astype(np.float64))
    if method == "nearest":
        kw = (dict(mode="nearest-exact") if index % 2 else   # PyTorch's spelling
              dict(mode="nearest", coordinate_transformation_mode="half_pixel",
                   nearest_mode="round_prefer_ceil"))
    else:
        kw = dict(mode=method, coordinate_transformation_mode="half_pixel",
                  antialias=antialias, exclude_outside=True)
        if method == "cubic":
            kw["cubic_coeff_a"] = -0.5
    description = (f"resize case {index}: {dtype} {data_format} x {x.shape} -> {out} "
                   f"jax method={method!r} antialias={antialias}; fastdeconv {kw}")
    for name, call, want in (
            ("resize", lambda: fastdeconv.resize(x, out, data_format=data_format, **kw), y_jax),
            ("resize_backward", lambda: fastdeconv.resize_backward(
                grad_y, x.shape, out, data_format=data_format, **kw), gx_jax)):
        failures = []
        try:
            _compare(name, call(), want, dtype, failures)
        except Exception as error:  # noqa: BLE001 - a refusal of a valid case is a mismatch
            failures.append(f"raised {type(error).__name__}: {error}")
        _record(name, failures, description)


def _pool_case(rng, ndim):
    kernel = tuple(int(v) for v in rng.integers(1, 4, ndim))
    stride = tuple(int(v) for v in rng.integers(1, 4, ndim))
    dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)   # PyTorch: <= k / 2
    sizes = tuple(int(v) for v in rng.integers(1, 9 if ndim < 3 else 6, ndim))
    return kernel, stride, dilation, padding, sizes


def _pool_output_size(n, k, s, p, d, ceil_mode):
    """PyTorch's max_pool output size (written out): the last window must start inside the
    input or its left padding."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _windows_reach_input(n, k, s, p, d, out):
    """Every window has a tap inside the input (fastdeconv refuses all-padding windows)."""
    return all(any(0 <= o * s - p + t * d < n for t in range(k)) for o in range(out))


def _check_max_pool(jax, rng, index):
    lax, jnp = jax.lax, jax.numpy
    ndim = int(rng.integers(1, 4))
    last, data_format = _draw_layout(rng, ndim)
    kernel, stride, dilation, padding, sizes = _pool_case(rng, ndim)
    ceil_mode = bool(rng.integers(0, 2))
    outs = [_pool_output_size(n, k, s, p, d, ceil_mode)
            for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation)]
    if min(outs) < 1 or not all(
            _windows_reach_input(*args) for args in zip(sizes, kernel, stride, padding,
                                                        dilation, outs)):
        return False
    dtype = str(rng.choice(["float64", "float64", "float32"]))
    x = rng.standard_normal(_data_shape(int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                                        sizes, last)).astype(dtype)
    axes = _spatial_axes(ndim, last)
    window, strides, dilations = [1] * x.ndim, [1] * x.ndim, [1] * x.ndim
    pads = [(0, 0)] * x.ndim
    for i, a in enumerate(axes):
        window[a], strides[a], dilations[a] = kernel[i], stride[i], dilation[i]
        # the end padding that makes reduce_window produce PyTorch's output size
        after = (outs[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 - sizes[i] - padding[i]
        pads[a] = (padding[i], after)

    def forward(x):
        # an input tail that no window reaches is cut off first (JAX's vjp of reduce_window
        # fails on negative pads)
        x = x[tuple(slice(0, n + min(after, 0)) for n, (_, after) in zip(x.shape, pads))]
        cover = [(before, max(after, 0)) for before, after in pads]
        if max(dilation) == 1:
            return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, cover)
        # JAX has no vjp of a dilated max reduce_window: the max over the stack of the
        # strided views, one per kernel tap, of the -inf-padded input
        x = lax.pad(x, -jnp.inf, [(before, after, 0) for before, after in cover])
        views = []
        for taps in itertools.product(*(range(k) for k in kernel)):
            index = [slice(None)] * x.ndim
            for i, a in enumerate(axes):
                start = taps[i] * dilation[i]
                index[a] = slice(start, start + (outs[i] - 1) * stride[i] + 1, stride[i])
            views.append(x[tuple(index)])
        return jnp.max(jnp.stack(views), axis=0)

    out_shape = jax.eval_shape(forward, x.astype(np.float64)).shape
    grad_y = rng.standard_normal(out_shape).astype(dtype)
    y_jax, gx_jax = _jit_output_and_vjp(jax, forward, (x.astype(np.float64),),
                                        grad_y.astype(np.float64))
    description = (f"max_pool case {index}: {dtype} {data_format} x {x.shape} kernel={kernel} "
                   f"stride={stride} padding={padding} dilation={dilation} ceil_mode={ceil_mode}")
    failures = []
    indices = None
    try:
        y, indices = fastdeconv.max_pool(x, kernel, stride=stride, padding=padding,
                                         dilation=dilation, ceil_mode=ceil_mode,
                                         return_indices=True, data_format=data_format)
        _compare("output", y, y_jax, dtype, failures)
        # the indices are flat positions within each spatial plane of the input
        planes = _planes(x, last)
        picked = np.take_along_axis(planes, _planes(indices, last).astype(np.int64), axis=1 if last else 2)
        _compare("x at indices", picked, _planes(y_jax, last), dtype, failures)
    except Exception as error:  # noqa: BLE001
        failures.append(f"raised {type(error).__name__}: {error}")
    _record("max_pool", failures, description)
    failures = []
    try:
        gx = fastdeconv.max_pool_backward(grad_y, indices, x.shape, data_format=data_format)
        _compare("grad_x", gx, gx_jax, dtype, failures)
    except Exception as error:  # noqa: BLE001
        failures.append(f"raised {type(error).__name__}: {error}")
    _record("max_pool_backward", failures, description)
    return True


def _planes(array, last):
    """``(N, C, prod(spatial))`` channels-first, ``(N, prod(spatial), C)`` channels-last."""
    array = np.asarray(array)
    if last:
        return array.reshape(array.shape[0], -1, array.shape[-1])
    return array.reshape(array.shape[:2] + (-1,))


def _check_max_unpool(jax, rng, index):
    jnp = jax.numpy
    ndim = int(rng.integers(1, 4))
    last, data_format = _draw_layout(rng, ndim)
    kernel, stride, _, padding, sizes = _pool_case(rng, ndim)
    outs = [_pool_output_size(n, k, s, p, 1, False)
            for n, k, s, p in zip(sizes, kernel, stride, padding)]
    if min(outs) < 1:
        return False
    dtype = str(rng.choice(["float64", "float64", "float32"]))
    source = rng.standard_normal(_data_shape(int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                                             sizes, last)).astype(dtype)
    pooled, indices = fastdeconv.max_pool(source, kernel, stride=stride, padding=padding,
                                          return_indices=True, data_format=data_format)
    # the pooled values (windows that share a maximum carry the same value) or, with
    # windows that cannot overlap, fresh values
    x = (rng.standard_normal(pooled.shape).astype(dtype)
         if all(s >= k for s, k in zip(stride, kernel)) else pooled)
    full = rng.random() < 0.5
    output_size = source.shape if full else sizes
    flat = _planes(indices, last).astype(np.int64)
    n_idx = np.arange(flat.shape[0]).reshape(-1, 1, 1)
    c_idx = np.arange(flat.shape[-1 if last else 1]).reshape((1, 1, -1) if last else (1, -1, 1))
    plane_shape = _planes(np.empty(source.shape, dtype=np.int8), last).shape

    def forward(x):
        values = x.reshape(flat.shape)
        planes = jnp.zeros(plane_shape, dtype=x.dtype)
        planes = (planes.at[n_idx, flat, c_idx].set(values) if last
                  else planes.at[n_idx, c_idx, flat].set(values))
        return planes.reshape(source.shape)

    grad_y = rng.standard_normal(source.shape).astype(dtype)
    y_jax, gx_jax = _jit_output_and_vjp(jax, forward, (x.astype(np.float64),),
                                        grad_y.astype(np.float64))
    description = (f"max_unpool case {index}: {dtype} {data_format} x {x.shape} kernel={kernel} "
                   f"stride={stride} padding={padding} output_size={output_size}")
    failures = []
    try:
        y = fastdeconv.max_unpool(x, indices, kernel, stride=stride, padding=padding,
                                  output_size=output_size, data_format=data_format)
        _compare("output", y, y_jax, dtype, failures)
    except Exception as error:  # noqa: BLE001
        failures.append(f"raised {type(error).__name__}: {error}")
    _record("max_unpool", failures, description)
    failures = []
    try:
        gx = fastdeconv.max_unpool_backward(grad_y, indices, data_format=data_format)
        _compare("grad_x", gx, gx_jax, dtype, failures)
    except Exception as error:  # noqa: BLE001
        failures.append(f"raised {type(error).__name__}: {error}")
    _record("max_unpool_backward", failures, description)
    return True


def _shuffle_axes(ndim, last, order):
    """The split of the channel axis and the transposition of pixel_shuffle (written out):
    ``(x's split shape as letters, the output's axis order)``. ``"CRD"`` splits the channels
    as ``(C, r_1, ..., r_d)``, ``"DCR"`` as ``(r_1, ..., r_d, C)``; every ``r_i`` then follows
    its spatial axis ``S_i``."""
    S = [f"S{i}" for i in range(ndim)]
    R = [f"r{i}" for i in range(ndim)]
    channels = ["C"] + R if order == "CRD" else R + ["C"]
    split = ["N"] + (S + channels if last else channels + S)
    interleaved = [a for pair in zip(S, R) for a in pair]
    target = ["N"] + (interleaved + ["C"] if last else ["C"] + interleaved)
    return split, [split.index(a) for a in target]


def _check_pixel_shuffle(jax, rng, index):
    jnp = jax.numpy
    ndim = int(rng.integers(1, 4))
    last, data_format = _draw_layout(rng, ndim)
    order = str(rng.choice(["CRD", "DCR"]))
    factors = tuple(int(v) for v in rng.integers(1, 4 if ndim < 3 else 3, ndim))
    uniform = rng.random() < 0.3
    if uniform:
        factors = (factors[0],) * ndim
    sizes = tuple(int(v) for v in rng.integers(1, 5, ndim))
    channels = int(rng.integers(1, 4))
    dtype = str(rng.choice(["float64", "float32"]))
    product = int(np.prod(factors))
    x = rng.standard_normal(_data_shape(int(rng.integers(1, 3)), channels * product, sizes,
                                        last)).astype(dtype)
    split, axes = _shuffle_axes(ndim, last, order)
    letter_size = {"N": x.shape[0], "C": channels}
    letter_size.update({f"S{i}": n for i, n in enumerate(sizes)})
    letter_size.update({f"r{i}": r for i, r in enumerate(factors)})
    split_shape = tuple(letter_size[a] for a in split)
    y_shape = _data_shape(x.shape[0], channels, [n * r for n, r in zip(sizes, factors)], last)

    def shuffle(x):
        return jnp.transpose(x.reshape(split_shape), axes).reshape(y_shape)

    def unshuffle(y):
        transposed = tuple(split_shape[a] for a in axes)
        return jnp.transpose(y.reshape(transposed), np.argsort(axes)).reshape(x.shape)

    y = rng.standard_normal(y_shape).astype(dtype)
    shuffled, unshuffled = (np.asarray(a) for a in jax.jit(
        lambda x, y: (shuffle(x), unshuffle(y)))(x, y))
    factor = factors[0] if uniform else factors
    description = (f"pixel_shuffle case {index}: {dtype} {data_format} x {x.shape} "
                   f"factor={factor} order={order!r}")
    for name, call, want in (
            ("pixel_shuffle", lambda: fastdeconv.pixel_shuffle(
                x, factor, order=order, data_format=data_format), shuffled),
            ("pixel_unshuffle", lambda: fastdeconv.pixel_unshuffle(
                y, factor, order=order, data_format=data_format), unshuffled)):
        failures = []
        try:
            got = call()
            _compare(name, got, want, dtype, failures)
            if not failures and not np.array_equal(got, want):
                failures.append(f"{name}: not bit-identical (a permutation)")
        except Exception as error:  # noqa: BLE001
            failures.append(f"raised {type(error).__name__}: {error}")
        _record(name, failures, description)


_UPSAMPLE_CHECKS = {"resize": (_check_resize, ("resize", "resize_backward")),
                    "max_pool": (_check_max_pool, ("max_pool", "max_pool_backward")),
                    "max_unpool": (_check_max_unpool, ("max_unpool", "max_unpool_backward")),
                    "pixel_shuffle": (_check_pixel_shuffle, ("pixel_shuffle", "pixel_unshuffle"))}


def _run_upsample_sweep(jax, op, count, seed):
    check, operators = _UPSAMPLE_CHECKS[op]
    rng = np.random.default_rng(seed)
    done = 0
    while done < count:
        if check(jax, rng, done) is not False:   # False: an invalid geometry, drawn again
            done += 1
    _assert_no_mismatches(*operators)


@pytest.mark.jax
@pytest.mark.parametrize("op", list(_UPSAMPLE_CHECKS))
def test_upsampling_operators_in_every_layout_match_jax(jax, op):
    _run_upsample_sweep(jax, op, N_UPSAMPLE_CASES, seed=200 + list(_UPSAMPLE_CHECKS).index(op))


@pytest.mark.jax
@pytest.mark.slow
@pytest.mark.parametrize("op", list(_UPSAMPLE_CHECKS))
def test_long_upsampling_sweep_matches_jax(jax, op):
    _run_upsample_sweep(jax, op, N_UPSAMPLE_CASES_SLOW,
                        seed=300 + list(_UPSAMPLE_CHECKS).index(op))

# ------------------------------------------------------------------ the summary table
def test_oracle_counts():
    """Cases and mismatches per operator of this module's tests (run last; ``-s`` shows it)."""
    width = max((len(op) for op in COUNTS), default=8)
    lines = [f"{'operator':<{width}}  cases  mismatches"]
    lines += [f"{op:<{width}}  {n:>5}  {bad:>10}" for op, (n, bad) in COUNTS.items()]
    print("\nJAX oracle:\n" + "\n".join(lines))
    if WORKAROUNDS:
        print("oracles compiled with XLA_WORKAROUND: "
              + ", ".join(f"{op} {n}" for op, n in WORKAROUNDS.items()))
    assert all(bad == 0 for _, bad in COUNTS.values()), "\n".join(lines)
