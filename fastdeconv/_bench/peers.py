"""The peers of the layer benchmark: each one's call of every op, prepared for timing.

``fastdeconv``
    :func:`fastdeconv.conv`, :func:`fastdeconv.conv_transpose`, :func:`fastdeconv.conv_backward`.
``torch``
    ``torch.nn.functional.conv{1,2,3}d`` / ``conv_transpose{1,2,3}d`` and
    ``torch.nn.grad.conv{1,2,3}d_weight``.
``onnxruntime``
    A one-node ``Conv`` / ``ConvTranspose`` model with the weight as an initializer (so ORT can
    pre-pack it, as in deployment), all graph optimizations on. The model is built with the
    ``onnx`` package's helpers (``fastdeconv.testing._onnx``), so this peer needs ``onnx`` too.
``fastdeconv_prepared``
    :class:`fastdeconv.PreparedConv` / :class:`fastdeconv.PreparedConvTranspose` made once
    from the case's weight (its packed or transformed weight kept, as ONNX Runtime keeps its
    pre-packed initializer), then called: the library in an inference loop. It has no weight
    gradient. Being fastdeconv, it is left out of the ratio to the fastest other library.
``fastdeconv_nchw``
    In the channels-last mode of the bench (``--data-format channels_last``), fastdeconv's
    channels-first call on channels-first copies of the operands: the other layout of the
    same library, timed interleaved with the rest (the ratio column leaves it out).
``numpy``
    Plain NumPy: ``np.tensordot`` for the GEMM and one strided ``+=`` per kernel tap for col2im
    (the Chainer approach) for transposed convolution; ``sliding_window_view`` + ``tensordot``
    for forward convolution and for the weight gradient.
"""

import numpy as np

from ..testing._onnx import single_node_model

__all__ = ["PEERS", "CHANNELS_LAST_PEERS", "ALL_PEERS", "PEER_OPS", "PeerUnavailable", "load_peers",
           "require"]

PEERS = ("fastdeconv", "fastdeconv_prepared", "torch", "onnxruntime", "numpy")
#: The peers of the channels-last mode: ONNX Runtime and the NumPy peer are channels-first only.
CHANNELS_LAST_PEERS = ("fastdeconv", "fastdeconv_nchw", "torch")
#: Every peer, in the order of the table's columns.
ALL_PEERS = PEERS + tuple(p for p in CHANNELS_LAST_PEERS if p not in PEERS)


class PeerUnavailable(Exception):
    """A peer cannot run a case (not installed, or no kernel for this op or dtype)."""


def require(module_name):
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
# pinned globally by :func:`fastdeconv._bench.timing.pinned_threads`.

# Data operands are channels-first unless ``operands["data_format"] == "channels_last"``
# (then ``x`` and ``grad_output`` are C-contiguous channels-last arrays).
_DATA = ("x", "grad_output")


def _data_format(operands):
    return operands.get("data_format", "channels_first")


# ---------------------------------------------------------------- fastdeconv
def _fastdeconv_conv(case, operands, threads):
    fd = require("fastdeconv")
    x, weight, layout = operands["x"], operands["weight"], _data_format(operands)
    return lambda: fd.conv(x, weight, data_format=layout, **case.params)


def _fastdeconv_conv_transpose(case, operands, threads):
    fd = require("fastdeconv")
    x, weight, layout = operands["x"], operands["weight"], _data_format(operands)
    return lambda: fd.conv_transpose(x, weight, data_format=layout, **case.params)


def _fastdeconv_prepared(op):
    def peer(case, operands, threads):
        fd = require("fastdeconv")
        if op == "conv_wgrad":
            raise PeerUnavailable("a prepared layer has no weight gradient")
        params = dict(case.params, data_format=_data_format(operands))
        layer = (fd.PreparedConv(operands["weight"], **params) if op == "conv" else
                 fd.PreparedConvTranspose(operands["weight"], **params))
        x = operands["x"]
        return lambda: layer(x)
    return peer


def _fastdeconv_conv_wgrad(case, operands, threads):
    fd = require("fastdeconv")
    grad_output, x, layout = operands["grad_output"], operands["x"], _data_format(operands)
    weight = np.zeros(case.weight_shape, dtype=x.dtype)

    def call():
        return fd.conv_backward(grad_output, x, weight, grads=("weight",), data_format=layout,
                                **case.params)[1]
    return call


def _channels_first_copies(operands):
    """The operands of the channels-last mode as channels-first C-contiguous copies."""
    if _data_format(operands) != "channels_last":
        raise PeerUnavailable("only in the channels-last mode (--data-format channels_last)")
    return {name: np.ascontiguousarray(np.moveaxis(value, -1, 1)) if name in _DATA else value
            for name, value in operands.items() if name != "data_format"}


def _fastdeconv_nchw(op):
    def peer(case, operands, threads):
        call = PEER_OPS["fastdeconv"][op](case, _channels_first_copies(operands), threads)
        if op == "conv_wgrad":
            return call
        # the result as a channels-last view, for the peers' comparison (not a copy)
        return lambda: np.moveaxis(call(), 1, -1)
    return peer


# ---------------------------------------------------------------- PyTorch
def _torch_tensors(operands, *names):
    """Tensors of the operands; channels-last data becomes PyTorch's channels_last memory
    format (a logical NCHW tensor with channels-last strides, no copy)."""
    torch = require("torch")
    last = _data_format(operands) == "channels_last"
    return [torch.from_numpy(operands[name]).movedim(-1, 1) if last and name in _DATA
            else torch.from_numpy(operands[name]) for name in names]


def _torch_result(operands, call):
    if _data_format(operands) != "channels_last":
        return call
    return lambda: call().movedim(1, -1)       # a view: the result is channels_last already


def _torch_conv(case, operands, threads):
    torch = require("torch")
    fn = getattr(torch.nn.functional, f"conv{case.ndim}d")
    x, weight = _torch_tensors(operands, "x", "weight")
    return _torch_result(operands, lambda: fn(x, weight, None, case.s, case.p, case.d,
                                              case.groups))


def _torch_conv_transpose(case, operands, threads):
    torch = require("torch")
    fn = getattr(torch.nn.functional, f"conv_transpose{case.ndim}d")
    x, weight = _torch_tensors(operands, "x", "weight")
    return _torch_result(operands, lambda: fn(x, weight, None, case.s, case.p,
                                              case.output_padding, case.groups, case.d))


def _torch_conv_wgrad(case, operands, threads):
    torch = require("torch")
    fn = getattr(torch.nn.grad, f"conv{case.ndim}d_weight")
    grad_output, x = _torch_tensors(operands, "grad_output", "x")
    return lambda: fn(x, case.weight_shape, grad_output, case.s, case.p, case.d, case.groups)


# ---------------------------------------------------------------- ONNX Runtime
def _channels_first_only(operands, peer):
    if _data_format(operands) == "channels_last":
        raise PeerUnavailable(f"{peer} runs channels-first data only")


def _onnxruntime_session(case, op_type, x, weight, attributes, threads):
    """Callable running a one-node ORT session pinned to the benchmark's thread count."""
    ort = require("onnxruntime")
    require("onnx")   # builds the model
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
    # spinning threads would take the cores from the next peer. Every peer gets idle cores,
    # ORT included.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # the weight is an initializer (a constant of the model), as exporters write it
    model = single_node_model(op_type, [x, weight], attributes)
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"x0": x})[0]


def _onnxruntime_conv(case, operands, threads):
    _channels_first_only(operands, "ONNX Runtime")
    return _onnxruntime_session(case, "Conv", operands["x"], operands["weight"], {}, threads)


def _onnxruntime_conv_transpose(case, operands, threads):
    _channels_first_only(operands, "ONNX Runtime")
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
    _channels_first_only(operands, "the NumPy peer")
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
    _channels_first_only(operands, "the NumPy peer")
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
    _channels_first_only(operands, "the NumPy peer")
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


PEER_OPS = {
    "fastdeconv": {"conv": _fastdeconv_conv, "conv_transpose": _fastdeconv_conv_transpose,
                   "conv_wgrad": _fastdeconv_conv_wgrad},
    "torch": {"conv": _torch_conv, "conv_transpose": _torch_conv_transpose,
              "conv_wgrad": _torch_conv_wgrad},
    "onnxruntime": {"conv": _onnxruntime_conv, "conv_transpose": _onnxruntime_conv_transpose,
                    "conv_wgrad": _onnxruntime_conv_wgrad},
    "fastdeconv_nchw": {op: _fastdeconv_nchw(op) for op in ("conv", "conv_transpose",
                                                             "conv_wgrad")},
    "fastdeconv_prepared": {op: _fastdeconv_prepared(op) for op in ("conv", "conv_transpose",
                                                                     "conv_wgrad")},
    "numpy": {"conv": _numpy_conv, "conv_transpose": _numpy_conv_transpose,
              "conv_wgrad": _numpy_conv_wgrad},
}


def load_peers(peers):
    """Import every requested peer before threads are pinned.

    threadpoolctl only limits the BLAS and OpenMP runtimes already loaded, so every library
    must be imported first. Returns ``(versions, unavailable)`` dicts keyed by peer name.
    """
    versions, unavailable = {}, {}
    for peer in peers:
        if peer not in PEER_OPS:
            raise ValueError(f"unknown peer {peer!r}; choose from {ALL_PEERS}")
        try:
            module = require(peer.split("_")[0])
            if peer.startswith("fastdeconv") and not hasattr(module, "conv_transpose"):
                raise PeerUnavailable("fastdeconv has no conv_transpose (not built?)")
        except PeerUnavailable as exc:
            unavailable[peer] = str(exc)
        else:
            versions[peer] = getattr(module, "__version__", "?")
    return versions, unavailable
