# The packed GEMM engine's C declarations (gemm/fd_gemm.h) and the execution helpers that
# _packed_gemm.pyx defines and _packed_conv.pyx shares.
from libc.stdint cimport uintptr_t

cdef extern from "gemm/fd_gemm.h" nogil:
    int FD_ISA_PORTABLE, FD_ISA_AVX2, FD_ISA_AVX512, FD_MAX_NDIM
    const char* fd_isa_names[3]
    int fd_isa_supported(int isa)
    int fd_transpose_simd()   # fd_transpose.h, which the A packers use
    int fd_best_isa()

    ctypedef struct fd_blocking:
        int mr, nr
        Py_ssize_t mc, kc, nc
    const fd_blocking fd_blocking_table[3][2][2]
    int FD_TILES

    ctypedef struct fd_plan:
        int isa, tile, mr, nr
        Py_ssize_t m, n, k, mc, kc, nc, m_chunk, n_chunk, items_m, items_n
    fd_plan fd_make_plan(int isa, int is_double, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                         int threads)
    Py_ssize_t fd_plan_items(const fd_plan* p)
    void fd_plan_item_columns(const fd_plan* p, Py_ssize_t item, Py_ssize_t* j0, Py_ssize_t* nc)
    Py_ssize_t fd_apack_elems(const fd_plan* p)
    int fd_prepack_a(const fd_plan* p)
    size_t fd_workspace_bytes(const fd_plan* p, size_t elem, int placed)
    void fd_plan_cap_rows(fd_plan* p, Py_ssize_t rows)
    int FD_PLACED_MAX_ROWS
    Py_ssize_t fd_conv_samples_per_gemm(Py_ssize_t samples, Py_ssize_t positions, int pointwise)

    ctypedef struct fd_conv_src:
        int ndim
        Py_ssize_t in_size[8]
        Py_ssize_t out_size[8]
        Py_ssize_t stride[8]
        Py_ssize_t taps, stride_last, channel_stride, positions, sample_stride
        const Py_ssize_t* tap_offset
        int placed
        Py_ssize_t place_size[8]
        Py_ssize_t place_first[8]
        Py_ssize_t place_step[8]
        Py_ssize_t place_sample_stride
        const Py_ssize_t* place_row

    # filled by fd_*_job_init; their fields are only read by C
    ctypedef struct fd_gemm_job_f:
        pass
    ctypedef struct fd_gemm_job_d:
        pass
    ctypedef struct fd_conv_job_f:
        pass
    ctypedef struct fd_conv_job_d:
        pass

    void fd_pack_a_slice_f(Py_ssize_t m, Py_ssize_t k, const float* a, Py_ssize_t lda,
                           int trans_a, int mr, Py_ssize_t kc, Py_ssize_t slice, float* apack,
                           int isa)
    void fd_pack_a_slice_d(Py_ssize_t m, Py_ssize_t k, const double* a, Py_ssize_t lda,
                           int trans_a, int mr, Py_ssize_t kc, Py_ssize_t slice, double* apack,
                           int isa)
    void fd_pack_a_phases_f(Py_ssize_t m, const float* a, Py_ssize_t row_stride,
                            Py_ssize_t channels, Py_ssize_t phases, const Py_ssize_t* taps_of,
                            const Py_ssize_t* const* col_offset_of,
                            const Py_ssize_t* const* dst_of, const int* mr_of,
                            float* const* apack_of, Py_ssize_t r0, Py_ssize_t r1, int isa)
    void fd_pack_a_phases_d(Py_ssize_t m, const double* a, Py_ssize_t row_stride,
                            Py_ssize_t channels, Py_ssize_t phases, const Py_ssize_t* taps_of,
                            const Py_ssize_t* const* col_offset_of,
                            const Py_ssize_t* const* dst_of, const int* mr_of,
                            double* const* apack_of, Py_ssize_t r0, Py_ssize_t r1, int isa)
    void fd_gemm_item_f(const fd_gemm_job_f* job, Py_ssize_t item, float* work)
    void fd_gemm_item_d(const fd_gemm_job_d* job, Py_ssize_t item, double* work)
    Py_ssize_t fd_conv_items_f(const fd_conv_job_f* cj)
    Py_ssize_t fd_conv_items_d(const fd_conv_job_d* cj)
    void fd_conv_item_f(const fd_conv_job_f* cj, Py_ssize_t item, float* work)
    void fd_conv_item_d(const fd_conv_job_d* cj, Py_ssize_t item, double* work)
    void fd_conv_item_pair_f(const fd_conv_job_f* even, const fd_conv_job_f* odd,
                             Py_ssize_t item, float* work, float* odd_block)
    void fd_conv_item_pair_d(const fd_conv_job_d* even, const fd_conv_job_d* odd,
                             Py_ssize_t item, double* work, double* odd_block)
    Py_ssize_t fd_placed_block_elems(const fd_plan* p)
    void fd_gemm_job_init(int is_double, void* job, const fd_plan* p, const void* apack,
                          const void* a, Py_ssize_t lda, int trans_a, const void* b,
                          Py_ssize_t ldb, int trans_b, void* c, Py_ssize_t ldc, int accumulate,
                          const void* bias)
    void fd_col2im_unit_f(const fd_conv_job_f* cj, const float* weight, Py_ssize_t lda,
                          Py_ssize_t a_group, const Py_ssize_t* add_row, Py_ssize_t unit,
                          float* work)
    void fd_col2im_unit_d(const fd_conv_job_d* cj, const double* weight, Py_ssize_t lda,
                          Py_ssize_t a_group, const Py_ssize_t* add_row, Py_ssize_t unit,
                          double* work)
    void fd_conv_job_set_ldc(int is_double, void* cj, Py_ssize_t ldc)
    void fd_conv_job_init(int is_double, void* cj, const fd_plan* p, const void* apack,
                          Py_ssize_t apack_group, int pointwise, const void* x, Py_ssize_t ldb,
                          const fd_conv_src* src, void* y, const void* bias, Py_ssize_t samples,
                          Py_ssize_t samples_per_gemm, Py_ssize_t groups, Py_ssize_t x_sample,
                          Py_ssize_t x_group, Py_ssize_t y_sample, Py_ssize_t y_group)


cdef inline char* aligned(void* raw) noexcept nogil:
    return <char*> ((<uintptr_t> raw + 63) & ~(<uintptr_t> 63))

cdef void run_items(void* job, bint is_double, bint conv, Py_ssize_t items, char* work,
                    size_t work_stride, int threads) noexcept nogil
cdef void pack_a(const void* a, Py_ssize_t lda, bint trans_a, const fd_plan* p, bint is_double,
                 void* apack, int threads) noexcept nogil
cdef object take_scratch(size_t nbytes, char** data, what, bint kept=*)
cdef object take_work(size_t work_bytes, int threads, char** work, size_t* work_stride)

cdef class PackedWeight:
    cdef object block
    cdef char* data
    cdef Py_ssize_t[::1] part_offset
    cdef readonly object key
    cdef readonly Py_ssize_t nbytes

cdef PackedWeight new_packed(key, part_bytes)
cdef check_like(value, name, shape, dtype)
