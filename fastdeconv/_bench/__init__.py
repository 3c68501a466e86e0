"""The benchmark harness behind ``python -m fastdeconv bench`` (private).

Modules
-------
``suite``
    The layer suite (``suite.json``, package data: the only copy, also read by the asv
    benchmarks in ``benchmarks/``), its cases and how they are selected.
``peers``
    fastdeconv, PyTorch, ONNX Runtime and plain NumPy: each one's call of every layer op.
``timing``
    Thread pinning, interleaved timing of the peers and the progress bar, shared by the modes.
``machine``
    The setup a result depends on (CPU, BLAS and its kernels, pool environment) and the GEMM
    peak and copy bandwidth that define the layers' limit.
``table``
    The one output format of every mode.
``layers``, ``upsampling``
    The two modes: the layer suite, and ``--upsampling`` (resize, max_pool, max_unpool).
``cli``
    The command-line options and the ``bench`` sub-command.

The names below are those of the former ``fastdeconv._bench`` module (the layer benchmark).
"""

from .cli import add_arguments, main, main_from_args
from .layers import DTYPES, format_table, run
from .machine import measure_machine
from .peers import PEERS, PeerUnavailable
from .suite import SUITE, SUITE_ENV, Case, load_suite

__all__ = ["DTYPES", "PEERS", "SUITE", "SUITE_ENV", "Case", "PeerUnavailable", "add_arguments",
           "format_table", "load_suite", "main", "main_from_args", "measure_machine", "run"]
