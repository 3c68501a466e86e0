"""Chunked (fastdeconv.dask) versus in-memory: wall time on 2 workers, and task-graph size.

    PYTHONPATH=. python benchmarks/dask_overhead.py [--repeat 3] [--small]

Cases (float32):

- 2-d: ``conv_transpose`` of a 1 x 16 x 2048 x 2048 input, kernel 4, stride 2, padding 1,
  16 output channels, chunks of 512 x 512 (output 1 x 16 x 4096 x 4096, chunks 1024^2);
- 3-d: ``conv`` of a 1 x 4 x 256^3 input, kernel 3, padding 1, chunks of 128^3.

Columns: the in-memory operator on 1 and on 2 threads; the chunked operator on dask's threaded
scheduler (2 threads, fastdeconv on 1 thread each); the chunked operator on a
``distributed.LocalCluster`` of 2 worker processes with 1 thread each, input persisted on the
workers beforehand and the output persisted there (so neither the input's nor the output's
transfer to this process is counted; with the threaded scheduler the blocks are persisted,
not joined). Overhead is relative to the faster in-memory time (each time the best of
``--repeat``). Graph: tasks of the operator's layer per output chunk, and the most input
blocks one output task reads (its own and the halo pieces cut from its neighbours).
``--small`` runs quarter-size inputs (a quick check of the script).
"""

import argparse
import os
import time

import numpy as np

import dask
import dask.array as da
import distributed

import fastdeconv
import fastdeconv.dask as fdd
from dask.core import get_dependencies

CASES = [
    ("2-d conv_transpose k4 s2, chunks 512^2", "conv_transpose", (1, 16, 2048, 2048),
     (1, 16, 512, 512), (16, 16, 4, 4), dict(stride=2, padding=1)),
    ("3-d conv k3, chunks 128^3", "conv", (1, 4, 256, 256, 256), (1, 4, 128, 128, 128),
     (4, 4, 3, 3, 3), dict(padding=1)),
]


def best(call, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def graph_size(y):
    """Tasks of the operator's layer per output chunk (the chunk's own task and the tasks that
    cut halo pieces from neighbouring blocks), and the most blocks one output task reads."""
    layer = dict(y.dask.layers[y.name])
    outputs = [k for k in layer if isinstance(k, tuple) and k[0] == y.name]
    tasks = [k for k in layer if isinstance(k, tuple) and str(k[0]).startswith(y.name)]
    graph = dict(y.__dask_graph__())
    reads = max(len([d for d in get_dependencies(graph, k) if isinstance(d, tuple)])
                for k in outputs)
    return len(tasks) / len(outputs), reads, len(outputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="quarter-size inputs")
    args = parser.parse_args(argv)

    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=":0")
    client = distributed.Client(cluster)
    rows = []
    try:
        for title, op, shape, chunks, weight_shape, kwargs in CASES:
            if args.small:
                shape = shape[:2] + tuple(n // 2 for n in shape[2:])
                chunks = chunks[:2] + tuple(n // 2 for n in chunks[2:])
            rng = np.random.default_rng(0)
            x = rng.standard_normal(shape, dtype=np.float32)
            w = rng.standard_normal(weight_shape).astype(np.float32)
            # in memory on 1 and on 2 threads: on a busy machine OpenMP's 2 threads can lose
            # to 1, and the overhead is taken against the faster of the two
            t_memory = {}
            for threads in (1, 2):
                fastdeconv.set_num_threads(threads)
                t_memory[threads] = best(lambda: getattr(fastdeconv, op)(x, w, **kwargs),
                                         args.repeat)
            fastdeconv.set_num_threads(2)

            chunked = da.from_array(x, chunks=chunks)

            def threads():
                fastdeconv.set_num_threads(1)
                try:
                    y = getattr(fdd, op)(chunked, w, **kwargs)
                    dask.persist(y, scheduler="threads", num_workers=2)   # blocks, not joined
                finally:
                    fastdeconv.set_num_threads(2)

            t_threads = best(threads, args.repeat)

            # the same array made on the workers (sending a 256 MiB graph would time the upload)
            generated = da.random.default_rng(0).standard_normal(shape, chunks=chunks,
                                                                 dtype=np.float32)
            remote = client.persist(generated)
            distributed.wait(remote)

            runs = iter(range(1, 1000))

            def on_cluster():
                # a new weight each run gives new keys: the scheduler must not find the last
                # run's result still in memory
                w_run = w * np.float32(1 + 1e-3 * next(runs))
                y = client.persist(getattr(fdd, op)(remote, w_run, **kwargs))
                distributed.wait(y)
                client.cancel(y)

            t_cluster = best(on_cluster, args.repeat)
            del remote
            per_chunk, reads, chunks_out = graph_size(getattr(fdd, op)(chunked, w, **kwargs))
            rows.append((title, t_memory, t_threads, t_cluster, per_chunk, reads, chunks_out))
    finally:
        client.close()
        cluster.close()

    print(f"load average before: {os.getloadavg()[0]:.1f} (2 cores wanted idle)")
    print(f"{'case':40s} {'in-memory 1 / 2 threads':>24s} {'dask threads (2)':>17s} "
          f"{'LocalCluster (2x1)':>19s} {'tasks/chunk':>11s} {'blocks read':>11s}")
    for title, t_m, t_t, t_c, per_chunk, reads, n in rows:
        base = min(t_m.values())
        print(f"{title:40s} {t_m[1]:10.2f}s / {t_m[2]:6.2f}s {t_t:8.2f}s "
              f"{100 * (t_t / base - 1):+5.0f}% {t_c:10.2f}s {100 * (t_c / base - 1):+5.0f}% "
              f"{per_chunk:11.1f} {reads:11d}   ({n} output chunks)")


if __name__ == "__main__":
    main()
