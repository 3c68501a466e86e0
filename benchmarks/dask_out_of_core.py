"""Out of core: a 3-d transposed convolution of a zarr volume larger than the workers' memory.

    PYTHONPATH=. python benchmarks/dask_out_of_core.py --size-gib 8 --memory-limit 1GiB \\
        --store /scratch/fastdeconv-ooc

1. A float32 volume of ``--size-gib`` GiB, shape ``(1, 1, n, n, n)`` with ``n`` a multiple of
   ``--chunk``, is generated chunk by chunk on the workers and written to
   ``STORE/x.zarr`` (nothing is ever whole in memory).
2. ``fastdeconv.dask.conv_transpose`` (kernel ``--kernel``, stride ``--stride``, padding
   ``(kernel - stride) // 2``) reads it with ``dask.array.from_zarr`` and writes the result
   with ``to_zarr`` to ``STORE/y.zarr`` (a plain call: the result runs its halo tasks first
   by itself), on a ``LocalCluster`` of ``--workers`` processes with one thread and
   ``--memory-limit`` each.
3. ``--check`` random output blocks are recomputed with the in-memory
   ``fastdeconv.conv_transpose`` on the input box around them (read from the store) and
   compared.

Prints the wall time of each step and the peak resident memory of every worker process
(``getrusage``: the high-water mark of the whole process, interpreter included). The same
code runs on a multi-machine cluster: pass ``--scheduler tcp://host:8786`` (the store must then
be on storage every worker can reach). The default ``--size-gib 8`` takes a while; try
``--size-gib 0.5 --memory-limit 256MiB`` first.
"""

import argparse
import resource
import shutil
import time
from pathlib import Path

import numpy as np

import dask.array as da
import distributed

import fastdeconv
import fastdeconv.dask as fdd


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _check_block(x_store, y, weight, index, kwargs):
    """max |chunked - in-memory| over output block ``index`` (and the block's scale)."""
    stride, pad = kwargs["stride"], kwargs["padding"]
    k = weight.shape[-1]
    n = x_store.shape[2:]
    starts = [sum(c[:i]) for c, i in zip(y.chunks[2:], index[2:])]
    stops = [s + c[i] for s, c, i in zip(starts, y.chunks[2:], index[2:])]
    # full (uncropped) positions f = q + pad; input j reaches f in [j s, j s + k)
    lo = [max(0, (q0 + pad - k + 1) // stride - 1) for q0 in starts]
    hi = [min(m, (q1 - 1 + pad) // stride + 2) for q1, m in zip(stops, n)]
    box = np.asarray(x_store[(0, slice(None), *[slice(a, b) for a, b in zip(lo, hi)])])[None]
    full = fastdeconv.conv_transpose(box, weight, stride=stride)      # no crop
    sel = tuple(slice(q0 + pad - a * stride, q1 + pad - a * stride)
                for q0, q1, a in zip(starts, stops, lo))
    expected = full[(0, slice(None), *sel)]
    actual = np.asarray(y.blocks[index].compute())[0]
    return float(np.max(np.abs(actual - expected))), float(np.max(np.abs(expected)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=8.0, help="input volume size")
    parser.add_argument("--chunk", type=int, default=128, help="chunk edge (cells)")
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GiB", help="per worker")
    parser.add_argument("--store", default="/tmp/fastdeconv-out-of-core")
    parser.add_argument("--scheduler", default=None, help="address of an existing cluster")
    parser.add_argument("--check", type=int, default=4, help="output blocks to verify")
    parser.add_argument("--keep", action="store_true", help="keep the zarr stores")
    args = parser.parse_args(argv)

    cells = args.size_gib * 2**30 / 4
    n = max(args.chunk, int(round(cells ** (1 / 3) / args.chunk)) * args.chunk)
    store = Path(args.store)
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    if args.scheduler:
        cluster, client = None, distributed.Client(args.scheduler)
    else:
        cluster = distributed.LocalCluster(
            processes=True, n_workers=args.workers, threads_per_worker=1, host="127.0.0.1",
            dashboard_address=":0", memory_limit=args.memory_limit)
        client = distributed.Client(cluster)
    try:
        print(f"volume (1, 1, {n}, {n}, {n}) float32 = {4 * n**3 / 2**30:.2f} GiB, chunks "
              f"{args.chunk}^3; {len(client.scheduler_info()['workers'])} workers, "
              f"memory limit {args.memory_limit} each")
        start = time.perf_counter()
        x = da.random.default_rng(0).standard_normal((1, 1, n, n, n), dtype=np.float32,
                                                      chunks=(1, 1) + (args.chunk,) * 3)
        x.to_zarr(str(store / "x.zarr"))
        print(f"wrote the input:       {time.perf_counter() - start:8.1f} s")

        rng = np.random.default_rng(1)
        weight = rng.standard_normal((1, 1) + (args.kernel,) * 3).astype(np.float32)
        kwargs = dict(stride=args.stride, padding=(args.kernel - args.stride) // 2)
        start = time.perf_counter()
        source = da.from_zarr(str(store / "x.zarr"))
        y = fdd.conv_transpose(source, weight, **kwargs)
        y.to_zarr(str(store / "y.zarr"))            # each worker cuts halos first
        elapsed = time.perf_counter() - start
        print(f"conv_transpose -> zarr: {elapsed:7.1f} s  (output {y.shape}, "
              f"{y.nbytes / 2**30:.2f} GiB, {y.npartitions} chunks)")
        peaks = client.run(_peak_rss_mib)
        for address, peak in sorted(peaks.items()):
            print(f"  peak RSS of worker {address}: {peak:7.0f} MiB")

        import zarr

        x_store = zarr.open_array(str(store / "x.zarr"), mode="r")
        result = da.from_zarr(str(store / "y.zarr"))
        worst = 0.0
        for _ in range(args.check):
            index = tuple(int(rng.integers(len(c))) for c in result.chunks)
            err, scale = _check_block(x_store, result, weight, index, kwargs)
            worst = max(worst, err / max(scale, 1.0))
            print(f"  block {index}: max |error| {err:.2e} (scale {scale:.1f})")
        print(f"checked {args.check} blocks against fastdeconv.conv_transpose: worst relative "
              f"error {worst:.1e}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        if not args.keep:
            shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
