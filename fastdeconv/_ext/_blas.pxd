# cython: language_level=3
"""The one BLAS wrapper: row-major GEMM over ``scipy.linalg.cython_blas``.

The BLAS integer type is named here and nowhere else (``int`` for SciPy's LP64 OpenBLAS;
SciPy's newer ``blas_int`` would go here). The Python layer checks that every dimension and
leading dimension passed to :func:`gemm` fits it (``fastdeconv._algorithms._common.check_blas_dims``).
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

ctypedef int blas_int

cdef inline void gemm(bint trans_a, bint trans_b, blas_int m, blas_int n, blas_int k,
                      floating alpha, const floating* a, blas_int lda,
                      const floating* b, blas_int ldb, floating beta,
                      floating* c, blas_int ldc) noexcept nogil:
    """Row-major ``C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C``.

    BLAS is column-major; a row-major ``C = A B`` is the column-major ``C^T = B^T A^T``, so the
    operands are swapped (scikit-learn's ``_cython_blas._gemm``).
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)
