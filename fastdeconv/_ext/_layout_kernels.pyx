# cython: language_level=3
# Directives (boundscheck, wraparound, initializedcheck off; cdivision on) come from setup.py.
"""Layout changes: channels-last data to channels-first, in cache blocks.

``transpose_batched(src, dst, threads)`` writes ``dst[b, j, i] = src[b, i, j]`` for a stack of
matrices: a channels-last batch ``(N, P, C)`` (P the positions of a sample) becomes the
channels-first ``(N, C, P)`` that every kernel reads. NumPy's strided copy walks the source
with a stride of ``C`` elements for every destination element; 32 x 32 blocks keep both sides
in L1 (measured on the suite's shapes: the performance page). A copy is exact, so the thread
count (blocks in a fixed split) changes no bit.
"""
from cython cimport floating
from cython.parallel cimport prange

DEF BLOCK = 32


cdef inline void _block(const floating* src, floating* dst, Py_ssize_t rows, Py_ssize_t cols,
                        Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0,
                        Py_ssize_t j1) noexcept nogil:
    """One block of one matrix; local pointers so that the compiler keeps them in registers."""
    cdef Py_ssize_t i, j
    cdef floating* out
    cdef const floating* col
    for j in range(j0, j1):
        out = dst + j * rows
        col = src + j
        for i in range(i0, i1):
            out[i] = col[i * cols]


def transpose_batched(const floating[:, :, ::1] src, floating[:, :, ::1] dst, int threads):
    """``dst[b, j, i] = src[b, i, j]``; shapes ``(B, R, C)`` and ``(B, C, R)``, validated by
    the caller."""
    cdef Py_ssize_t batch = src.shape[0], rows = src.shape[1], cols = src.shape[2]
    cdef Py_ssize_t row_blocks = (rows + BLOCK - 1) // BLOCK
    cdef Py_ssize_t col_blocks = (cols + BLOCK - 1) // BLOCK
    cdef Py_ssize_t per_matrix = row_blocks * col_blocks, matrix = rows * cols
    cdef Py_ssize_t block, b, i0, j0, rest
    cdef const floating* s = &src[0, 0, 0] if src.size else NULL
    cdef floating* d = &dst[0, 0, 0] if dst.size else NULL
    if matrix == 0 or batch == 0:
        return
    if batch * per_matrix < 2 or batch * matrix < 65536:
        threads = 1
    with nogil:
        for block in prange(batch * per_matrix, num_threads=threads, schedule="static"):
            b = block // per_matrix
            rest = block % per_matrix
            i0 = rest // col_blocks * BLOCK
            j0 = rest % col_blocks * BLOCK
            _block(s + b * matrix, d + b * matrix, rows, cols, i0,
                   i0 + BLOCK if i0 + BLOCK < rows else rows, j0,
                   j0 + BLOCK if j0 + BLOCK < cols else cols)
