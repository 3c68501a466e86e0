"""fastdeconv.dask against the in-memory operator (asv).

Chunked transposed convolution (2-d) and convolution (3-d) on dask's threaded scheduler with
2 threads (fastdeconv on 1 thread per chunk, the blocks persisted, not joined), next to the
in-memory call on 2 threads: the fair pair on 2 cores. Graph construction alone is timed too
(it must stay cheap: one task per output chunk and one halo task per input block). Skipped when dask is
not installed (asv.conf.json's matrix installs it; only ``dask.array`` is needed here). The
comparison on a ``distributed.LocalCluster`` of 2 single-threaded worker processes (input
generated and persisted on the workers, result persisted there) is
``python -m fastdeconv bench --dask`` (asv's timing loop would restart the cluster); its cases
are these at twice the size per dimension (chunks 512 x 512 and 128^3).
"""

import numpy as np

from .common import fastdeconv, safe_import

with safe_import() as _dask_import:
    import dask
    import dask.array as da
    import fastdeconv.dask as fdd

#: (name, x shape, x chunks, weight shape, keywords, operator)
CASES = {
    "2d-ct-k4s2": ((1, 16, 1024, 1024), (1, 16, 256, 256), (16, 16, 4, 4),
                   dict(stride=2, padding=1), "conv_transpose"),
    "3d-conv-k3": ((1, 4, 128, 128, 128), (1, 4, 64, 64, 64), (4, 4, 3, 3, 3),
                   dict(padding=1), "conv"),
}


class DaskVersusInMemory:
    params = [list(CASES), ["float32"]]
    param_names = ["case", "dtype"]
    timeout = 300

    def setup(self, case, dtype):
        if _dask_import.error:
            raise NotImplementedError(f"dask is not installed: {_dask_import.error}")
        shape, chunks, weight_shape, self.kwargs, op = CASES[case]
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal(shape).astype(dtype)
        self.weight = rng.standard_normal(weight_shape).astype(dtype)
        self.chunked = da.from_array(self.x, chunks=chunks)
        self.in_memory_op = getattr(fastdeconv, op)
        self.dask_op = getattr(fdd, op)
        fastdeconv.set_num_threads(2)

    def time_in_memory(self, case, dtype):
        self.in_memory_op(self.x, self.weight, **self.kwargs)

    def time_dask_threads(self, case, dtype):
        fastdeconv.set_num_threads(1)       # one thread per chunk, two chunks at a time
        try:
            y = self.dask_op(self.chunked, self.weight, **self.kwargs)
            dask.persist(y, scheduler="threads", num_workers=2)     # blocks, not joined
        finally:
            fastdeconv.set_num_threads(2)

    def time_graph_construction(self, case, dtype):
        self.dask_op(self.chunked, self.weight, **self.kwargs)

    def track_tasks_per_output_chunk(self, case, dtype):
        y = self.dask_op(self.chunked, self.weight, **self.kwargs)
        # the output chunks' tasks and the halo tasks (1 per input block in 2-d, 2 in 3-d)
        layer = y.dask.layers[y.name]
        tasks = sum(1 for k in layer if isinstance(k, tuple) and str(k[0]).startswith(y.name))
        return tasks / y.npartitions

    track_tasks_per_output_chunk.unit = "tasks"
