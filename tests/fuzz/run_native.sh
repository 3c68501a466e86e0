#!/usr/bin/env bash
# The packed-engine fuzz target with the compiled extension instrumented too: clang's
# -fsanitize=fuzzer-no-link (libFuzzer's edge counters and comparison tracing in the C code,
# so that coverage of the kernels and packers guides the fuzzer) and AddressSanitizer (any
# out-of-bounds read or write in them is a report), as atheris's guide to native extensions
# describes: the ASan runtime with libFuzzer that atheris ships (asan_with_fuzzer.so) is
# preloaded, and atheris uses that libFuzzer.
#
#   bash tests/fuzz/run_native.sh -atheris_runs=1000000 -seed=1      # the documented run
#   bash tests/fuzz/run_native.sh -max_total_time=20                 # a short one
#
# The arguments go to libFuzzer (see tests/fuzz/fuzz_packed.py). The copy of the checkout is
# built once in $FASTDECONV_FUZZ_BUILD (default /tmp/fastdeconv-fuzz-native) and rebuilt when
# a source file is newer; the normal in-place build is not touched. Needs clang (CC, default
# clang, else clang-14) with its OpenMP runtime (Debian: clang-14 libomp-14-dev) and atheris
# in the Python that runs it ($PYTHON, default python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=$PWD
PYTHON=${PYTHON:-python3}
CC_BIN=${CC:-$(command -v clang || command -v clang-14 || echo clang)}
WORK=${FASTDECONV_FUZZ_BUILD:-/tmp/fastdeconv-fuzz-native}
STAMP="$WORK/.built"

if [ ! -e "$STAMP" ] || [ -n "$(find "$SRC/fastdeconv" "$SRC/setup.py" "$SRC/tests/fuzz" \
        -newer "$STAMP" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.h' -o -name '*.py' \
        -o -name '*.sh' \) -print -quit)" ]; then
    echo "== fuzz: copying the checkout to $WORK and building it with $CC_BIN" >&2
    mkdir -p "$WORK"
    { tar -C "$SRC" -cf - --warning=no-file-changed --exclude=./.git --exclude=./.venv \
        --exclude=./build --exclude=./docs/_build --exclude='*.so' --exclude='__pycache__' \
        --exclude=./.hypothesis . || [ $? -eq 1 ]; } | tar -C "$WORK" -xf -
    (cd "$WORK" && CC="$CC_BIN" FASTDECONV_SANITIZE=address \
        FASTDECONV_CFLAGS="-fsanitize=fuzzer-no-link" \
        "$PYTHON" setup.py -q build_ext --inplace -j 2 >"$WORK/build.log" 2>&1) \
        || { cat "$WORK/build.log" >&2; exit 1; }
    touch "$STAMP"
fi

RUNTIME=$("$PYTHON" -c "import atheris, os; print(os.path.join(atheris.path(), 'asan_with_fuzzer.so'))")
cd "$WORK"
# leak detection off (CPython keeps its allocations); an impossible allocation is NULL (NumPy's
# MemoryError) rather than a report, as in .ci/asan
# OpenMP threads sleep rather than spin between the (tiny) parallel regions: on a shared
# machine a spinning second thread takes the core the first one waits for.
export LD_PRELOAD="$RUNTIME" PYTHONPATH="$WORK" OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" \
    ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
exec "$PYTHON" tests/fuzz/fuzz_packed.py "$@"
