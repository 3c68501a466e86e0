"""Side-by-side benchmark of fastdeconv and its peers on the layer suite.

This is the engine behind ``python -m fastdeconv bench``. Every case of the benchmark suite (one
operator call each, as real networks make them) is run by every available peer in **one
process**, interleaved: each repetition times every peer on the case in turn, so machine noise
hits all of them alike. The reported time is the median of the repetitions after one warm-up
call, with the thread count pinned in every library.

Peers
-----
``fastdeconv``
    :func:`fastdeconv.conv`, :func:`fastdeconv.conv_transpose`, :func:`fastdeconv.conv_backward`.
``torch``
    ``torch.nn.functional.conv{1,2,3}d`` / ``conv_transpose{1,2,3}d`` and
    ``torch.nn.grad.conv{1,2,3}d_weight``.
``onnxruntime``
    A one-node ``Conv`` / ``ConvTranspose`` model with the weight as an initializer (so ORT can
    pre-pack it, as in deployment), all graph optimizations on. The model is serialized by a
    minimal protobuf writer below, so the heavy ``onnx`` package is not needed.
``numpy``
    Plain NumPy: ``np.tensordot`` for the GEMM and one strided ``+=`` per kernel tap for col2im
    (the Chainer approach) for transposed convolution; ``sliding_window_view`` + ``tensordot``
    for forward convolution and for the weight gradient.

Limit
-----
``limit = max(FLOPs / GEMM peak, bytes / bandwidth)``, where FLOPs are twice the multiply-adds
that touch real input (taps landing in padding or between the samples of a strided transposed
convolution are not counted; the count is exact, by index arithmetic per dimension), bytes are
those of the operands plus the result, the GEMM peak is what ``np.matmul`` reaches on two
2048 x 2048 matrices of the dtype, and the bandwidth is that of a large ``np.copyto`` (read plus
write bytes), both measured in-process under the same thread pin.
"""

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from .testing._onnx import single_node_model

__all__ = [
    "DTYPES",
    "PEERS",
    "SUITE",
    "SUITE_ENV",
    "Case",
    "PeerUnavailable",
    "add_arguments",
    "format_table",
    "load_suite",
    "main",
    "main_from_args",
    "measure_machine",
    "run",
]

PEERS = ("fastdeconv", "torch", "onnxruntime", "numpy")
DTYPES = ("float32", "float64")
OPS = ("conv_transpose", "conv", "conv_wgrad")

#: Environment variable naming a suite JSON file to use instead of :data:`SUITE`.
SUITE_ENV = "FASTDECONV_BENCH_SUITE"

#: The benchmark layer suite: a copy of ``shared/bench/suite.json`` (keep the two identical).
#: Shapes are (N, C, *spatial); k, s, p, output_padding and d apply to every spatial dimension.
SUITE = (
    {"name": "dcgan_g2", "op": "conv_transpose", "N": 16, "Cin": 512, "Cout": 256, "spatial": [4, 4], "k": 4, "s": 2, "p": 1, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "dcgan_g4", "op": "conv_transpose", "N": 16, "Cin": 128, "Cout": 64, "spatial": [16, 16], "k": 4, "s": 2, "p": 1, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "dcgan_rgb", "op": "conv_transpose", "N": 16, "Cin": 64, "Cout": 3, "spatial": [32, 32], "k": 4, "s": 2, "p": 1, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "unet_up", "op": "conv_transpose", "N": 1, "Cin": 256, "Cout": 128, "spatial": [32, 32], "k": 2, "s": 2, "p": 0, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "fcn_k3s2", "op": "conv_transpose", "N": 4, "Cin": 64, "Cout": 64, "spatial": [56, 56], "k": 3, "s": 2, "p": 1, "output_padding": 1, "d": 1, "groups": 1},  # noqa: E501
    {"name": "fcn32s", "op": "conv_transpose", "N": 1, "Cin": 21, "Cout": 21, "spatial": [16, 16], "k": 64, "s": 32, "p": 16, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "audio_1d", "op": "conv_transpose", "N": 8, "Cin": 128, "Cout": 64, "spatial": [4096], "k": 16, "s": 8, "p": 4, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "unet3d_up", "op": "conv_transpose", "N": 1, "Cin": 64, "Cout": 32, "spatial": [16, 16, 16], "k": 2, "s": 2, "p": 0, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "vnet3d_k3", "op": "conv_transpose", "N": 1, "Cin": 32, "Cout": 16, "spatial": [16, 16, 16], "k": 3, "s": 2, "p": 1, "output_padding": 1, "d": 1, "groups": 1},  # noqa: E501
    {"name": "depthwise_up", "op": "conv_transpose", "N": 4, "Cin": 64, "Cout": 64, "spatial": [64, 64], "k": 4, "s": 2, "p": 1, "output_padding": 0, "d": 1, "groups": 64},  # noqa: E501
    {"name": "resnet_3x3", "op": "conv", "N": 8, "Cin": 64, "Cout": 64, "spatial": [56, 56], "k": 3, "s": 1, "p": 1, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "resnet_s2", "op": "conv", "N": 8, "Cin": 128, "Cout": 256, "spatial": [28, 28], "k": 3, "s": 2, "p": 1, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "pointwise", "op": "conv", "N": 8, "Cin": 256, "Cout": 64, "spatial": [56, 56], "k": 1, "s": 1, "p": 0, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "dilated_3x3", "op": "conv", "N": 4, "Cin": 64, "Cout": 64, "spatial": [64, 64], "k": 3, "s": 1, "p": 2, "output_padding": 0, "d": 2, "groups": 1},  # noqa: E501
    {"name": "wgrad_3x3", "op": "conv_wgrad", "N": 8, "Cin": 64, "Cout": 64, "spatial": [56, 56], "k": 3, "s": 1, "p": 1, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
    {"name": "wgrad_dcgan", "op": "conv_wgrad", "N": 16, "Cin": 128, "Cout": 64, "spatial": [32, 32], "k": 4, "s": 2, "p": 1, "output_padding": 0, "d": 1, "groups": 1},  # noqa: E501
)

_SEED = 1234
#: Largest ``max_rel_diff`` between peers that is not flagged as a mismatch, per dtype.
AGREEMENT_RTOL = {"float32": 1e-4, "float64": 1e-10}
_GEMM_SIZE = 2048
_COPY_BYTES = 1 << 27  # 128 MiB: well beyond any last-level cache


# ================================================================================== cases
@dataclass(frozen=True)
class Case:
    """One operator call of the suite.

    Parameters
    ----------
    name : str
        Case name, e.g. ``"dcgan_g2"``.
    op : {"conv_transpose", "conv", "conv_wgrad"}
        Transposed convolution, forward convolution, or the gradient of a convolution with
        respect to its weight.
    N, Cin, Cout : int
        Batch size and the channels of the *convolution's* input and output; for
        ``conv_transpose`` they are the channels of its own input and output.
    spatial : tuple of int
        Spatial size of the operator's input ``x``.
    k, s, p, output_padding, d, groups : int
        Kernel size, stride, zero padding, output padding (``conv_transpose`` only), dilation
        and groups, the same in every spatial dimension.
    """

    name: str
    op: str
    N: int
    Cin: int
    Cout: int
    spatial: tuple
    k: int
    s: int
    p: int
    output_padding: int = 0
    d: int = 1
    groups: int = 1

    @classmethod
    def from_dict(cls, entry):
        """Build a case from one entry of ``suite.json`` (unknown keys are an error)."""
        entry = dict(entry)
        entry["spatial"] = tuple(entry["spatial"])
        case = cls(**entry)
        if case.op not in OPS:
            raise ValueError(f"case {case.name!r}: op must be one of {OPS}, got {case.op!r}")
        return case

    @property
    def ndim(self):
        """Number of spatial dimensions."""
        return len(self.spatial)

    @property
    def out_spatial(self):
        """Spatial size of the operator's output (of the convolution for ``conv_wgrad``)."""
        extent = self.d * (self.k - 1) + 1
        if self.op == "conv_transpose":
            return tuple((n - 1) * self.s - 2 * self.p + extent + self.output_padding
                         for n in self.spatial)
        return tuple((n + 2 * self.p - extent) // self.s + 1 for n in self.spatial)

    @property
    def weight_shape(self):
        """Weight shape: (Cin, Cout/groups, *k) for conv_transpose, else (Cout, Cin/groups, *k)."""
        kernel = (self.k,) * self.ndim
        if self.op == "conv_transpose":
            return (self.Cin, self.Cout // self.groups) + kernel
        return (self.Cout, self.Cin // self.groups) + kernel

    @property
    def operand_shapes(self):
        """Shapes of the arrays the operator reads, by argument name."""
        x = (self.N, self.Cin) + self.spatial
        if self.op == "conv_wgrad":
            return {"grad_output": (self.N, self.Cout) + self.out_spatial, "x": x}
        return {"x": x, "weight": self.weight_shape}

    @property
    def result_shape(self):
        """Shape of the operator's result."""
        if self.op == "conv_wgrad":
            return self.weight_shape
        return (self.N, self.Cout) + self.out_spatial

    @property
    def params(self):
        """Keyword arguments of the fastdeconv call (stride, padding, dilation, groups, ...)."""
        params = {"stride": self.s, "padding": self.p, "dilation": self.d, "groups": self.groups}
        if self.op == "conv_transpose":
            params["output_padding"] = self.output_padding
        return params

    def macs(self):
        """Exact number of multiply-adds that touch real input (no padding, no inserted zeros).

        Per spatial dimension, count the pairs (position of the convolution's output ``o``,
        tap ``t``) whose input index ``o * s - p + t * d`` lies inside the input; the product of
        these counts times ``N * Cout * Cin / groups`` is the number of multiply-adds. A
        transposed convolution is the adjoint of the convolution from its output to its input,
        so the same count applies with the roles of the two sizes swapped.
        """
        if self.op == "conv_transpose":
            sizes = zip(self.spatial, self.out_spatial)  # (conv output, conv input)
        else:
            sizes = zip(self.out_spatial, self.spatial)
        count = self.N * self.Cout * (self.Cin // self.groups)
        for n_out, n_in in sizes:
            count *= sum(1 for o in range(n_out) for t in range(self.k)
                         if 0 <= o * self.s - self.p + t * self.d < n_in)
        return count

    def summary(self):
        """Short geometry string, e.g. ``16x512x4x4 -> 256x8x8 k4 s2 p1``."""
        def dims(shape):
            return "x".join(map(str, shape))
        text = (f"{dims((self.N, self.Cin) + self.spatial)} -> "
                f"{dims((self.Cout,) + self.out_spatial)} k{self.k} s{self.s} p{self.p}")
        for label, value, default in (("op", self.output_padding, 0), ("d", self.d, 1),
                                      ("g", self.groups, 1)):
            if value != default:
                text += f" {label}{value}"
        return text


def load_suite(path=None):
    """Return the benchmark cases.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A ``suite.json`` file. Defaults to the file named by the environment variable
        ``FASTDECONV_BENCH_SUITE`` if set, else the embedded copy :data:`SUITE`.

    Returns
    -------
    list of Case
    """
    path = path or os.environ.get(SUITE_ENV)
    if path:
        with open(path, encoding="utf-8") as fh:
            entries = json.load(fh)["cases"]
    else:
        entries = SUITE
    return [Case.from_dict(entry) for entry in entries]


def _select_cases(suite, selectors):
    """Cases whose name or op is in ``selectors`` (all if None), in suite order."""
    if selectors is None:
        return list(suite)
    if isinstance(selectors, str):
        selectors = selectors.split(",")
    selectors = [s.strip() for s in selectors if s.strip()]
    known = {case.name for case in suite} | set(OPS)
    unknown = [s for s in selectors if s not in known]
    if unknown:
        raise ValueError(f"unknown case or op {unknown}; choose from {sorted(known)}")
    return [case for case in suite if case.name in selectors or case.op in selectors]


def _make_operands(case, dtype):
    """Seeded standard-normal operands of ``case`` (the same for every peer)."""
    rng = np.random.default_rng(_SEED)
    return {name: rng.standard_normal(shape, dtype=np.dtype(dtype))
            for name, shape in case.operand_shapes.items()}


# ================================================================================== peers
class PeerUnavailable(Exception):
    """A peer cannot run a case (not installed, or no kernel for this op or dtype)."""


def _require(module_name):
    """Import a peer's module, or raise :class:`PeerUnavailable`."""
    try:
        return __import__(module_name, fromlist=["_"])
    except ImportError as exc:
        raise PeerUnavailable(f"{module_name} is not importable ({exc})") from None


# Each peer function takes (case, operands, threads) and returns a zero-argument callable that
# performs the operator call and returns its result (an ndarray or anything np.asarray takes);
# a ``note`` attribute on the callable is shown under the table (e.g. extra work it does).
# Input conversion, model building and other one-off work happen before the callable exists.
# ``threads`` is for libraries that take the thread count as a setting (ORT); the others are
# pinned globally by _pinned_threads.

# ---------------------------------------------------------------- fastdeconv
def _fastdeconv_conv(case, operands, threads):
    fd = _require("fastdeconv")
    x, weight = operands["x"], operands["weight"]
    return lambda: fd.conv(x, weight, **case.params)


def _fastdeconv_conv_transpose(case, operands, threads):
    fd = _require("fastdeconv")
    x, weight = operands["x"], operands["weight"]
    return lambda: fd.conv_transpose(x, weight, **case.params)


def _fastdeconv_conv_wgrad(case, operands, threads):
    fd = _require("fastdeconv")
    grad_output, x = operands["grad_output"], operands["x"]
    weight = np.zeros(case.weight_shape, dtype=x.dtype)

    def call():
        return fd.conv_backward(grad_output, x, weight, grads=("weight",), **case.params)[1]
    return call


# ---------------------------------------------------------------- PyTorch
def _torch_conv(case, operands, threads):
    torch = _require("torch")
    fn = getattr(torch.nn.functional, f"conv{case.ndim}d")
    x, weight = (torch.from_numpy(operands[name]) for name in ("x", "weight"))
    return lambda: fn(x, weight, None, case.s, case.p, case.d, case.groups)


def _torch_conv_transpose(case, operands, threads):
    torch = _require("torch")
    fn = getattr(torch.nn.functional, f"conv_transpose{case.ndim}d")
    x, weight = (torch.from_numpy(operands[name]) for name in ("x", "weight"))
    return lambda: fn(x, weight, None, case.s, case.p, case.output_padding, case.groups, case.d)


def _torch_conv_wgrad(case, operands, threads):
    torch = _require("torch")
    fn = getattr(torch.nn.grad, f"conv{case.ndim}d_weight")
    grad_output, x = (torch.from_numpy(operands[name]) for name in ("grad_output", "x"))
    return lambda: fn(x, case.weight_shape, grad_output, case.s, case.p, case.d, case.groups)


# ---------------------------------------------------------------- ONNX Runtime
def _onnxruntime_session(case, op_type, x, weight, attributes, threads):
    """Callable running a one-node ORT session pinned to the benchmark's thread count."""
    ort = _require("onnxruntime")
    if x.dtype != np.float32:
        # ORT's CPU provider registers Conv/ConvTranspose for float (and float16) only.
        raise PeerUnavailable(f"no {x.dtype} Conv/ConvTranspose kernel")
    nd = case.ndim
    attributes = dict(attributes, kernel_shape=[case.k] * nd, strides=[case.s] * nd,
                      pads=[case.p] * (2 * nd), dilations=[case.d] * nd, group=case.groups)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's pool spins after each run by default; with the peers interleaved in one process its
    # spinning threads take the cores from the next peer (measured here: fastdeconv's 2-thread
    # dcgan_rgb went from 0.94 to 15 ms). Every peer gets idle cores, ORT included.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # the weight is an initializer (a constant of the model), as exporters write it
    model = single_node_model(op_type, [x, weight], attributes)
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"x0": x})[0]


def _onnxruntime_conv(case, operands, threads):
    return _onnxruntime_session(case, "Conv", operands["x"], operands["weight"], {}, threads)


def _onnxruntime_conv_transpose(case, operands, threads):
    return _onnxruntime_session(case, "ConvTranspose", operands["x"], operands["weight"],
                                {"output_padding": [case.output_padding] * case.ndim}, threads)


def _onnxruntime_conv_wgrad(case, operands, threads):
    raise PeerUnavailable("ONNX has no weight-gradient operator for inference sessions")


# ---------------------------------------------------------------- plain NumPy
def _numpy_windows(x, case):
    """View ``(N, C, *O, *k)`` of zero-padded ``x``: every (output position, tap) input value."""
    nd = case.ndim
    xp = np.pad(x, [(0, 0), (0, 0)] + [(case.p, case.p)] * nd)
    extent = case.d * (case.k - 1) + 1
    windows = np.lib.stride_tricks.sliding_window_view(xp, (extent,) * nd,
                                                       axis=tuple(range(2, 2 + nd)))
    steps = (slice(None, None, case.s),) * nd + (slice(None, None, case.d),) * nd
    return windows[(Ellipsis,) + steps]


def _numpy_conv(case, operands, threads):
    x, weight = operands["x"], operands["weight"]
    nd, g = case.ndim, case.groups
    cin, cout = case.Cin // g, case.Cout // g
    contract = ([1] + list(range(2 + nd, 2 + 2 * nd)), list(range(1, 2 + nd)))

    def call():
        windows = _numpy_windows(x, case)
        parts = [np.moveaxis(np.tensordot(windows[:, i * cin:(i + 1) * cin],
                                          weight[i * cout:(i + 1) * cout], contract), -1, 1)
                 for i in range(g)]
        return parts[0] if g == 1 else np.concatenate(parts, axis=1)
    return call


def _numpy_conv_wgrad(case, operands, threads):
    grad_output, x = operands["grad_output"], operands["x"]
    nd, g = case.ndim, case.groups
    cin, cout = case.Cin // g, case.Cout // g
    contract = ([0] + list(range(2, 2 + nd)), [0] + list(range(2, 2 + nd)))

    def call():
        windows = _numpy_windows(x, case)
        parts = [np.tensordot(grad_output[:, i * cout:(i + 1) * cout],
                              windows[:, i * cin:(i + 1) * cin], contract)
                 for i in range(g)]
        return parts[0] if g == 1 else np.concatenate(parts, axis=0)
    return call


def _numpy_conv_transpose(case, operands, threads):
    x, weight = operands["x"], operands["weight"]
    nd, g, s, d, p = case.ndim, case.groups, case.s, case.d, case.p
    cin, cout = case.Cin // g, case.Cout // g
    out_spatial = case.out_spatial
    # Padded canvas: every tap's strided target fits, and so does the cropped output window.
    full = [max((n - 1) * s + d * (case.k - 1) + 1, p + o)
            for n, o in zip(case.spatial, out_spatial)]
    crop = (slice(None), slice(None)) + tuple(slice(p, p + o) for o in out_spatial)
    taps = list(np.ndindex(*(case.k,) * nd))

    def call():
        canvas = np.zeros((case.N, case.Cout, *full), dtype=x.dtype)
        for i in range(g):
            # (cout, *k, N, *I) -> (N, cout, *k, *I); a view, as in Chainer's deconvolution_2d.
            col = np.moveaxis(np.tensordot(weight[i * cin:(i + 1) * cin],
                                           x[:, i * cin:(i + 1) * cin], (0, 1)), 1 + nd, 0)
            target = canvas[:, i * cout:(i + 1) * cout]
            for tap in taps:
                region = tuple(slice(t * d, t * d + (n - 1) * s + 1, s)
                               for t, n in zip(tap, case.spatial))
                target[(slice(None), slice(None)) + region] += col[(slice(None), slice(None)) + tap]
        return canvas[crop]
    return call


_PEER_OPS = {
    "fastdeconv": {"conv": _fastdeconv_conv, "conv_transpose": _fastdeconv_conv_transpose,
                   "conv_wgrad": _fastdeconv_conv_wgrad},
    "torch": {"conv": _torch_conv, "conv_transpose": _torch_conv_transpose,
              "conv_wgrad": _torch_conv_wgrad},
    "onnxruntime": {"conv": _onnxruntime_conv, "conv_transpose": _onnxruntime_conv_transpose,
                    "conv_wgrad": _onnxruntime_conv_wgrad},
    "numpy": {"conv": _numpy_conv, "conv_transpose": _numpy_conv_transpose,
              "conv_wgrad": _numpy_conv_wgrad},
}
_PEER_MODULES = {"fastdeconv": "fastdeconv", "torch": "torch", "onnxruntime": "onnxruntime",
                 "numpy": "numpy"}


def _load_peers(peers):
    """Import every requested peer before threads are pinned.

    threadpoolctl only limits the BLAS and OpenMP runtimes already loaded, so every library
    must be imported first. Returns ``(versions, unavailable)`` dicts keyed by peer name.
    """
    versions, unavailable = {}, {}
    for peer in peers:
        if peer not in _PEER_OPS:
            raise ValueError(f"unknown peer {peer!r}; choose from {PEERS}")
        try:
            module = _require(_PEER_MODULES[peer])
            if peer == "fastdeconv" and not hasattr(module, "conv_transpose"):
                raise PeerUnavailable("fastdeconv has no conv_transpose (not built?)")
        except PeerUnavailable as exc:
            unavailable[peer] = str(exc)
        else:
            versions[peer] = getattr(module, "__version__", "?")
    return versions, unavailable


@contextlib.contextmanager
def _pinned_threads(threads):
    """Limit BLAS, OpenMP and PyTorch's intra-op pool to ``threads`` threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise RuntimeError("the benchmark needs threadpoolctl to pin threads: "
                           "pip install threadpoolctl") from None
    torch = sys.modules.get("torch")
    saved = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        if torch:
            torch.set_num_threads(saved)


# ================================================================================== measuring
def _best_seconds(fn, calls):
    fn()
    best = math.inf
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_machine(dtype="float32"):
    """Measure the GEMM peak and the copy bandwidth under the current thread pin.

    Parameters
    ----------
    dtype : {"float32", "float64"}
        Dtype of the 2048 x 2048 ``np.matmul``.

    Returns
    -------
    dict
        ``gemm_gflops`` (best of 3 after a warm-up), ``bandwidth_gbs`` (bytes read plus
        written by a 128 MiB ``np.copyto``, best of 5) and ``blas`` (the BLAS libraries loaded
        and the kernel architecture each one selected, from threadpoolctl).
    """
    rng = np.random.default_rng(_SEED)
    a, b = (rng.standard_normal((_GEMM_SIZE, _GEMM_SIZE), dtype=np.dtype(dtype)) for _ in "ab")
    c = np.empty_like(a)
    seconds = _best_seconds(lambda: np.matmul(a, b, out=c), 3)
    gemm_gflops = 2 * _GEMM_SIZE ** 3 / seconds / 1e9
    src = np.ones(_COPY_BYTES // 8)
    dst = np.empty_like(src)
    seconds = _best_seconds(lambda: np.copyto(dst, src), 5)
    return {"gemm_gflops": gemm_gflops, "bandwidth_gbs": 2 * src.nbytes / seconds / 1e9,
            "blas": _blas_description()}


def _blas_description():
    """The BLAS libraries loaded and the kernels they chose, e.g. ``openblas Haswell x2``."""
    from threadpoolctl import threadpool_info

    kinds = [f"{lib['internal_api']} {lib.get('architecture') or '?'}"
             for lib in threadpool_info() if lib["user_api"] == "blas"]
    return ", ".join(f"{kind} x{kinds.count(kind)}" if kinds.count(kind) > 1 else kind
                     for kind in dict.fromkeys(kinds))


def _rel_diff(result, reference):
    """``max|result - reference| / max|reference|`` in float64 (inf on a shape mismatch)."""
    result = np.asarray(result, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if result.shape != reference.shape:
        return math.inf
    scale = np.max(np.abs(reference)) if reference.size else 0.0
    return float(np.max(np.abs(result - reference)) / scale) if scale else 0.0


class _Progress:
    """One-line text progress bar on stderr."""

    def __init__(self, total, enabled, width=30):
        self.total, self.enabled, self.width, self.done = max(total, 1), enabled, width, 0

    def step(self, label="", advance=1):
        self.done = min(self.done + advance, self.total)
        if self.enabled:
            filled = self.width * self.done // self.total
            bar = "#" * filled + "-" * (self.width - filled)
            sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} {label:<28.28}")
            sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


#: Environment variables that decide how idle worker pools wait; recorded with the results.
POOL_ENVIRONMENT = ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

#: With more than one thread, each timed call follows one untimed call of the same peer:
#: worker pools that spin after a call (OpenBLAS's for about 2**28 cycles, OpenMP's, ONNX
#: Runtime's) would otherwise take the cores from the peer timed next. Measured here: NumPy's
#: spinning OpenBLAS made fastdeconv's 2-thread dcgan_g2 5x slower when it ran right after the
#: NumPy peer; a pause instead (pools asleep) made every peer pay cold wake-ups.
TRANSITION_CALLS = 1


def _bench_case(case, dtype, threads, peers, unavailable, repeat, budget, progress):
    """Warm up, verify and time every peer on one case, interleaved; return the result row."""
    operands = _make_operands(case, dtype)
    calls, skipped = {}, dict(unavailable)
    for peer in peers:
        if peer in skipped:
            continue
        try:
            calls[peer] = _PEER_OPS[peer][case.op](case, operands, threads)
        except PeerUnavailable as exc:
            skipped[peer] = str(exc)

    # Warm-up call: also gives the results to compare and each peer's share of the budget.
    results, repeats, failed = {}, {}, {}
    for peer, fn in calls.items():
        progress.step(f"{case.name} warm-up {peer}", advance=0)
        try:
            start = time.perf_counter()
            results[peer] = np.asarray(fn())
            first = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - a failing peer is reported, not fatal
            failed[peer] = f"{type(exc).__name__}: {exc}"
            continue
        repeats[peer] = max(1, min(repeat, int(budget / first))) if budget else repeat
    progress.step(f"{case.name} warm-up")
    for peer in failed:
        del calls[peer]
    skipped.update(failed)

    reference = next(iter(results), None)
    rel_diff = {peer: _rel_diff(out, results[reference])
                for peer, out in results.items() if peer != reference}
    del results

    samples = {peer: [] for peer in calls}
    transition = TRANSITION_CALLS if threads > 1 else 0
    for rep in range(repeat):
        for peer, fn in calls.items():
            if len(samples[peer]) < repeats[peer]:
                for _ in range(transition):
                    fn()
                start = time.perf_counter()
                fn()
                samples[peer].append(time.perf_counter() - start)
        progress.step(f"{case.name} {rep + 1}/{repeat}")

    ms = {peer: 1e3 * statistics.median(times) for peer, times in samples.items()}
    notes = {peer: fn.note for peer, fn in calls.items() if getattr(fn, "note", None)}
    return {"case": case.name, "op": case.op, "shape": case.summary(), "ms": ms,
            "repeats": repeats, "skipped": skipped, "notes": notes, "reference": reference,
            "rel_diff": rel_diff, "max_rel_diff": max(rel_diff.values(), default=None)}


def _add_limits(row, case, dtype, machine):
    """Add FLOPs, bytes, the limit and the derived ratios to a result row."""
    itemsize = np.dtype(dtype).itemsize
    flops = 2 * case.macs()
    nbytes = itemsize * sum(math.prod(shape) for shape in
                            [*case.operand_shapes.values(), case.result_shape])
    limit_ms = 1e3 * max(flops / (machine["gemm_gflops"] * 1e9),
                         nbytes / (machine["bandwidth_gbs"] * 1e9))
    ms = row["ms"]
    others = {peer: t for peer, t in ms.items() if peer != "fastdeconv"}
    best_peer = min(others, key=others.get) if others else None
    fd_ms = ms.get("fastdeconv")
    row.update(flops=flops, bytes=nbytes, limit_ms=limit_ms, best_peer=best_peer,
               speedup=others[best_peer] / fd_ms if fd_ms and best_peer else None,
               pct_of_limit={peer: 100 * limit_ms / t for peer, t in ms.items()}, **machine)
    return row


def run(cases=None, dtype="float32", threads=1, repeat=5, quick=False, peers=PEERS,
        progress=True, *, budget=None, suite=None):
    """Benchmark fastdeconv and its peers side by side on the layer suite.

    Parameters
    ----------
    cases : str or sequence of str, optional
        Case names and/or op names (``"conv_transpose"``, ``"conv"``, ``"conv_wgrad"``); a
        string may be comma-separated. Default: every case.
    dtype : {"float32", "float64"}, default "float32"
    threads : int, default 1
        Threads allowed to every library (BLAS, OpenMP, PyTorch, ONNX Runtime).
    repeat : int, default 5
        Timed calls per peer and case, after one warm-up call; the median is reported.
    quick : bool, default False
        At most 3 repetitions and a 2 s budget per peer and case.
    peers : sequence of str, default ("fastdeconv", "torch", "onnxruntime", "numpy")
        Peers to run; the first one that runs a case is the reference for ``rel_diff``.
    progress : bool, default True
        Draw a progress bar on stderr.
    budget : float, optional
        Seconds per peer and case: a peer whose warm-up call took ``t`` seconds is timed
        ``max(1, min(repeat, budget // t))`` times. Default 10 (2 with ``quick``).
    suite : str or os.PathLike, optional
        Suite JSON file; see :func:`load_suite`.

    Returns
    -------
    list of dict
        One row per case with keys ``case``, ``op``, ``shape``, ``dtype``, ``threads``,
        ``ms`` (peer -> median milliseconds), ``repeats`` (peer -> timed calls), ``skipped``
        (peer -> reason), ``notes`` (peer -> remark), ``reference``, ``rel_diff`` (peer -> max
        relative difference to the reference peer), ``max_rel_diff``, ``flops``, ``bytes``,
        ``limit_ms``, ``best_peer`` (fastest peer other than fastdeconv), ``speedup`` (best
        peer's time / fastdeconv's), ``pct_of_limit`` (peer -> 100 * limit / time),
        ``versions``, ``environment`` (the :data:`POOL_ENVIRONMENT` variables that are set),
        ``blas_coretype`` (``OPENBLAS_CORETYPE`` if set, else None) and the machine figures
        ``gemm_gflops``, ``bandwidth_gbs`` and ``blas``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    if not (isinstance(repeat, int) and repeat >= 1):
        raise ValueError(f"repeat must be a positive int, got {repeat!r}")
    if quick:
        repeat = min(repeat, 3)
    if budget is None:
        budget = 2.0 if quick else 10.0
    peers = tuple(dict.fromkeys(peers))
    selected = _select_cases(load_suite(suite), cases)

    versions, unavailable = _load_peers(peers)
    bar = _Progress(len(selected) * (1 + repeat) + 1, progress)
    rows = []
    try:
        with _pinned_threads(threads):
            bar.step("GEMM peak and bandwidth", advance=0)
            machine = measure_machine(dtype)
            bar.step("GEMM peak and bandwidth")
            for case in selected:
                row = _bench_case(case, dtype, threads, peers, unavailable, repeat, budget, bar)
                row.update(dtype=dtype, threads=threads, versions=versions,
                           environment={k: os.environ[k] for k in POOL_ENVIRONMENT
                                        if k in os.environ},
                           blas_coretype=os.environ.get("OPENBLAS_CORETYPE"))
                rows.append(_add_limits(row, case, dtype, machine))
    finally:
        bar.close()
    return rows


# ================================================================================== output
def _fmt_ms(value):
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def format_table(results):
    """Render :func:`run` results as a Markdown table with a header and footnotes.

    Parameters
    ----------
    results : list of dict
        Rows returned by :func:`run`.

    Returns
    -------
    str
    """
    if not results:
        return "(no results)"
    first = results[0]
    peers = list(dict.fromkeys(p for row in results for p in [*row["ms"], *row["skipped"]]))
    peers.sort(key=lambda p: PEERS.index(p) if p in PEERS else len(PEERS))
    has_fd = any("fastdeconv" in row["ms"] for row in results)
    lines = [
        f"dtype {first['dtype']}, {first['threads']} thread(s), median ms after a warm-up, "
        f"peers interleaved in one process; GEMM peak {first['gemm_gflops']:.1f} GFLOP/s "
        f"(np.matmul {_GEMM_SIZE}^2), copy bandwidth {first['bandwidth_gbs']:.1f} GB/s; "
        f"BLAS: {first.get('blas') or '?'}",
        "",
    ]
    header = ["case", "op", "shape", "limit", *peers]
    header += ["speedup", "% of limit"] if has_fd else ["% of limit (best)"]
    header.append("max rel diff")
    table = [header]
    notes, starred, mismatches = set(), False, False
    remarks = sorted({f"{peer} ({row['op']}): {text}" for row in results
                      for peer, text in row.get("notes", {}).items()})
    for row in results:
        cells = [row["case"], row["op"], row["shape"], _fmt_ms(row["limit_ms"])]
        for peer in peers:
            if peer in row["ms"]:
                cell = _fmt_ms(row["ms"][peer])
                if row["repeats"][peer] < max(row["repeats"].values()):
                    cell, starred = cell + "*", True
            else:
                cell = "-"
                notes.add(f"{peer}: {row['skipped'].get(peer, 'not requested')}")
            cells.append(cell)
        pct = row["pct_of_limit"]
        if has_fd:
            cells.append(f"{row['speedup']:.2f}x" if row["speedup"] else "-")
            cells.append(f"{pct['fastdeconv']:.0f}%" if "fastdeconv" in pct else "-")
        else:
            cells.append(f"{max(pct.values()):.0f}%" if pct else "-")
        diff = row["max_rel_diff"]
        mismatch = diff is not None and not diff <= AGREEMENT_RTOL[row["dtype"]]
        mismatches |= mismatch
        cells.append("-" if diff is None else f"{diff:.1e}" + (" !" if mismatch else ""))
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, cells in enumerate(table):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["", "limit = max(FLOPs / GEMM peak, bytes / bandwidth) in ms; speedup = fastest "
              "other peer / fastdeconv; max rel diff = max|a - ref| / max|ref| over peers.",
              "ONNX Runtime runs with thread spinning off; with more than one thread each timed "
              "call follows an untimed call of the same peer (the previous peer's spinning "
              "worker pools would take its cores)."]
    if mismatches:
        lines.append(f"! MISMATCH: peers disagree by more than {AGREEMENT_RTOL[first['dtype']]:g} "
                     "(see rel_diff in --json)")
    if starred:
        lines.append("* fewer timed calls: the peer's warm-up call exceeded the time budget")
    if remarks:
        lines += ["Notes:"] + [f"  {text}" for text in remarks]
    if notes:
        lines += ["Not run (-):"] + [f"  {text}" for text in sorted(notes)]
    environment = first.get("environment", {})
    if environment:
        lines.append("Environment: " + ", ".join(f"{k}={v}" for k, v in environment.items())
                     + " (idle worker pools sleep instead of spinning into the next peer's "
                     "time; python -m fastdeconv bench sets OPENBLAS_THREAD_TIMEOUT=4 for "
                     "more than one thread)")
    if first.get("blas_coretype"):
        lines.append(f"OPENBLAS_CORETYPE={first['blas_coretype']} is set: OpenBLAS (NumPy's and "
                     "SciPy's, so fastdeconv's GEMMs and the GEMM peak) runs that CPU type's "
                     "kernels instead of the ones it detects (the performance docs measure both)")
    versions = first.get("versions", {})
    if versions:
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return "\n".join(lines)


# ================================================================================== CLI
def add_arguments(parser):
    """Add the benchmark's options to an :class:`argparse.ArgumentParser` (or subparser)."""
    parser.add_argument("cases", nargs="*", metavar="CASE",
                        help="case names or ops (conv_transpose, conv, conv_wgrad); default all")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--threads", type=int, default=1, help="threads per library (default 1)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per peer (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help="at most 3 repetitions and a 2 s budget per peer and case")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds per peer and case before repetitions are cut "
                             "(default 10, or 2 with --quick)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"comma-separated peers (default {','.join(PEERS)})")
    parser.add_argument("--suite", default=None,
                        help=f"suite JSON file (default ${SUITE_ENV} or the built-in suite)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                        help="write the results as JSON to FILE ('-' or no value: stdout, "
                             "instead of the table)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar on stderr")
    return parser


def main_from_args(args):
    """Run the benchmark from parsed :func:`add_arguments` options; return an exit code."""
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    results = run(args.cases or None, dtype=args.dtype, threads=args.threads,
                  repeat=args.repeat, quick=args.quick, peers=peers, progress=args.progress,
                  budget=args.budget, suite=args.suite)
    if args.json == "-":
        json.dump(results, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    print(format_table(results))
    return 0


def main(argv=None):
    """Entry point of ``python -m fastdeconv._bench``."""
    parser = argparse.ArgumentParser(prog="fastdeconv bench", description=__doc__.splitlines()[0])
    return main_from_args(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
