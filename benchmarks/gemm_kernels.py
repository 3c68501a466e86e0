"""GFLOP/s of the packed GEMM engine against OpenBLAS, interleaved in one process.

Run from a built checkout (not an asv benchmark)::

    PYTHONPATH=$PWD python benchmarks/gemm_kernels.py              # everything
    PYTHONPATH=$PWD python benchmarks/gemm_kernels.py --quick      # 3 rounds, float32 only

For every shape, dtype and thread count the candidates (the engine's kernels, OpenBLAS through
SciPy's ``sgemm``/``dgemm`` -- the BLAS that fastdeconv calls) are timed one call each, in a
rotating order, ``--repeat`` rounds; the table gives the median GFLOP/s and, in brackets, the
spread (min-max) over the rounds, which shows the noise of a shared machine. The engine's time
includes packing A; OpenBLAS packs inside its call too.

Then the forward convolutions of the layer suite: ``conv_forward_packed`` (implicit im2col,
no column buffer) against ``fastdeconv.conv`` forced to its im2col + OpenBLAS algorithm, and
against ``fastdeconv.conv`` as its dispatcher chooses (which may be Winograd), same threads.

``--clock cpu`` times the one-thread rows in thread CPU time instead of wall time, which
leaves out the time other processes of a shared machine hold the core (not their effect on the
caches); rows with more threads are always wall time.

With more than one thread, each timed call follows ``SETTLE_SECONDS`` of untimed calls of the
same candidate: OpenBLAS's worker threads spin for about 2**28 cycles (0.1 s) after each of its
calls, and a candidate timed right after it shares its cores with them (the engine's rows then
read 13-40 GFLOP/s where it runs at 250-300).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import scipy.linalg.blas as scipy_blas
from threadpoolctl import threadpool_info, threadpool_limits

import fastdeconv
from fastdeconv._dispatch import forced_algorithm
from fastdeconv._ext import _packed_conv as pc
from fastdeconv._ext import _packed_gemm as pg

#: (M, K, N): the peak shape, then conv-shaped GEMMs of the layer suite (M = C_out,
#: K = C_in * k * k, N = output positions of a sample or a tile of samples)
GEMM_SHAPES = [
    (2048, 2048, 2048),
    (64, 576, 3136),     # resnet_3x3: 64 -> 64, 3x3, 56x56
    (256, 1152, 784),    # resnet_s2: 128 -> 256, 3x3 stride 2, 28x28 -> 14x14 (x4 samples)
    (64, 256, 3136),     # pointwise: 256 -> 64, 56x56
    (256, 8192, 64),     # dcgan_g2-like: deep reduction, few positions
    (128, 2048, 256),
]

#: forward convolutions of the layer suite (fastdeconv/_bench/suite.json):
#: (name, x shape, C_out, k, stride, pad, dil)
CONV_CASES = [
    ("resnet_3x3", (8, 64, 56, 56), 64, 3, 1, 1, 1),
    ("resnet_s2", (8, 128, 28, 28), 256, 3, 2, 1, 1),
    ("pointwise", (8, 256, 56, 56), 64, 1, 1, 0, 1),
    ("dilated_3x3", (4, 64, 64, 64), 64, 3, 1, 2, 2),
]


def machine_report():
    lines = []
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        lines += [ln for ln in out.splitlines()
                  if "model name" in ln.lower() or "cache" in ln.lower()]
    except (OSError, subprocess.SubprocessError):
        lines.append("lscpu: not available")
    lines.append("OPENBLAS_* environment: " + (", ".join(
        f"{k}={v}" for k, v in os.environ.items() if k.startswith("OPENBLAS")) or "none"))
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            lines.append(f"BLAS {os.path.basename(pool['filepath'])}: {pool['internal_api']} "
                         f"{pool.get('version')}, {pool.get('architecture')} kernels")
    lines.append(f"engine kernel: {pg.kernel_name()}")
    lines.append(f"load average at start: {os.getloadavg()}")
    return lines


def _openblas(a, b, c):
    """c = a @ b through SciPy's BLAS, row-major as fastdeconv calls it (c^T = b^T a^T)."""
    fn = scipy_blas.sgemm if a.dtype == np.float32 else scipy_blas.dgemm
    fn(1.0, b.T, a.T, 0.0, c.T, overwrite_c=True)


def _engine(kernel):
    def run(a, b, c, threads):
        pg.gemm(a, b, c, threads=threads, kernel=kernel)
    return run


def _time(fn, clock):
    t0 = clock()
    fn()
    return clock() - t0


#: Untimed calls of a candidate before each of its timed calls, with more than one thread
#: (seconds): longer than OpenBLAS's workers spin after its last call.
SETTLE_SECONDS = 0.15


def interleaved(candidates, repeat, clock=time.perf_counter, settle=0.0):
    """Median and (min, max) seconds per candidate, timed in a rotating order per round, each
    timed call after ``settle`` seconds of untimed calls of the same candidate."""
    times = {name: [] for name in candidates}
    names = list(candidates)
    for name in names:   # warm-up (page faults, thread start-up)
        candidates[name]()
    for r in range(repeat):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            end = time.perf_counter() + settle
            while time.perf_counter() < end:
                candidates[name]()
            times[name].append(_time(candidates[name], clock))
    return {name: (statistics.median(t), min(t), max(t)) for name, t in times.items()}


def _settle(threads):
    return SETTLE_SECONDS if threads > 1 else 0.0


def _clock(threads, cpu):
    return time.thread_time if cpu and threads == 1 else time.perf_counter


def gemm_table(dtypes, threads_list, repeat, kernels, cpu):
    rng = np.random.default_rng(0)
    print("\nGEMM C[M x N] = A[M x K] B[K x N], GFLOP/s median [min-max] over "
          f"{repeat} interleaved rounds")
    head = f"{'dtype':8} {'thr':>3} {'M':>5} {'K':>5} {'N':>5}"
    labels = [f"engine/{k}" for k in kernels] + ["OpenBLAS"]
    print(head + "".join(f" {lab:>22}" for lab in labels) + "   engine/OpenBLAS")
    for dtype in dtypes:
        for threads in threads_list:
            for m, k, n in GEMM_SHAPES:
                a = rng.standard_normal((m, k)).astype(dtype)
                b = rng.standard_normal((k, n)).astype(dtype)
                c = np.empty((m, n), dtype)
                cands = {f"engine/{kern}": (lambda f=_engine(kern): f(a, b, c, threads))
                         for kern in kernels}
                cands["OpenBLAS"] = lambda: _openblas(a, b, c)
                with threadpool_limits(limits=threads, user_api="blas"):
                    res = interleaved(cands, repeat, _clock(threads, cpu), _settle(threads))
                flops = 2.0 * m * n * k
                row = f"{np.dtype(dtype).name:8} {threads:>3} {m:>5} {k:>5} {n:>5}"
                for lab in labels:
                    med, lo, hi = res[lab]
                    row += f" {flops / med / 1e9:7.1f} [{flops / hi / 1e9:5.1f}-{flops / lo / 1e9:5.1f}]"
                ratio = res["OpenBLAS"][0] / res[f"engine/{kernels[-1]}"][0]
                print(row + f"   {ratio:5.2f}x", flush=True)


def conv_table(dtypes, threads_list, repeat, cpu):
    rng = np.random.default_rng(1)
    print("\nForward convolution (suite cases), milliseconds median [min-max] over "
          f"{repeat} rounds; im2col = fastdeconv.conv forced to im2col + OpenBLAS, "
          "default = fastdeconv.conv as dispatched")
    keys = ("packed", "im2col", "default")
    print(f"{'case':12} {'dtype':8} {'thr':>3}" + "".join(f" {k + ' ms':>21}" for k in keys)
          + f" {'GF/s packed':>11} {'vs im2col':>9} {'vs default':>10}")
    for dtype in dtypes:
        for threads in threads_list:
            for name, xs, c_out, k, s, p, d in CONV_CASES:
                x = rng.standard_normal(xs).astype(dtype)
                w = rng.standard_normal((c_out, xs[1], k, k)).astype(dtype)
                ref = fastdeconv.conv(x, w, stride=s, padding=p, dilation=d)
                y = np.empty_like(ref)

                def im2col():
                    with forced_algorithm("im2col"):
                        fastdeconv.conv(x, w, stride=s, padding=p, dilation=d)

                previous = fastdeconv.set_num_threads(threads)
                try:
                    res = interleaved({
                        "packed": lambda: pc.conv_forward_packed(
                            x, w, y, stride=s, padding=p, dilation=d, threads=threads),
                        "im2col": im2col,
                        "default": lambda: fastdeconv.conv(x, w, stride=s, padding=p, dilation=d),
                    }, repeat, _clock(threads, cpu), _settle(threads))
                finally:
                    fastdeconv.set_num_threads(previous)
                err = float(np.abs(y - ref).max() / np.abs(ref).max())
                flops = 2.0 * ref.size * xs[1] * k * k
                cols = "".join(
                    f" {res[key][0] * 1e3:7.2f} [{res[key][1] * 1e3:5.1f}-{res[key][2] * 1e3:5.1f}]"
                    for key in keys)
                print(f"{name:12} {np.dtype(dtype).name:8} {threads:>3}{cols}"
                      f" {flops / res['packed'][0] / 1e9:11.1f}"
                      f" {res['im2col'][0] / res['packed'][0]:8.2f}x"
                      f" {res['default'][0] / res['packed'][0]:9.2f}x  (rel. err {err:.1e})",
                      flush=True)


def microkernel_table(kernels):
    print("\nMicro-kernel alone (panels in L1, thread CPU time, best of 40 short bursts) vs a "
          "multiply-add "
          "peak loop of the same vector width")
    for kern in kernels:
        for dtype in ("float32", "float64"):
            for tile, (mr, nr) in enumerate(pg.kernel_info(kern)[dtype]["tiles"]):
                ukr, peak = pg.microkernel_gflops(kern, dtype, tile, seconds=0.5)
                peak = peak / 2 if dtype == "float64" else peak
                share = f"{ukr / peak:6.1%}" if peak else "   n/a"
                print(f"  {kern:8} {dtype:8} {mr:>2}x{nr:<3} {ukr:7.1f} GF/s   "
                      f"peak {peak:7.1f} GF/s   {share}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--kernels", default=None,
                        help="engine kernels to time, comma-separated (default: the best one)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, float32 only")
    parser.add_argument("--no-conv", action="store_true")
    parser.add_argument("--no-gemm", action="store_true")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: thread CPU time for the one-thread rows")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else args.repeat
    dtypes = ["float32"] if args.quick else args.dtypes.split(",")
    threads_list = [int(t) for t in args.threads.split(",")]
    best = {"avx512f": "avx512", "avx2+fma": "avx2", "portable": "portable"}[
        pg.kernel_info()["name"]]
    kernels = args.kernels.split(",") if args.kernels else [best]
    cpu = args.clock == "cpu"
    print("\n".join(machine_report()))
    microkernel_table(kernels)
    if not args.no_gemm:
        gemm_table(dtypes, threads_list, repeat, kernels, cpu)
    if not args.no_conv:
        conv_table(dtypes, threads_list, repeat, cpu)
    print(f"\nload average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
