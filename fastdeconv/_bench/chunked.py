"""``python -m fastdeconv bench --dask``: chunked (:mod:`fastdeconv.dask`) against in-memory.

Two cases, float32 by default:

- ``2d``: :func:`fastdeconv.conv_transpose` of a 1 x 16 x 2048 x 2048 input, kernel 4,
  stride 2, padding 1, 16 output channels, chunks of 512 x 512 (output 1 x 16 x 4096 x 4096 in
  chunks of 1024 x 1024);
- ``3d``: :func:`fastdeconv.conv` of a 1 x 4 x 256\\ :sup:`3` input, kernel 3, padding 1,
  chunks of 128\\ :sup:`3`.

Six peers, timed in turn within every round (the order reversed every other round, so that
a change of the machine's load hits them alike), after one warm-up call each; the table gives
each one's median:

``in-memory 2 threads``
    The in-memory operator on the whole array with 2 threads: the fair baseline of a cluster
    of 2 single-threaded workers on 2 cores (the same cores, the same thread count).
``in-memory 1 thread``
    The same on 1 thread (for reference: how well the in-memory kernel uses 2 threads).
``dask threads``
    The chunked operator on dask's threaded scheduler, 2 threads, fastdeconv on 1 thread in
    each; the blocks are persisted (not joined into one array).
``LocalCluster 2x1``
    The chunked operator on a ``distributed.LocalCluster`` of 2 worker processes with 1 thread
    each, on loopback. The input is generated *on the workers* (``dask.array.random``) and
    persisted there before the timing, as an input read from zarr by the workers would be,
    each worker holding one half of the volume (the blocks before and after the middle of the
    first spatial axis: the data-parallel split a deployment would choose; left to itself the
    scheduler put 9 of the 16 2-d blocks on one worker in most runs, and that worker then
    takes 9/8 of the ideal time whatever the graph; the ``placement`` column gives the blocks
    per worker; the in-memory peers' copy is made
    again in the bench's process, not gathered, which would copy every block to one worker);
    the result is persisted on the workers (``Client.persist`` and ``wait``), not gathered:
    with data larger than memory it would be written to zarr or reduced, never sent whole to
    one process. The timed call includes building the task graph. Each run uses a weight
    scaled by ``1 + 1e-3 k`` (new task keys: the scheduler cannot hand back the previous
    run's result). The result is a :class:`fastdeconv.dask.HaloFirstArray`, so every worker
    cuts the halos that the other one waits for before it starts a long chunk, with no
    annotation.
``LocalCluster halos first``
    The same, submitted within ``dask.annotate(priority=fastdeconv.dask.halo_priority)``, the
    way for arrays derived from a result; for the result itself the scheduler gets the same
    priorities as without it.
``LocalCluster no priority``
    The same with the result made a plain :class:`dask.array.Array` first, as a derived
    array is (and as every result was before :class:`~fastdeconv.dask.HaloFirstArray`):
    dask's static order alone decides when the halo tasks run.

``overhead`` is the LocalCluster's median over the in-memory 2-thread median, minus one (and
over the faster in-memory median, which on a busy machine can be the 1-thread one);
``halos first`` and ``no priority`` the same for the annotated submission and the plain
array. The graph columns: tasks of the
operator's layer per output chunk (the chunk's own task and the halo tasks, which cut the
pieces its neighbours read from an input block where the block lives), the most input
blocks (or their halo tasks) one output task reads, and the output chunks. ``placement``:
the input blocks on each worker, as the scheduler put them. ``max rel diff`` compares one
output block of each chunked peer with the same part of the in-memory result. The machine's load
average is recorded before and after: on a shared machine the in-memory 2-thread time is the
most sensitive to other jobs (its threads wait for each other).

>>> from fastdeconv._bench import chunked
>>> rows = chunked.run(cases=["2d"], shrink=32, repeat=1)     # doctest: +SKIP
"""

import os
import statistics
import sys
import time

import numpy as np

from .machine import describe_setup
from .table import format_report
from .timing import Progress, rel_diff

__all__ = ["CASES", "PEERS", "format_table", "graph_size", "run"]

#: name -> (title, operator, input shape, input chunks, weight shape, keywords)
CASES = {
    "2d": ("2-d conv_transpose k4 s2", "conv_transpose", (1, 16, 2048, 2048),
           (1, 16, 512, 512), (16, 16, 4, 4), {"stride": 2, "padding": 1}),
    "3d": ("3-d conv k3", "conv", (1, 4, 256, 256, 256), (1, 4, 128, 128, 128),
           (4, 4, 3, 3, 3), {"padding": 1}),
}
PEERS = ("in-memory 2 threads", "in-memory 1 thread", "dask threads", "LocalCluster 2x1",
         "LocalCluster halos first", "LocalCluster no priority")
_BASELINE, _CLUSTER, _THREADS, _FIRST, _PLAIN = PEERS[0], PEERS[3], PEERS[2], PEERS[4], PEERS[5]


def graph_size(y):
    """``(tasks per output chunk, most input blocks one output task reads, output chunks)``
    of the operator's layer of the dask array ``y``."""
    from dask.core import get_dependencies

    from fastdeconv.dask._graph import halo_name

    layer = dict(y.dask.layers[y.name])
    outputs = [k for k in layer if isinstance(k, tuple) and k[0] == y.name]
    tasks = [k for k in layer if isinstance(k, tuple) and k[0] in (y.name, halo_name(y.name))]
    graph = dict(y.__dask_graph__())
    reads = max(len([d for d in get_dependencies(graph, k) if isinstance(d, tuple)])
                for k in outputs)
    return len(tasks) / len(outputs), reads, len(outputs)


def _shrunk(shape, chunks, shrink):
    if not (isinstance(shrink, int) and shrink >= 1):
        raise ValueError(f"shrink must be a positive int, got {shrink!r}")
    return (shape[:2] + tuple(max(n // shrink, 1) for n in shape[2:]),
            chunks[:2] + tuple(max(n // shrink, 1) for n in chunks[2:]))


def _select(cases):
    if cases is None:
        return list(CASES)
    if isinstance(cases, str):
        cases = cases.split(",")
    names = [name.strip() for name in cases if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown} for bench --dask; choose from "
                         f"{list(CASES)}")
    return names


def _block_diff(y, expected, client=None):
    """:func:`rel_diff` of the first output block of the dask array ``y`` (persisted; on
    ``client``'s cluster, when given)."""
    first = y.blocks[(0,) * y.ndim]
    block = np.asarray(client.compute(first).result() if client is not None else
                       first.compute(scheduler="threads"))
    return rel_diff(block, expected[tuple(slice(0, n) for n in block.shape)])


class _Peers:
    """The six peers' calls of one case (each returns a result to compare, or None)."""

    def __init__(self, client, op, x, remote, weight, kwargs, chunks):
        import dask.array as da

        import fastdeconv
        import fastdeconv.dask as fdd

        self.client, self.x, self.remote, self.weight = client, x, remote, weight
        self.kwargs, self.runs = kwargs, 0
        self.in_memory, self.chunked = getattr(fastdeconv, op), getattr(fdd, op)
        self.local = da.from_array(x, chunks=chunks)
        self.expected = None

    def memory(self, threads):
        import fastdeconv

        previous = fastdeconv.set_num_threads(threads)
        try:
            return self.in_memory(self.x, self.weight, **self.kwargs)
        finally:
            fastdeconv.set_num_threads(previous)

    def threads(self):
        import dask

        import fastdeconv

        previous = fastdeconv.set_num_threads(1)     # one thread per chunk, 2 chunks at once
        try:
            (y,) = dask.persist(self.chunked(self.local, self.weight, **self.kwargs),
                                scheduler="threads", num_workers=2)
        finally:
            fastdeconv.set_num_threads(previous)
        return y

    def cluster(self, check=False, halos_first=False, plain_array=False):
        import contextlib

        import dask
        import dask.array as da
        import distributed

        import fastdeconv.dask as fdd

        scale = 1 if check else 1 + 1e-3 * (self.runs + 1)
        self.runs += 1
        y = self.chunked(self.remote, self.weight * self.weight.dtype.type(scale),
                         **self.kwargs)
        if plain_array:
            y = da.Array(y.dask, y.name, y.chunks, meta=y._meta)
        with (dask.annotate(priority=fdd.halo_priority) if halos_first else
              contextlib.nullcontext()):
            y = self.client.persist(y)
        with self.client.as_current():          # not the default client: the caller's stays
            distributed.wait(y)
        if check:
            return y
        self.client.cancel(y)
        return None


def _halves(client, array):
    """``workers`` annotation: the blocks of ``array`` before the middle of its first spatial
    axis (axis 2) on the first worker, the others on the second."""
    workers = sorted(client.scheduler_info()["workers"])
    blocks = array.numblocks[2]

    def worker_of(key):
        return [workers[min(key[3] * len(workers) // blocks, len(workers) - 1)]]
    return worker_of


def _placement(client, remote):
    """Input blocks per worker, most first."""
    counts = {}
    for workers in client.who_has(remote).values():
        for worker in workers:
            counts[worker] = counts.get(worker, 0) + 1
    return sorted(counts.values(), reverse=True)


def _load():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run(*, cases=None, dtype="float32", repeat=5, shrink=1, progress=False, stream=None):
    """Time every case on a LocalCluster of 2 single-threaded workers; one dict per case.

    Parameters
    ----------
    cases : sequence of str, optional
        Names of :data:`CASES` (or one comma-separated string); default all.
    dtype : {"float32", "float64"}, default "float32"
    repeat : int, default 5
        Rounds; every peer is timed once per round and the median is reported.
    shrink : int, default 1
        Divide every spatial size and chunk size by this (quick checks; 1: the documented
        sizes).
    progress : bool, default False
        Draw a progress bar on stderr when it is a terminal.
    stream : file, optional
        Where the progress bar is drawn instead of stderr.

    Returns
    -------
    list of dict
        Keys: ``case``, ``ms`` (peer -> median ms), ``repeats``, ``skipped``, ``notes``,
        ``max_rel_diff`` (the worse of the chunked peers), ``rel_diff`` (peer -> rel
        diff), ``overhead`` (LocalCluster over in-memory 2 threads, minus one),
        ``overhead_best`` (over the faster in-memory time), ``overhead_halos_first``,
        ``overhead_no_priority``,
        ``threads_overhead``, ``tasks_per_chunk``, ``blocks_read``, ``output_chunks``,
        ``placement`` (input blocks per worker), ``shape``, ``chunks``,
        ``load`` (1-minute load average before and after), ``samples``
        (peer -> seconds of every round) and the setup (``dtype``, ``threads``, ``cpu``,
        ``blas``, ...).
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if not (isinstance(repeat, int) and repeat >= 1):
        raise ValueError(f"repeat must be a positive int, got {repeat!r}")
    names = _select(cases)
    for name in names:
        _shrunk(*CASES[name][2:4], shrink)
    try:
        import dask
        import dask.array as da
        import distributed
    except ImportError as exc:
        raise RuntimeError("bench --dask needs the dask extra: pip install "
                           "'fastdeconv[dask]'") from exc

    bar = Progress(len(names) * (2 + repeat),
                   stream if stream is not None else sys.stderr if progress else None)
    setup = dict(describe_setup(dtype, 2), transition_calls=False,
                 threads_note="2 workers x 1 thread, or 2 threads of the threaded scheduler "
                              "x 1 fastdeconv thread; in memory: 2, and 1")
    rows = []
    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=":0")
    client = distributed.Client(cluster, set_as_default=False)
    try:
        for name in names:
            title, op, shape, chunks, weight_shape, kwargs = CASES[name]
            shape, chunks = _shrunk(shape, chunks, shrink)
            bar.step(f"{name}: input on the workers", advance=0)
            generated = da.random.default_rng(0).standard_normal(
                shape, chunks=chunks, dtype=np.dtype(dtype))
            with dask.annotate(workers=_halves(client, generated), allow_other_workers=False):
                remote = client.persist(generated)
            with client.as_current():
                distributed.wait(remote)
            # the same values, made again in this process: gathering the persisted blocks
            # would leave a copy of every block on the worker that joins them, and the
            # operator's tasks would then find all their input on one worker
            x = generated.compute(scheduler="threads")
            weight = np.random.default_rng(1).standard_normal(weight_shape).astype(dtype)
            peers = _Peers(client, op, x, remote, weight, kwargs, chunks)
            placement = _placement(client, remote)
            calls = {PEERS[0]: lambda: peers.memory(2), PEERS[1]: lambda: peers.memory(1),
                     PEERS[2]: peers.threads, PEERS[3]: peers.cluster,
                     PEERS[4]: lambda: peers.cluster(halos_first=True),
                     PEERS[5]: lambda: peers.cluster(plain_array=True)}
            # warm-up, and the check of one output block of each chunked peer
            expected = calls[_BASELINE]()
            calls[PEERS[1]]()
            diffs = {_THREADS: _block_diff(calls[_THREADS](), expected),
                     _CLUSTER: _block_diff(peers.cluster(check=True), expected, client),
                     _FIRST: _block_diff(peers.cluster(check=True, halos_first=True),
                                         expected, client),
                     _PLAIN: _block_diff(peers.cluster(check=True, plain_array=True),
                                         expected, client)}
            del expected
            bar.step(f"{name} warm-up")
            load_before = _load()
            samples = {peer: [] for peer in calls}
            for rnd in range(repeat):
                order = list(calls) if rnd % 2 == 0 else list(calls)[::-1]
                for peer in order:
                    start = time.perf_counter()
                    calls[peer]()
                    samples[peer].append(time.perf_counter() - start)
                bar.step(f"{name} {rnd + 1}/{repeat}")
            load_after = _load()
            per_chunk, reads, outputs = graph_size(peers.chunked(peers.local, weight, **kwargs))
            client.cancel(remote)
            del remote, peers, x
            ms = {peer: 1e3 * statistics.median(t) for peer, t in samples.items()}
            rows.append(dict(
                setup, case=f"{title}, chunks {'x'.join(map(str, chunks[2:]))}", name=name,
                ms=ms, repeats={peer: repeat for peer in calls}, skipped={}, notes={},
                rel_diff=diffs, max_rel_diff=max(diffs.values()),
                overhead=ms[_CLUSTER] / ms[_BASELINE] - 1,
                overhead_best=ms[_CLUSTER] / min(ms[_BASELINE], ms[PEERS[1]]) - 1,
                overhead_halos_first=ms[_FIRST] / ms[_BASELINE] - 1,
                overhead_no_priority=ms[_PLAIN] / ms[_BASELINE] - 1,
                threads_overhead=ms[_THREADS] / ms[_BASELINE] - 1,
                tasks_per_chunk=per_chunk, blocks_read=reads, output_chunks=outputs,
                placement=placement,
                shape=list(shape), chunks=list(chunks), load=[load_before, load_after],
                samples={peer: [round(t, 4) for t in times] for peer, times in samples.items()},
                versions={"dask": _version("dask"), "distributed": distributed.__version__}))
            bar.step(f"{name} done")
    finally:
        bar.close()
        client.close()
        cluster.close()
    return rows


def _version(module):
    return getattr(sys.modules.get(module), "__version__", "?")


def _percent(value):
    return f"{100 * value:+.0f}%"


def format_table(rows):
    """The results in the bench format (:mod:`fastdeconv._bench.table`)."""
    if not rows:
        return "(no results)"
    loads = [load for row in rows for load in row["load"] if load is not None]
    load = (f"1-minute load average {min(loads):.2f} to {max(loads):.2f} during the rounds "
            f"({os.cpu_count()} CPUs; above 0 means other jobs shared them)" if loads else "?")
    return format_report(
        rows, title=f"fastdeconv bench --dask: {len(rows)} case(s), chunked vs in-memory",
        peers=PEERS, columns=[("case", "l", lambda row: row["case"])],
        trailing=[("overhead", "r", lambda row: _percent(row["overhead"])),
                  ("vs faster in-memory", "r", lambda row: _percent(row["overhead_best"])),
                  ("halos first", "r", lambda row: _percent(row["overhead_halos_first"])),
                  ("no priority", "r", lambda row: _percent(row["overhead_no_priority"])),
                  ("threads vs in-memory", "r", lambda row: _percent(row["threads_overhead"])),
                  ("tasks/chunk", "r", lambda row: f"{row['tasks_per_chunk']:.1f}"),
                  ("blocks read", "r", lambda row: str(row["blocks_read"])),
                  ("chunks", "r", lambda row: str(row["output_chunks"])),
                  ("placement", "r", lambda row: "/".join(map(str, row["placement"])))],
        setup=[("cluster", "distributed.LocalCluster, 2 worker processes x 1 thread, "
                           "loopback; input generated and persisted on the workers, result "
                           "persisted there (not gathered)"),
               ("load", load)],
        legend=["Times: median ms over the rounds, the peers in turn within each round "
                "(order reversed every other round), after one warm-up call each.",
                "overhead = LocalCluster 2x1 / in-memory 2 threads - 1 (the fair pair: 2 "
                "threads of one process against 2 single-threaded processes on the same "
                "cores); vs faster in-memory: over the faster of 1 and 2 threads (on a busy "
                "machine 2 threads can lose to 1: each waits for the other at every barrier); "
                "halos first: LocalCluster halos first (submitted within "
                "dask.annotate(priority=fastdeconv.dask.halo_priority); the plain submission "
                "already runs the halo tasks first) over in-memory 2 threads; no priority: "
                "LocalCluster no priority (the result as a plain dask array, as a derived "
                "array is: no halo priority) over in-memory 2 threads; threads vs "
                "in-memory: dask's threaded scheduler over in-memory 2 threads.",
                "tasks/chunk: tasks of the operator's layer per output chunk (its own and the "
                "halo tasks that cut the pieces its neighbours read from each input block); "
                "blocks read: the most input blocks (or their halo tasks) one output task "
                "reads; chunks: output chunks; placement: input blocks per worker; max rel "
                "diff: of one output block of each chunked peer."])
