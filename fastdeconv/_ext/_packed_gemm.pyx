# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py.
"""The packed GEMM engine: fastdeconv's own micro-kernels and packing (``gemm/fd_gemm.h``).

Entries on C-contiguous arrays of one dtype (float32 or float64):

* :func:`gemm` -- ``C = op(A) op(B)`` or ``C += op(A) op(B)``, optional bias per row of C;
* the convolutions of :mod:`fastdeconv._ext._packed_conv`, which share this module's
  declarations (``_packed_gemm.pxd``), validation and execution helpers.

The kernel (``avx512f``, ``avx2+fma`` or ``portable``) is the best the CPU supports, or the one
named by the environment variable ``FASTDECONV_GEMM_KERNEL`` (``portable``, ``avx2``,
``avx512``; read once at import), or the one passed as ``kernel=`` (for tests).

Threads: the output is cut into work items (``fd_make_plan``: one per NC block of columns on one
thread, up to four on more); the reduction is never split and every element of the output is
the same chain of multiply-adds over the same KC slices in any item, so the result is the same to
the bit for any ``threads``. SciPy's BLAS stays a path of fastdeconv and the oracle of the
tests.
"""
cimport cython
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport uintptr_t

import os

import numpy as np

from .. import _scratch

from ._openmp cimport FASTDECONV_HAVE_OPENMP

HAVE_OPENMP = bool(FASTDECONV_HAVE_OPENMP)

#: Names accepted by ``FASTDECONV_GEMM_KERNEL`` and ``kernel=``, and the kernel each selects.
KERNEL_CHOICES = {"portable": FD_ISA_PORTABLE, "avx2": FD_ISA_AVX2, "avx512": FD_ISA_AVX512}
_ENV_VAR = "FASTDECONV_GEMM_KERNEL"


def supported_kernels():
    """The names of ``KERNEL_CHOICES`` this CPU runs, portable first."""
    return [name for name, isa in KERNEL_CHOICES.items() if fd_isa_supported(isa)]


def _isa_of(kernel, parameter):
    """The kernel id for a name of KERNEL_CHOICES (None: the default); ValueError otherwise."""
    if kernel is None:
        return _DEFAULT_ISA
    if not isinstance(kernel, str) or kernel.strip().lower() not in KERNEL_CHOICES:
        raise ValueError(f"{parameter} must be one of {sorted(KERNEL_CHOICES)}, got {kernel!r}")
    isa = KERNEL_CHOICES[kernel.strip().lower()]
    if not fd_isa_supported(isa):
        raise ValueError(f"{parameter}={kernel!r}: this CPU does not support that kernel "
                         f"(it supports {supported_kernels()})")
    return isa


def _default_isa():
    value = os.environ.get(_ENV_VAR, "").strip()
    if value == "" or value.lower() == "auto":
        return fd_best_isa()
    return _isa_of(value, _ENV_VAR)


_DEFAULT_ISA = _default_isa()


def _tiles(int isa, bint is_double):
    """The register tiles (MR, NR) of a kernel and dtype, without repeats."""
    cdef int t
    tiles = []
    for t in range(FD_TILES):
        tile = (fd_blocking_table[isa][is_double][t].mr, fd_blocking_table[isa][is_double][t].nr)
        if tile not in tiles:
            tiles.append(tile)
    return tiles


def kernel_info(kernel=None):
    """The kernel's name and blocking: ``{'name': ..., 'float32': {...}, 'float64': {...}}``.

    Per dtype: ``MR``, ``NR``, ``MC``, ``KC``, ``NC`` of the first register tile and ``tiles``,
    every ``(MR, NR)`` tile the kernel has (each GEMM takes the one that pads it least).

    Parameters
    ----------
    kernel : {None, 'portable', 'avx2', 'avx512'}
        Describe this kernel instead of the default one.
    """
    cdef int isa = _isa_of(kernel, "kernel")
    cdef bint is_double
    info = {"name": fd_isa_names[isa].decode()}
    for name, is_double in (("float32", False), ("float64", True)):
        b = fd_blocking_table[isa][is_double][0]
        info[name] = {"MR": b.mr, "NR": b.nr, "MC": b.mc, "KC": b.kc, "NC": b.nc,
                      "tiles": _tiles(isa, is_double)}
    return info


def kernel_name(kernel=None):
    """The kernel in use and its blocking, e.g. ``'avx512f (float32 8x48 or 12x32 KC=384 ...)'``.

    Parameters
    ----------
    kernel : {None, 'portable', 'avx2', 'avx512'}
        Describe this kernel instead of the default one.
    """
    info = kernel_info(kernel)
    parts = []
    for name in ("float32", "float64"):
        d = info[name]
        tiles = " or ".join(f"{mr}x{nr}" for mr, nr in d["tiles"])
        parts.append(f"{name} {tiles} MC={d['MC']} KC={d['KC']} NC={d['NC']}")
    return f"{info['name']} ({'; '.join(parts)})"


def plan_info(m, n, k, dtype="float32", kernel=None, threads=1):
    """How a GEMM of this shape is cut: register tile, chunks and work items (a dict).

    ``m_chunk x n_chunk`` tiles of C are the work items, ``items_m x items_n`` of them
    (``n_chunk``: at least the widest, less than a panel more; ``item_columns``: the
    first column and width of each); they
    depend on the shape, dtype, kernel and ``threads`` (one thread: one item per NC block of
    columns), but the bits of C do not (each element is the same chain of multiply-adds over
    the KC slices in any item).
    """
    cdef int isa = _isa_of(kernel, "kernel")
    threads = _check_threads(threads)
    for name, value in (("m", m), ("n", n), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    cdef fd_plan p = fd_make_plan(isa, np.dtype(dtype) == np.float64, m, n, k, threads)
    cdef Py_ssize_t item, j0, nc
    columns = []
    for item in range(p.items_n):
        fd_plan_item_columns(&p, item, &j0, &nc)
        columns.append((j0, nc))
    return {"tile": p.tile, "MR": p.mr, "NR": p.nr, "MC": p.mc, "KC": p.kc, "NC": p.nc,
            "m_chunk": p.m_chunk, "n_chunk": p.n_chunk, "items_m": p.items_m,
            "items_n": p.items_n, "item_columns": columns,
            "prepack_a": bool(fd_prepack_a(&p))}


# ------------------------------------------------------------------------------ validation
def _check_matrix(value, name, ndim=2):
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    if value.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got dtype {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if not value.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")


def _check_same_dtype(dtype, **arrays):
    for name, value in arrays.items():
        if value.dtype != dtype:
            raise TypeError(f"{name} has dtype {value.dtype}, expected {dtype} like the others")


def _check_threads(threads):
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be an int, got {threads!r}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return int(threads)


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _check_bias(bias, rows, dtype):
    if bias is None:
        return None
    _check_matrix(bias, "bias", ndim=1)
    _check_same_dtype(dtype, bias=bias)
    if bias.shape[0] != rows:
        raise ValueError(f"bias must have {rows} values, got shape {bias.shape}")
    return bias


def _check_per_dim(value, ndim, name, minimum):
    if isinstance(value, (int, np.integer)):
        values = (value,) * ndim
    elif isinstance(value, (tuple, list, np.ndarray)):
        values = tuple(value)
    else:
        values = ()
    if len(values) != ndim or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or {ndim} ints, got {value!r}")
    if minimum is not None and any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in values)


def _check_groups(groups):
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    return int(groups)


def _check_conv_arrays(x, weight, y, groups):
    """Validate the arrays and groups of a convolution entry: C-contiguous, one float dtype,
    the same rank (at most FD_MAX_NDIM spatial dimensions), y writable; ``(ndim, groups)``."""
    _check_matrix(x, "x", ndim=x.ndim if isinstance(x, np.ndarray) and x.ndim >= 3 else 3)
    ndim = x.ndim - 2
    if ndim > FD_MAX_NDIM:
        raise ValueError(f"x has {ndim} spatial dimensions; at most {FD_MAX_NDIM} are supported")
    _check_matrix(weight, "weight", ndim=x.ndim)
    _check_matrix(y, "y", ndim=x.ndim)
    _check_same_dtype(x.dtype, weight=weight, y=y)
    if not y.flags.writeable:
        raise ValueError("y must be writable")
    return ndim, _check_groups(groups)


def _check_shapes(dtype, groups, **shapes):
    """Validate the shapes of a tables entry (tuples of ints >= 0, one rank of 1 to
    FD_MAX_NDIM spatial dimensions), dtype (float32 or float64) and groups."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    ranks = set()
    for name, shape in shapes.items():
        if not isinstance(shape, tuple) or not all(
                isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0
                for n in shape):
            raise ValueError(f"{name}_shape must be a tuple of ints >= 0, got {shape!r}")
        ranks.add(len(shape))
    if len(ranks) != 1 or not 3 <= ranks.pop() <= FD_MAX_NDIM + 2:
        raise ValueError(f"the shapes must have one rank, 3 to {FD_MAX_NDIM + 2}, got {shapes}")
    return dtype, _check_groups(groups)


cdef check_like(value, name, shape, dtype):
    """An array of the tables' shape and dtype, C-contiguous."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    if value.dtype != dtype:
        raise TypeError(f"{name} has dtype {value.dtype}, expected {dtype}")
    if value.shape != shape:
        raise ValueError(f"{name} must have the tables' shape {shape}, got {value.shape}")
    if not value.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")


# ---------------------------------------------------------------------------- execution
cdef void run_items(void* job, bint is_double, bint conv, Py_ssize_t items, char* work,
                    size_t work_stride, int threads) noexcept nogil:
    """Run work items [0, items) of a GEMM or convolution job on up to ``threads`` threads;
    thread ``t`` packs into ``work + t * work_stride`` (:func:`take_work`)."""
    cdef Py_ssize_t item
    cdef char* mine = NULL
    if items < 2:
        threads = 1
    with parallel(num_threads=threads):
        mine = work + <size_t> threadid() * work_stride
        for item in prange(items, schedule="dynamic"):
            if conv and is_double:
                fd_conv_item_d(<fd_conv_job_d*> job, item, <double*> mine)
            elif conv:
                fd_conv_item_f(<fd_conv_job_f*> job, item, <float*> mine)
            elif is_double:
                fd_gemm_item_d(<fd_gemm_job_d*> job, item, <double*> mine)
            else:
                fd_gemm_item_f(<fd_gemm_job_f*> job, item, <float*> mine)


cdef object take_scratch(size_t nbytes, char** data, what, bint kept=False):
    """A block of the engine's scratch pool (:mod:`fastdeconv._scratch`; ``kept``: by a
    packed weight) with ``nbytes`` bytes from ``data[0]``, a 64-byte boundary; give it back
    with :func:`give_scratch`."""
    block = _scratch.take(nbytes + 64, what, kept)
    data[0] = aligned(<void*> <uintptr_t> block.ctypes.data)
    return block


cdef object take_work(size_t work_bytes, int threads, char** work, size_t* work_stride):
    """The packing buffers of ``threads`` threads (:func:`run_items`), one block of the pool:
    each ``work_stride`` bytes (``work_bytes`` rounded up to 4 KiB) from ``work[0]``."""
    work_stride[0] = (work_bytes + 4095) // 4096 * 4096
    return take_scratch(work_stride[0] * max(threads, 1), work, "packing buffers")


def give_scratch(block):
    """Give a block of :func:`take_scratch` or :func:`take_work` back to the pool."""
    _scratch.give(block)


cdef void pack_a(const void* a, Py_ssize_t lda, bint trans_a, const fd_plan* p, bint is_double,
                 void* apack, int threads) noexcept nogil:
    """Pack the whole of A (every KC slice; the slices in parallel)."""
    cdef Py_ssize_t slices = (p.k + p.kc - 1) / p.kc if p.k > 0 else 0
    cdef Py_ssize_t s
    if slices < 2 or p.m * p.k < 65536:
        threads = 1
    for s in prange(slices, num_threads=threads, schedule="static"):
        if is_double:
            fd_pack_a_slice_d(p.m, p.k, <const double*> a, lda, trans_a, p.mr, p.kc, s,
                              <double*> apack, p.isa)
        else:
            fd_pack_a_slice_f(p.m, p.k, <const float*> a, lda, trans_a, p.mr, p.kc, s,
                              <float*> apack, p.isa)


# ------------------------------------------------------------------------ packed weights
@cython.no_gc_clear    # __dealloc__ gives the block back, also when a collection frees it
cdef class PackedWeight:
    """A weight packed into the GEMM's A micro-panels (every group; for stride phases every
    phase's) for the tables whose ``packing_key`` is ``key``; ``nbytes`` of memory, freed
    with the object (its block goes back to the engine's scratch pool). Made by
    :func:`pack_forward_weight` or :func:`pack_phases_weight`."""
    def __dealloc__(self):
        block, self.block = self.block, None
        try:
            _scratch.give(block)
        except Exception:       # the interpreter is shutting down: the block is freed
            pass


cdef PackedWeight new_packed(key, part_bytes):
    """An unfilled PackedWeight of parts of ``part_bytes`` bytes, each 64-byte aligned."""
    cdef PackedWeight packed = PackedWeight.__new__(PackedWeight)
    offsets, total = [], 0
    for nbytes in part_bytes:
        offsets.append(total)
        total += (nbytes + 63) // 64 * 64
    packed.part_offset = np.array(offsets or [0], dtype=np.intp)
    packed.block = take_scratch(max(total, 1), &packed.data, "packed weight", True)
    packed.key, packed.nbytes = key, total
    return packed


def gemm(a, b, c, trans_a=False, trans_b=False, accumulate=False, threads=1, bias=None,
         kernel=None):
    """``c = op(a) @ op(b) (+ bias[:, None])``, or ``c += ...`` with ``accumulate``.

    Parameters
    ----------
    a, b : numpy.ndarray
        C-contiguous 2-d float32 or float64 arrays; ``op(a)`` is ``a.T`` when ``trans_a``
        (likewise b), and ``op(a)`` is m x k, ``op(b)`` k x n.
    c : numpy.ndarray
        The m x n output, C-contiguous, writable, same dtype; overwritten, or added to when
        ``accumulate``.
    trans_a, trans_b, accumulate : bool
    threads : int
        Threads to use (>= 1); the result does not depend on it.
    bias : numpy.ndarray, optional
        m values added to the rows of the product.
    kernel : {None, 'portable', 'avx2', 'avx512'}
        Force a kernel (for tests); default: :func:`kernel_name`'s.

    Returns
    -------
    numpy.ndarray
        ``c``.
    """
    _check_matrix(a, "a")
    _check_matrix(b, "b")
    _check_matrix(c, "c")
    _check_same_dtype(a.dtype, b=b, c=c)
    trans_a = _check_flag(trans_a, "trans_a")
    trans_b = _check_flag(trans_b, "trans_b")
    accumulate = _check_flag(accumulate, "accumulate")
    threads = _check_threads(threads)
    if not c.flags.writeable:
        raise ValueError("c must be writable")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if kb != k:
        raise ValueError(f"op(a) is {m}x{k} but op(b) is {kb}x{n}: inner dimensions differ")
    if c.shape != (m, n):
        raise ValueError(f"c must have shape {(m, n)}, got {c.shape}")
    bias = _check_bias(bias, m, a.dtype)
    if np.shares_memory(c, a) or np.shares_memory(c, b) or (
            bias is not None and np.shares_memory(c, bias)):
        raise ValueError("c must not overlap a, b or bias")
    cdef int isa = _isa_of(kernel, "kernel")
    _run_gemm(a, b, c, trans_a, trans_b, accumulate, threads, bias, isa)
    return c


cdef _run_gemm(a, b, c, bint trans_a, bint trans_b, bint accumulate, int threads, bias,
               int isa):
    cdef bint is_double = a.dtype == np.float64
    cdef size_t elem = 8 if is_double else 4
    cdef fd_plan p = fd_make_plan(isa, is_double, c.shape[0], c.shape[1],
                                  a.shape[0] if trans_a else a.shape[1], threads)
    if p.m == 0 or p.n == 0:
        return
    cdef fd_gemm_job_f jf
    cdef fd_gemm_job_d jd
    cdef void* job = <void*> &jd if is_double else <void*> &jf
    cdef bint prepack = fd_prepack_a(&p)
    cdef char* apack = NULL
    cdef char* work = NULL
    cdef size_t work_stride
    cdef const void* pa = <const void*> <uintptr_t> a.ctypes.data
    cdef const void* pb = <const void*> <uintptr_t> b.ctypes.data
    cdef void* pc = <void*> <uintptr_t> c.ctypes.data
    cdef const void* pbias = NULL
    cdef Py_ssize_t lda = a.shape[1], ldb = b.shape[1], ldc = c.shape[1]
    if bias is not None:
        pbias = <const void*> <uintptr_t> bias.ctypes.data
    apack_block = (take_scratch(max(fd_apack_elems(&p), 1) * elem, &apack,
                                "packed copy of a") if prepack else None)
    try:
        work_block = take_work(fd_workspace_bytes(&p, elem, 0), threads, &work, &work_stride)
        fd_gemm_job_init(is_double, job, &p, apack, pa, lda, trans_a, pb, ldb, trans_b, pc,
                         ldc, accumulate, pbias)
        with nogil:
            if prepack:
                pack_a(pa, lda, trans_a, &p, is_double, apack, threads)
            run_items(job, is_double, False, fd_plan_items(&p), work, work_stride, threads)
        give_scratch(work_block)
    finally:
        give_scratch(apack_block)


# --------------------------------------------------------------------------- measurement
cdef extern from "gemm/fd_peak.h" nogil:
    double fd_time_ukr(int isa, int is_double, int tile, Py_ssize_t kc, Py_ssize_t calls,
                       void* scratch)
    double fd_time_peak(int isa, Py_ssize_t iters)


def microkernel_gflops(kernel=None, dtype="float32", tile=0, seconds=0.2, bursts=40):
    """GFLOP/s of one micro-kernel alone (panels in L1) and of a multiply-add peak loop.

    For benchmarks: ``(kernel GFLOP/s, peak GFLOP/s)``, each the best of ``bursts`` short
    runs (together about ``seconds`` of thread CPU time, so ``seconds / (2 bursts)`` each:
    2.5 ms by default), the kernel's and the peak loop's in turn, over the kernel's KC;
    ``tile`` indexes ``kernel_info()[dtype]['tiles']``. The peak is float32's (halve it for
    float64) and 0 for the portable kernel, which has no peak loop.

    Short bursts and the best of many: on a virtual machine the host takes the CPU away for
    tens of milliseconds at a time, and the thread's CPU clock still runs; a few long runs
    then measure the host's load rather than the kernel (best of 5 runs of 0.1 s gave the
    kernel 68-74 % of the peak where 40 bursts of a few ms gave 96-99.8 % on a quiet core).
    While another tenant shares the physical core, the ratio itself moves (68-98 % in the
    same session): the kernel's loads compete with the other thread, the peak loop has none.
    """
    import time
    cdef int isa = _isa_of(kernel, "kernel")
    cdef bint is_double = np.dtype(dtype) == np.float64
    cdef int which = int(tile)
    if not 0 <= which < FD_TILES:
        raise ValueError(f"tile must be in [0, {FD_TILES}), got {tile!r}")
    if isinstance(bursts, bool) or not isinstance(bursts, (int, np.integer)) or bursts < 1:
        raise ValueError(f"bursts must be a positive int, got {bursts!r}")
    b = fd_blocking_table[isa][is_double][which]
    scratch = np.empty((b.mr + b.nr + 1) * (b.kc + b.nr) * 8 + 64, np.uint8)
    cdef void* ptr = aligned(<void*> <uintptr_t> scratch.ctypes.data)
    cdef Py_ssize_t calls = 16, iters = 2000, depth = b.kc
    cdef double flops
    cdef bint has_peak = fd_time_peak(isa, 1) > 0      # the portable kernel has no peak loop
    burst = seconds / (2 * bursts)
    best_ukr = best_peak = 0.0
    done = doublings = 0
    while done < bursts:
        t = time.thread_time()
        with nogil:
            flops = fd_time_ukr(isa, is_double, which, depth, calls, ptr)
        elapsed = time.thread_time() - t
        ukr = flops / max(elapsed, 1e-9) / 1e9
        elapsed_peak, peak = burst, 0.0
        if has_peak:
            t = time.thread_time()
            with nogil:
                flops = fd_time_peak(isa, iters)
            elapsed_peak = time.thread_time() - t
            peak = flops / max(elapsed_peak, 1e-9) / 1e9
        if doublings < 40 and (elapsed < burst / 2 or elapsed_peak < burst / 2):
            calls *= 2 if elapsed < burst / 2 else 1          # still calibrating
            iters *= 2 if elapsed_peak < burst / 2 else 1
            doublings += 1
            continue
        best_ukr, best_peak = max(best_ukr, ukr), max(best_peak, peak)
        done += 1
    return best_ukr, best_peak


fd_transpose_simd()   # the CPU check runs once here, not first inside a parallel region
