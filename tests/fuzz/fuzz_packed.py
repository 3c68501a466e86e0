"""Coverage-guided fuzz target of the packed GEMM engine (atheris, i.e. libFuzzer).

Each execution decodes the fuzzer's bytes (``atheris.FuzzedDataProvider``) into a dtype
(float32 or float64), a kernel (each one this CPU runs), a thread count (1 or 2), a kind of
values (small integers, whose products and sums are exact in either dtype, so that the result
must equal the reference to the bit; or standard normal values, held to the classical error
bound of a sum of ``K`` products), and then

* a GEMM ``C (+)= op(A) op(B) (+ bias)`` through ``_packed_gemm.gemm``: ``m``, ``n``, ``k``
  small or at / around the kernel's register tiles (MR, NR), cache blocks (MC, KC, NC) and the
  work-item split, both transposes, ``accumulate``, ``bias``; checked against NumPy's float64
  matmul (and, when the GEMM is cut into several work items, the same bits for 1 and 2
  threads);
* a forward convolution (1-3 spatial dimensions, batch, groups, kernel size, stride,
  dilation, padding before and after chosen apart, so asymmetric; negative padding, i.e.
  cropping, on the engine's own entry) either through ``_packed_conv.conv_forward_packed``
  with the chosen kernel or through ``fastdeconv.conv`` with the ``packed`` algorithm forced
  (the Python layer: plan, batch parts, bias); checked against
  ``fastdeconv.testing.conv_reference``;
* a transposed convolution (1-3 spatial dimensions, batch, groups, kernel size, stride 1-4,
  padding before and after chosen apart, ``output_padding``) as the engine's stride phases or
  its col2im, either through ``_packed_conv.conv_transpose_phases_packed`` (the phases from
  ``ConvGeometry.transpose_phases``) or ``_packed_col2im.conv_transpose_col2im_packed`` with
  the chosen kernel, or through ``fastdeconv.conv_transpose`` with the ``packed_phases`` or
  ``packed_col2im`` algorithm forced; checked against
  ``fastdeconv.testing.conv_transpose_reference``;
* a weight gradient (1-3 spatial dimensions, batch, groups, kernel size, stride, dilation,
  asymmetric padding, channel counts at the register tiles) either through
  ``_packed_wgrad.conv_weight_grad_packed`` with the chosen kernel (on the channels-last copies
  the plan makes; the gathered or, where ``transposed_rows`` allows, the transposed form) or
  through ``fastdeconv.conv_backward`` with ``packed`` forced; checked against
  ``fastdeconv.testing.conv_weight_grad_reference``;
* a forward convolution on the direct convolution, either through
  ``_direct_conv.conv_direct`` with the chosen kernel (on a channels-last copy made here,
  padding before >= 0, any padding after) or through ``fastdeconv.conv`` with the ``direct``
  algorithm forced; output channel counts at, below and above the kernel's panel widths and
  positions around its MR (tiles that pass from one sample into the next); checked against
  ``fastdeconv.testing.conv_reference``;
* a transposed convolution whose kernel sizes are multiples of its strides (1-3 spatial
  dimensions, strides up to 20 in the last, padding before and after, ``output_padding``)
  on the direct convolution's depth-to-space store, either through
  ``_direct_conv.conv_direct_to_space`` with the chosen kernel (its weight the sub-pixel
  array or gathered by ``pack_weight_gathered``, the grid moved so that some of ``y`` is no
  channel's: those positions must keep their NaN) or through ``fastdeconv.conv_transpose``
  with sub-pixel forced and its direct rule opened to every stride; checked against
  ``fastdeconv.testing.conv_transpose_reference``.

Sizes are bounded (at most ``MAX_MACS`` multiply-adds per GEMM or convolution, most far
fewer) so that an execution takes about a millisecond. A wrong result raises
``AssertionError`` with the decoded case: atheris reports it like a crash, writes the input to
``<artifact_prefix>crash-<sha1>`` and exits non-zero. Re-run one input with
``python tests/fuzz/fuzz_packed.py <that file>``.

Coverage that guides the fuzzer: the decoding functions below (``atheris.instrument_func``:
which kind of size, route, edge was taken), the fastdeconv Python modules (not its NumPy
references; ``atheris.instrument_imports``) and, with ``tests/fuzz/run_native.sh``, the
compiled extensions themselves (clang's ``-fsanitize=fuzzer-no-link``, with AddressSanitizer).

The documented run (10^6 executions; from the root of a checkout, after the in-place build;
the reliability page of the user guide has its result)::

    OMP_WAIT_POLICY=passive PYTHONPATH=$PWD nice -n 10 python tests/fuzz/fuzz_packed.py \\
        /tmp/fuzz-corpus -atheris_runs=1000000 -seed=1 -max_len=64 -rss_limit_mb=4096 \\
        -artifact_prefix=/tmp/fuzz-packed- -print_final_stats=1

(``bash tests/fuzz/run_native.sh`` with the same arguments: on the instrumented ASan copy.)
``tests/test_fuzz_target.py`` runs it for about 20 seconds in CI.
"""

import importlib.util
import pathlib
import sys

import atheris
import numpy as np

# atheris excludes modules by their exact names: the references' modules one by one (found
# without importing fastdeconv, which must be imported under the instrumentation)
_TESTING = pathlib.Path(importlib.util.find_spec("fastdeconv").submodule_search_locations[0],
                        "testing")
REFERENCE_MODULES = ["fastdeconv.testing"] + sorted(
    f"fastdeconv.testing.{p.stem}" for p in _TESTING.glob("*.py") if p.stem != "__init__")

with atheris.instrument_imports(include=["fastdeconv"], exclude=REFERENCE_MODULES):
    import fastdeconv
    from fastdeconv._algorithms import (budget, current_budget, forced_algorithm, packed_wgrad,
                                        plan, subpixel)
    from fastdeconv._algorithms.phases import phase_table
    from fastdeconv._problem import conv_problem, conv_transpose_problem
    from fastdeconv._ext import (_direct_conv, _packed_col2im, _packed_conv, _packed_gemm,
                                 _packed_wgrad)

from fastdeconv.testing import (conv_reference, conv_transpose_reference,
                                conv_weight_grad_reference)

KERNELS = _packed_gemm.supported_kernels()
DEFAULT_KERNEL = next(k for k in KERNELS
                      if _packed_gemm.kernel_info(k)["name"] == _packed_gemm.kernel_info()["name"])
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Multiply-adds of one GEMM or convolution at most: above the engine's threshold for
#: cutting a GEMM into several work items (2**21), so that threads and the split are fuzzed,
#: when the input asks for a large case (one value in 32 of its "large" byte); else
#: SMALL_MACS, so that most executions take well under a millisecond.
MAX_MACS = 3 * 2**20
SMALL_MACS = 2**15
#: Values are slices of these pools (drawing them anew would cost more than the engine):
#: small integers (exact products and sums) and standard normal values, as float64.
_POOL_RNG = np.random.default_rng(20261206)
POOL_SIZE = 2**21
POOLS = {True: _POOL_RNG.integers(-3, 4, size=POOL_SIZE).astype(np.float64),
         False: _POOL_RNG.standard_normal(POOL_SIZE)}
#: Largest spatial input size per dimension, for 1, 2 and 3 spatial dimensions.
MAX_SIZE = {1: 40, 2: 12, 3: 6}
#: The depth-to-space route's reference work (output positions x taps x channels x samples) at
#: most: its patches take 8 bytes each.
REFERENCE_WORK = 2**21


def _blocking(kernel, dtype):
    """(row sizes, column sizes, depths) at which the kernel's blocking changes."""
    info = _packed_gemm.kernel_info(kernel)[dtype.name]
    rows, cols = {info["MC"]}, {info["NC"]}
    for mr, nr in info["tiles"]:
        rows.update((mr, 2 * mr, 3 * mr))
        cols.update((nr, 2 * nr, 4 * nr, 5 * nr))
    depths = {info["KC"], 2 * info["KC"]}
    return sorted(rows), sorted(cols), sorted(depths)


BLOCKING = {(k, d): _blocking(k, d) for k in KERNELS for d in DTYPES}


@atheris.instrument_func
def _size(fdp, edges, small):
    """(size, at an edge): 0..small at random, or an edge size of the blocking, one below,
    at or one above it."""
    if fdp.ConsumeIntInRange(0, 2) < 2:
        return fdp.ConsumeIntInRange(0, small), False
    edge = edges[fdp.ConsumeIntInRange(0, len(edges) - 1)]
    return max(0, edge + fdp.ConsumeIntInRange(-1, 1)), True


@atheris.instrument_func
def _shrink(sizes, at_edge, limit):
    """Halve the largest size (those not at an edge first) until their product <= limit."""
    sizes = list(sizes)
    while np.prod([max(s, 1) for s in sizes]) > limit:
        order = sorted(range(len(sizes)), key=lambda i: (at_edge[i], -sizes[i]))
        i = next(i for i in order if sizes[i] > 1)
        sizes[i] //= 2
    return sizes


def _values(seed, shape, dtype, exact):
    """Values of a shape from a pool, starting at a place the seed chooses: small integers
    (|v| <= 3: sums of up to 2**20 products stay exact in float32) or standard normal."""
    pool, size = POOLS[exact], int(np.prod(shape))
    start = seed % (POOL_SIZE - min(size, POOL_SIZE - 1))
    values = pool[start:start + size]
    if values.size < size:
        values = np.resize(values, size)
    return values.reshape(shape).astype(dtype)


def _check(actual, expected, scale, terms, dtype, exact, case):
    """actual == expected (exact values), else within the error bound of sums of ``terms``
    products of magnitude ``scale`` (gamma_n = n u, u the unit roundoff, both sides)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape, case)
    assert actual.dtype == dtype, (actual.dtype, case)
    err = np.abs(actual.astype(np.float64) - expected)
    if exact:
        bound = 0.0
    else:
        bound = 2.0 * (terms + 3) * np.finfo(dtype).eps * np.maximum(scale, 1.0)
    bad = ~(err <= bound)   # catches NaN too
    if bad.any():
        where = tuple(int(i[0]) for i in np.nonzero(bad))
        raise AssertionError(
            f"packed engine mismatch: {case}; {int(bad.sum())} of {bad.size} values wrong, "
            f"first at {where}: got {actual[where]!r}, expected {expected[where]!r}, "
            f"max error {float(np.max(np.where(np.isnan(err), np.inf, err))):.3g}")


@atheris.instrument_func
def fuzz_gemm(fdp, draw, dtype, kernel, threads, exact, limit):
    rows, cols, depths = BLOCKING[kernel, dtype]
    (m, m_edge), (n, n_edge), (k, k_edge) = (_size(fdp, rows, 20), _size(fdp, cols, 60),
                                             _size(fdp, depths, 40))
    trans_a, trans_b, accumulate = fdp.ConsumeBool(), fdp.ConsumeBool(), fdp.ConsumeBool()
    with_bias = fdp.ConsumeBool()
    m, n, k = _shrink((m, n, k), (m_edge, n_edge, k_edge), limit)
    case = dict(op="gemm", dtype=dtype.name, kernel=kernel, m=m, n=n, k=k, trans_a=trans_a,
                trans_b=trans_b, accumulate=accumulate, bias=with_bias, threads=threads,
                exact=exact)
    a = draw((k, m) if trans_a else (m, k))
    b = draw((n, k) if trans_b else (k, n))
    c0 = draw((m, n))
    bias = draw((m,)) if with_bias else None
    c = c0.copy()
    out = _packed_gemm.gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate,
                            threads=threads, bias=bias, kernel=kernel)
    assert out is c, case
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    a64, b64 = (a64.T if trans_a else a64), (b64.T if trans_b else b64)
    expected = a64 @ b64
    scale = None if exact else np.abs(a64) @ np.abs(b64)
    if with_bias:
        expected += bias[:, None]
        if not exact:
            scale += np.abs(bias.astype(np.float64))[:, None]
    if accumulate:
        expected += c0
        if not exact:
            scale += np.abs(c0.astype(np.float64))
    _check(c, expected, scale, k, dtype, exact, case)
    if threads > 1 and m * n * k >= 2**21:   # several work items: the bits of 1 thread
        one = c0.copy()
        _packed_gemm.gemm(a, b, one, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate,
                          threads=1, bias=bias, kernel=kernel)
        assert np.array_equal(one, c, equal_nan=True), f"threads change the bits: {case}"


@atheris.instrument_func
def _conv_geometry(fdp, direct, crop=True):
    """Per spatial dimension: input size, kernel size, stride, dilation, pad before, pad
    after (negative: crop, on the engine's own entry only, with ``crop``); the output has at
    least one position."""
    ndim = fdp.ConsumeIntInRange(1, 3)
    dims = []
    for _ in range(ndim):
        size = fdp.ConsumeIntInRange(1, MAX_SIZE[ndim])
        kernel = fdp.ConsumeIntInRange(1, 4 if ndim < 3 else 3)
        stride = fdp.ConsumeIntInRange(1, 3)
        dilation = fdp.ConsumeIntInRange(1, 3)
        before = fdp.ConsumeIntInRange(-1 if direct and crop else 0, 3)
        after = fdp.ConsumeIntInRange(-1 if direct and crop else 0, 3)
        if before < 0 and size + before + min(after, 0) < 1:
            before = 0
        short = (kernel - 1) * dilation + 1 - (size + before + after)
        if short > 0:   # the kernel would not fit: pad after until it does
            after += short
        dims.append([size, kernel, stride, dilation, before, after])
    if ndim == 1 and fdp.ConsumeIntInRange(0, 7) == 7:   # long rows: one GEMM per sample
        dims[0][0] += fdp.ConsumeIntInRange(500, 2200)
    return dims


def _direct_widths(kernel, dtype):
    """The direct convolution's panel widths (1 to its most vectors), as its output channel
    edges, and its MR."""
    tile = _direct_conv.tile(dtype, kernel)
    return sorted(range(tile["lanes"], tile["NR"] + 1, tile["lanes"])), tile["MR"]


DIRECT_TILES = {(k, d): _direct_widths(k, d) for k in KERNELS for d in DTYPES}


@atheris.instrument_func
def fuzz_conv(fdp, draw, dtype, kernel, threads, exact, limit, engine="packed"):
    direct = kernel != DEFAULT_KERNEL or not fdp.ConsumeBool()
    dims = _conv_geometry(fdp, direct, crop=engine == "packed")
    batch = fdp.ConsumeIntInRange(1, 3)
    groups = fdp.ConsumeIntInRange(1, 3)
    taps = int(np.prod([d[1] for d in dims]))
    rows, _, depths = BLOCKING[kernel, dtype]
    if engine == "direct":   # the panels' widths, and batches whose tiles cross samples
        rows, mr = DIRECT_TILES[kernel, dtype]
        if fdp.ConsumeBool():
            batch = fdp.ConsumeIntInRange(1, mr + 2)
    cout_g, cout_edge = _size(fdp, rows, 10)
    cout_g = max(cout_g, 1)
    cin_edge = fdp.ConsumeIntInRange(0, 3) == 3
    if cin_edge:   # K = cin_g * taps at / past KC
        cin_g = max(1, -(-depths[0] // taps) + fdp.ConsumeIntInRange(-1, 1))
    else:
        cin_g = fdp.ConsumeIntInRange(1, 5)
    with_bias = fdp.ConsumeBool()
    out_size = tuple((n + b + a - (k - 1) * d - 1) // s + 1 for n, k, s, d, b, a in dims)
    positions = int(np.prod(out_size))
    cout_g, cin_g, batch, groups = _shrink(
        (cout_g, cin_g, batch, groups), (cout_edge, cin_edge, False, False),
        max(limit // (positions * taps), 1))
    c_in, c_out = cin_g * groups, cout_g * groups
    in_size = tuple(d[0] for d in dims)
    kernel_size = tuple(d[1] for d in dims)
    stride = tuple(d[2] for d in dims)
    dilation = tuple(d[3] for d in dims)
    pads = tuple((d[4], d[5]) for d in dims)
    route = {"packed": "conv_forward_packed", "direct": "conv_direct"}[engine]
    case = dict(op="conv", route=route if direct else "fastdeconv.conv", algorithm=engine,
                dtype=dtype.name, kernel=kernel, x=(batch, c_in) + in_size,
                weight=(c_out, cin_g) + kernel_size, stride=stride, dilation=dilation,
                padding=pads, groups=groups, bias=with_bias, threads=threads, exact=exact)
    x = draw((batch, c_in) + in_size)
    w = draw((c_out, cin_g) + kernel_size)
    bias = draw((c_out,)) if with_bias else None
    if direct and engine == "direct":   # the entry adds no bias: added here, as a pass's caller
        y = np.full((batch, c_out) + out_size, np.nan, dtype)
        x_last = np.full((batch * int(np.prod(in_size)) + 1, c_in), np.nan, dtype)
        x_last[:-1] = np.moveaxis(x, 1, -1).reshape(-1, c_in)
        x_last[-1] = 0
        out = _direct_conv.conv_direct(
            x_last, in_size, w, y, stride=stride, dilation=dilation,
            padding=tuple(b for b, _ in pads), groups=groups, threads=threads, kernel=kernel)
        assert out is y, case
        if bias is not None:
            y += bias.reshape((1, -1) + (1,) * len(dims))
    elif direct:
        y = np.full((batch, c_out) + out_size, np.nan, dtype)
        out = _packed_conv.conv_forward_packed(
            x, w, y, stride=stride, dilation=dilation, padding=tuple(b for b, _ in pads),
            groups=groups, bias=bias, threads=threads, kernel=kernel)
        assert out is y, case
    else:
        previous = fastdeconv.set_num_threads(threads)
        try:
            with forced_algorithm(engine):
                y = fastdeconv.conv(x, w, bias, stride=stride, padding=pads,
                                    dilation=dilation, groups=groups)
        finally:
            fastdeconv.set_num_threads(previous)
    # the reference: negative padding crops the input first
    crop = tuple(slice(max(-b, 0), n - max(-a, 0)) for n, (b, a) in zip(in_size, pads))
    ref_pads = tuple((max(b, 0), max(a, 0)) for b, a in pads)
    x_ref = x[(slice(None), slice(None)) + crop]
    kw = dict(stride=stride, padding=ref_pads, dilation=dilation, groups=groups)
    expected = conv_reference(x_ref, w, bias, **kw)
    scale = None
    if not exact:
        scale = conv_reference(np.abs(x_ref), np.abs(w), None if bias is None else np.abs(bias),
                               **kw)
    _check(y, expected, scale, cin_g * taps, dtype, exact, case)


@atheris.instrument_func
def _transpose_padding(fdp, in_size, kernel_size, stride):
    """A transposed convolution's padding before and after (each below the kernel size, so
    asymmetric) and output_padding (below the stride) per dimension, and its output size;
    no padding where the drawn one would leave no output."""
    pads = [(fdp.ConsumeIntInRange(0, k - 1), fdp.ConsumeIntInRange(0, k - 1))
            for k in kernel_size]
    output_padding = [fdp.ConsumeIntInRange(0, s - 1) for s in stride]
    out_size = tuple((n - 1) * s + k - b - a + o for n, k, s, (b, a), o in
                     zip(in_size, kernel_size, stride, pads, output_padding))
    if min(out_size) < 1:   # nothing to compute: pad less
        pads = [(0, 0)] * len(in_size)
        out_size = tuple((n - 1) * s + k + o for n, k, s, o in
                         zip(in_size, kernel_size, stride, output_padding))
    return pads, output_padding, out_size


@atheris.instrument_func
def fuzz_conv_transpose(fdp, draw, dtype, kernel, threads, exact, limit):
    direct = kernel != DEFAULT_KERNEL or not fdp.ConsumeBool()
    col2im = fdp.ConsumeBool()          # the engine's col2im instead of its stride phases
    ndim = fdp.ConsumeIntInRange(1, 3)
    in_size, kernel_size, stride = [], [], []
    for _ in range(ndim):
        in_size.append(fdp.ConsumeIntInRange(1, MAX_SIZE[ndim]))
        kernel_size.append(fdp.ConsumeIntInRange(1, 5 if ndim < 3 else 3))
        stride.append(fdp.ConsumeIntInRange(1, 4))
    pads, output_padding, out_size = _transpose_padding(fdp, in_size, kernel_size, stride)
    batch = fdp.ConsumeIntInRange(1, 3)
    groups = fdp.ConsumeIntInRange(1, 3)
    rows, _, depths = BLOCKING[kernel, dtype]
    cout_g, cout_edge = _size(fdp, rows, 10)
    cout_g = max(cout_g, 1)
    cin_g = fdp.ConsumeIntInRange(1, 5)
    taps = int(np.prod(kernel_size))
    with_bias = fdp.ConsumeBool()
    cout_g, cin_g, batch, groups = _shrink(
        (cout_g, cin_g, batch, groups), (cout_edge, False, False, False),
        max(limit // (int(np.prod(in_size)) * taps), 1))
    c_in, c_out = cin_g * groups, cout_g * groups
    kw = dict(stride=tuple(stride), padding=tuple(pads), output_padding=tuple(output_padding),
              groups=groups)
    entry = "conv_transpose_col2im_packed" if col2im else "conv_transpose_phases_packed"
    case = dict(op="conv_transpose", route=entry if direct
                else "fastdeconv.conv_transpose", algorithm="packed_col2im" if col2im
                else "packed_phases", dtype=dtype.name, kernel=kernel,
                x=(batch, c_in) + tuple(in_size), weight=(c_in, cout_g) + tuple(kernel_size),
                bias=with_bias and not direct, threads=threads, exact=exact, **kw)
    x = draw((batch, c_in) + tuple(in_size))
    w = draw((c_in, cout_g) + tuple(kernel_size))
    bias = draw((c_out,)) if with_bias and not direct else None
    if direct and col2im:
        # NaN everywhere: the entry writes every output
        problem = conv_transpose_problem(x.shape, w.shape, **kw)
        y = np.full(problem.forward_input_shape, np.nan, dtype)
        out = _packed_col2im.conv_transpose_col2im_packed(
            x, w, y, tuple(stride), 1, tuple(b for b, _ in pads), groups=groups,
            threads=threads, kernel=kernel)
        assert out is y, case
    elif direct:
        # NaN where a phase writes (a missed write shows), zero where none does (the caller's
        # job: phases without taps or outputs are not passed)
        problem = conv_transpose_problem(x.shape, w.shape, **kw)
        y = np.zeros(problem.forward_input_shape, dtype)
        for phase in phase_table(problem)[0]:
            at = tuple(slice(f, None, s) for f, s in zip(phase["first"], stride))
            y[(Ellipsis,) + at] = np.nan
        out = _packed_conv.conv_transpose_phases_packed(
            x, w, y, tuple(stride), phase_table(problem)[0], groups=groups, threads=threads,
            kernel=kernel)
        assert out is y, case
    else:
        previous = fastdeconv.set_num_threads(threads)
        try:
            with forced_algorithm(case["algorithm"]):
                y = fastdeconv.conv_transpose(x, w, bias, **kw)
        finally:
            fastdeconv.set_num_threads(previous)
    expected = conv_transpose_reference(x, w, bias, **kw)
    scale = None
    if not exact:
        scale = conv_transpose_reference(np.abs(x), np.abs(w),
                                         None if bias is None else np.abs(bias), **kw)
    _check(y, expected, scale, cin_g * taps, dtype, exact, case)


@atheris.instrument_func
def fuzz_direct_to_space(fdp, draw, dtype, kernel, threads, exact, limit):
    direct = kernel != DEFAULT_KERNEL or not fdp.ConsumeBool()
    ndim = fdp.ConsumeIntInRange(1, 3)
    in_size, kernel_size, stride = [], [], []
    for d in range(ndim):
        in_size.append(fdp.ConsumeIntInRange(1, MAX_SIZE[ndim]))
        stride.append(fdp.ConsumeIntInRange(1, 20 if d == ndim - 1 else 3))
        kernel_size.append(stride[-1] * fdp.ConsumeIntInRange(1, 3 if ndim < 3 else 2))
    pads, output_padding, out_size = _transpose_padding(fdp, in_size, kernel_size, stride)
    taps = int(np.prod(kernel_size))
    # the reference correlates every output position with every tap: at most REFERENCE_WORK
    reference_work = int(np.prod(out_size)) * taps
    if reference_work > REFERENCE_WORK:
        return
    batch = fdp.ConsumeIntInRange(1, 3)
    c_x = fdp.ConsumeIntInRange(1, 5)
    c_y, c_y_edge = _size(fdp, DIRECT_TILES[kernel, dtype][0], 6)
    c_y = max(c_y, 1)
    c_y, c_x, batch = _shrink((c_y, c_x, batch), (c_y_edge, False, False),
                              max(limit // (int(np.prod(in_size)) * taps), 1))
    c_x, batch = _shrink((c_x, batch), (False, False), max(REFERENCE_WORK // reference_work, 1))
    kw = dict(stride=tuple(stride), padding=tuple(pads), output_padding=tuple(output_padding))
    gathered = fdp.ConsumeBool()
    moved = tuple(fdp.ConsumeIntInRange(0, 2) for _ in range(ndim))
    case = dict(op="conv_transpose", route="conv_direct_to_space" if direct
                else "fastdeconv.conv_transpose (subpixel)", dtype=dtype.name, kernel=kernel,
                x=(batch, c_x) + tuple(in_size), weight=(c_x, c_y) + tuple(kernel_size),
                gathered=gathered, moved=moved, threads=threads, exact=exact, **kw)
    x = draw((batch, c_x) + tuple(in_size))
    w = draw((c_x, c_y) + tuple(kernel_size))
    problem = conv_transpose_problem(x.shape, w.shape, **kw)
    expected = conv_transpose_reference(x, w, **kw)
    scale = None if exact else conv_transpose_reference(np.abs(x), np.abs(w), **kw)
    # every stride, weight and size to the direct store (the rule's thresholds opened)
    opened = dict(subpixel_direct_min_line_bytes=0, direct_max_weight_bytes=2**62,
                  subpixel_max_overhead=1e9, subpixel_min_channels=1, subpixel_min_kernel=1)
    with budget(**opened):
        with forced_algorithm("subpixel"):
            the_plan = plan("backward_input", problem, dtype.itemsize)
    if the_plan.algorithm != "subpixel" or the_plan.origin is None:
        return   # a cropping padding of the input: the direct store does not apply
    if direct:
        g, zg = problem.geometry, the_plan.block_problem.geometry
        z_shape = (c_y * g.phase_count, c_x) + tuple(zg.kernel_size)
        weight = (_direct_conv.pack_weight_gathered(
            w, subpixel._gather_table(tuple(kernel_size), tuple(stride), c_y), z_shape,
            kernel=kernel) if gathered else subpixel._subpixel_weight(w, g.stride, 1))
        x_last = np.zeros((batch * int(np.prod(in_size)) + 1, c_x), dtype)
        x_last[:-1] = np.moveaxis(x, 1, -1).reshape(-1, c_x)
        y = np.full(problem.forward_input_shape, np.nan, dtype)
        origin = tuple(o + m for o, m in zip(the_plan.origin, moved))
        out = _direct_conv.conv_direct_to_space(
            x_last, tuple(in_size), weight, tuple(zg.output_size), y, tuple(stride), origin,
            tuple(zg.pad_before), threads=threads, kernel=kernel)
        assert out is y, case
        # moved m on: the values m positions on, and the positions before origin + m no
        # channel's (between m and origin + m < m lie the phases the unmoved grid cropped)
        for d, (m, o) in enumerate(zip(moved, the_plan.origin)):
            lost = slice(0, max(0, min(o + m, out_size[d])))
            at = (Ellipsis,) + (lost,) + (slice(None),) * (ndim - 1 - d)
            assert np.isnan(y[at]).all(), case
        y = y[(Ellipsis,) + tuple(slice(m, None) for m in moved)]
        expected = expected[(Ellipsis,) + tuple(slice(0, n - m) for n, m in zip(out_size, moved))]
        if scale is not None:
            scale = scale[(Ellipsis,) + tuple(slice(0, n - m) for n, m in zip(out_size, moved))]
        if not the_plan.covered:   # positions no phase writes keep their NaN: the caller's
            keep = ~np.isnan(y)
            assert (expected[~keep] == 0).all(), case
            y = np.where(keep, y, 0)
    else:
        previous = fastdeconv.set_num_threads(threads)
        try:
            with budget(**opened), forced_algorithm("subpixel"):
                y = fastdeconv.conv_transpose(x, w, **kw)
        finally:
            fastdeconv.set_num_threads(previous)
    _check(y, expected, scale, c_x * taps, dtype, exact, case)


@atheris.instrument_func
def fuzz_weight_grad(fdp, draw, dtype, kernel, threads, exact, limit):
    direct = kernel != DEFAULT_KERNEL or not fdp.ConsumeBool()
    dims = _conv_geometry(fdp, False)
    batch = fdp.ConsumeIntInRange(1, 3)
    groups = fdp.ConsumeIntInRange(1, 3)
    taps = int(np.prod([d[1] for d in dims]))
    rows, cols, _ = BLOCKING[kernel, dtype]
    cout_g, cout_edge = _size(fdp, rows, 10)
    cout_g = max(cout_g, 1)
    cin_g, cin_edge = _size(fdp, cols, 6)   # the GEMM's N is taps x channels
    cin_g = max(cin_g, 1)
    out_size = tuple((n + b + a - (k - 1) * d - 1) // s + 1 for n, k, s, d, b, a in dims)
    positions = int(np.prod(out_size))
    cout_g, cin_g, batch, groups = _shrink(
        (cout_g, cin_g, batch, groups), (cout_edge, cin_edge, False, False),
        max(limit // (positions * taps), 1))
    c_in, c_out = cin_g * groups, cout_g * groups
    in_size = tuple(d[0] for d in dims)
    kernel_size = tuple(d[1] for d in dims)
    kw = dict(stride=tuple(d[2] for d in dims), dilation=tuple(d[3] for d in dims),
              padding=tuple((d[4], d[5]) for d in dims), groups=groups)
    case = dict(op="weight_grad", route="conv_weight_grad_packed" if direct
                else "fastdeconv.conv_backward", dtype=dtype.name, kernel=kernel,
                x=(batch, c_in) + in_size, weight=(c_out, cin_g) + kernel_size,
                threads=threads, exact=exact, **kw)
    x = draw((batch, c_in) + in_size)
    gy = draw((batch, c_out) + out_size)
    w = np.zeros((c_out, cin_g) + kernel_size, dtype)
    problem = conv_problem(x.shape, w.shape, **kw)
    the_plan = packed_wgrad.plan("backward_weight", problem, current_budget(), dtype.itemsize)
    if direct and the_plan is not None:   # (None: one sample's copies exceed the workspace)
        # the engine's entry on the plan's channels-last copies, NaN where it writes
        x_last = packed_wgrad._channels_last(x, the_plan.extent, problem.geometry.pad_before,
                                             the_plan.padded, threads)
        gy_last = np.ascontiguousarray(np.moveaxis(gy, 1, -1)).reshape(-1, c_out)
        row_offset, tap_offset = packed_wgrad._offsets(problem, the_plan.extent, batch)
        layout = _packed_wgrad.transposed_rows(c_in, c_out, taps, groups, dtype, kernel)
        transposed = layout is not None and fdp.ConsumeBool()
        case["transposed"] = transposed
        if transposed:   # x read in place: (groups, rows, cout_g), row_of[t, c] per (t, c)
            columns = np.full((groups, layout[0], cout_g), np.nan, dtype)
        else:
            columns = np.full((c_out, taps * cin_g), np.nan, dtype)
        out = _packed_wgrad.conv_weight_grad_packed(x_last, gy_last, columns, row_offset,
                                                    tap_offset, groups=groups,
                                                    threads=threads, kernel=kernel,
                                                    transposed=transposed)
        assert out is columns, case
        if transposed:
            columns = (columns[:, layout[1].reshape(-1), :].transpose(0, 2, 1)
                       .reshape(c_out, taps * cin_g))
        grad_w = columns.reshape(c_out, taps, cin_g).transpose(0, 2, 1).reshape(w.shape)
    else:
        previous = fastdeconv.set_num_threads(threads)
        try:
            with forced_algorithm("packed"):
                grad_w = fastdeconv.conv_backward(gy, x, w, grads=("weight",), **kw)[1]
        finally:
            fastdeconv.set_num_threads(previous)
    expected = conv_weight_grad_reference(x, gy, w.shape, **kw)
    scale = None
    if not exact:
        scale = conv_weight_grad_reference(np.abs(x), np.abs(gy), w.shape, **kw)
    _check(grad_w, expected, scale, batch * positions, dtype, exact, case)


@atheris.instrument_func
def test_one_input(data):
    """One execution: decode a case from ``data``, run it, compare with the reference."""
    fdp = atheris.FuzzedDataProvider(data)
    dtype = DTYPES[fdp.ConsumeIntInRange(0, 1)]
    kernel = KERNELS[fdp.ConsumeIntInRange(0, len(KERNELS) - 1)]
    threads = 2 if fdp.ConsumeIntInRange(0, 3) == 3 else 1
    exact = not fdp.ConsumeBool()
    limit = MAX_MACS if fdp.ConsumeIntInRange(0, 31) == 31 else SMALL_MACS
    seed = fdp.ConsumeIntInRange(0, 2**32 - 1)
    drawn = []

    def draw(shape):
        drawn.append(shape)
        return _values(seed + 1000003 * len(drawn), shape, dtype, exact)

    route = fdp.ConsumeIntInRange(0, 5)
    if route == 0:
        fuzz_gemm(fdp, draw, dtype, kernel, threads, exact, limit)
    elif route == 1:
        fuzz_conv(fdp, draw, dtype, kernel, threads, exact, limit)
    elif route == 4:
        fuzz_conv(fdp, draw, dtype, kernel, threads, exact, limit, engine="direct")
    elif route == 5:
        fuzz_direct_to_space(fdp, draw, dtype, kernel, threads, exact, limit)
    elif route == 2:
        fuzz_conv_transpose(fdp, draw, dtype, kernel, threads, exact, limit)
    else:
        fuzz_weight_grad(fdp, draw, dtype, kernel, threads, exact, limit)


def main(argv=None):
    """Run the fuzzer with libFuzzer's (and atheris's) command-line flags."""
    atheris.Setup(sys.argv if argv is None else argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
