# cython: language_level=3
"""OpenMP shim: the same names with and without OpenMP (scikit-learn's _openmp_helpers)."""
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTDECONV_HAVE_OPENMP 1
    #else
    #define FASTDECONV_HAVE_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    #endif
    """
    bint FASTDECONV_HAVE_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
