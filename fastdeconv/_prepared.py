"""Prepared layers: a convolution or transposed convolution whose weight is checked, copied
and prepared once, for inference loops that call the same layer many times.

A call of a prepared layer runs exactly what :func:`fastdeconv.conv` /
:func:`fastdeconv.conv_transpose` run (the same validation functions, the same chooser and
plans, the same kernels) and skips what repeats: per input shape and dtype it keeps the
validated problem, and for an algorithm with a prepared form of the weight
(``prepare_weight`` in its module: the packed engine's A micro-panels, Winograd's transformed
weight, the direct convolution's panels) that form, made once. The prepared form holds the
values the plain call makes on every call, so the results are the same to the bit. Prepared
forms are kept by the key their algorithm gives them, so that shapes whose forms are equal
share one.
"""

import threading
from collections import OrderedDict

import numpy as np

from . import _channels_last as channels_last
from ._algorithms import current_budget
from ._algorithms._chooser import choose
from ._algorithms._common import allocate_output, check_kernel_dims
from ._conv import (_add_bias, _check_bias, _check_positions, _compute_arrays, _operands,
                    _output_size_in, _pad_input, _padded_problem)
from ._docstrings import docfiller
from ._problem import conv_problem, conv_transpose_problem
from ._validation import as_array, check_int, result_dtype

__all__ = ["PreparedConv", "PreparedConvTranspose"]

#: The spatial size of the input that validates a layer's parameters at construction: large
#: enough for any kernel, so that only the parameters themselves can be rejected.
_PROBE_SIZE = 2**20


class _Entry:
    """What a layer keeps for one input shape and dtype: the compute dtype, the problem of the
    call and of its pass, whether it runs natively channels-last, and the chosen algorithm,
    plan and prepared weight of the pass (re-chosen when the budget or forced name changes)."""

    __slots__ = ("dtype", "problem", "pass_problem", "native", "module", "plan", "prepared")

    def __init__(self, dtype, problem, pass_problem, native):
        self.dtype, self.problem, self.pass_problem, self.native = (dtype, problem,
                                                                     pass_problem, native)
        self.module = self.plan = self.prepared = None


class _PreparedLayer:
    """The machinery of :class:`PreparedConv` and :class:`PreparedConvTranspose`."""

    _TRANSPOSE = False
    _PASS = "forward"

    def __init__(self, weight, bias, params, data_format, weight_format, cache_size):
        _, self._layout, (weight, bias) = _operands(
            [(weight, "weight"), (bias, "bias")], data_format=data_format,
            weight_format=weight_format, transpose=self._TRANSPOSE, contiguous=False)
        self._cache_size = check_int(cache_size, "cache_size", min_value=1)
        self._params = dict(params)
        # the canonical weight, copied: later changes to the caller's array do not reach it
        self._weight = np.array(weight, order="C", copy=True)
        self._bias = None if bias is None else np.array(bias, order="C", copy=True)
        self._data_format, self._weight_format = data_format, weight_format
        probe = self._problem(self._probe_shape(), None)
        _check_bias(self._bias, probe.c_out if not self._TRANSPOSE else probe.c_in)
        self._entries = OrderedDict()      # (shape, dtype, output_size) -> _Entry, LRU
        self._compute = {}                 # compute dtype -> (weight, bias) of that dtype
        self._lock = threading.Lock()      # the caches may be used from several threads

    # ------------------------------------------------------------------------- public
    @property
    def weight(self):
        """The layer's copy of the weight, in the caller's ``weight_format`` (a read-only
        view)."""
        axes = self._layout.weight_axes_out
        return _read_only(self._weight if axes is None else self._weight.transpose(axes))

    @property
    def bias(self):
        """The layer's copy of the bias (a read-only view), or None."""
        return None if self._bias is None else _read_only(self._bias)

    @property
    def params(self):
        """The operator's keyword parameters, as given (a new dict)."""
        return dict(self._params, data_format=self._data_format,
                    weight_format=self._weight_format)

    @property
    def nbytes(self):
        """Bytes the layer holds: its weight and bias copies, their copies in the compute
        dtypes it has run and the prepared (packed) weights of the shapes it keeps."""
        arrays = {id(a): a.nbytes for pair in self._compute.values() for a in pair
                  if a is not None}
        arrays[id(self._weight)] = self._weight.nbytes
        if self._bias is not None:
            arrays[id(self._bias)] = self._bias.nbytes
        return sum(arrays.values()) + sum(p.nbytes for p in self._prepared_weights().values())

    def clear_cache(self):
        """Forget the shapes seen and every prepared weight (the weight copy stays)."""
        with self._lock:
            self._entries.clear()
            self._compute.clear()

    # ----------------------------------------------------------------------- internals
    def _probe_shape(self):
        if self._weight.ndim < 3:      # rejected by the problem, whatever the channels
            channels = 1
        elif self._TRANSPOSE:
            channels = self._weight.shape[0]
        else:
            channels = self._weight.shape[1] * check_int(self._params["groups"], "groups",
                                                         min_value=1)
        return (1, channels) + (_PROBE_SIZE,) * max(self._weight.ndim - 2, 0)

    def _prepared_weights(self):
        """Every prepared weight the entries hold, by key (shared between entries)."""
        with self._lock:
            entries = list(self._entries.values())
        known = {}
        for entry in entries:
            if entry.prepared:
                known.update(entry.prepared)
        return known

    def _entry(self, x, key, output_size):
        """The entry of ``key`` (None: not cached), made from ``x`` when new."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        dtype = result_dtype((x, "x"), (self._weight, "weight"), (self._bias, "bias"))
        x = self._layout.data_in(x)
        problem = self._problem(x.shape, output_size)
        _check_positions(problem, self._TRANSPOSE, dtype)
        pass_problem = problem if self._TRANSPOSE else _padded_problem(problem)
        check_kernel_dims(pass_problem)
        entry = _Entry(dtype, problem, pass_problem,
                       channels_last.is_native(problem, self._layout))
        if key is not None:
            with self._lock:
                self._entries[key] = entry
                while len(self._entries) > self._cache_size:
                    self._entries.popitem(last=False)
        return entry

    def _weights(self, dtype):
        pair = self._compute.get(dtype)
        if pair is None:
            pair = self._compute[dtype] = tuple(_compute_arrays(dtype, self._weight,
                                                                self._bias))
        return pair

    def _run(self, x, output_size=None):
        x = as_array(x, "x")
        try:
            key = (x.shape, x.dtype, _frozen(output_size))
        except TypeError:   # an unhashable output_size: validated (and rejected) below
            key = None
        entry = self._entry(x, key, output_size)
        weight, bias = self._weights(entry.dtype)
        x = self._layout.data_in(x)
        if entry.native:
            x = _compute_arrays(entry.dtype, np.moveaxis(x, 1, -1))[0]
            return channels_last.pointwise_product(x, weight, bias,
                                                   transpose_weight=not self._TRANSPOSE)
        x = _compute_arrays(entry.dtype, x)[0]
        if not self._TRANSPOSE:
            x = _pad_input(x, entry.problem)
        return self._layout.data_out(_add_bias(self._run_pass(entry, x, weight), bias))

    def _run_pass(self, entry, x, weight):
        """The pass of ``run_pass`` with the chosen algorithm's prepared weight."""
        problem = entry.pass_problem
        if problem.batch == 0:
            return allocate_output(self._PASS, problem, x.dtype)
        module, plan = choose(self._PASS, problem, x.dtype.itemsize, current_budget())
        prepare = getattr(module, "prepare_weight", None)
        if prepare is None:
            return module.run(plan, x, weight)
        if entry.module is not module or entry.plan is not plan:
            entry.prepared = prepare(plan, weight, self._prepared_weights())
            entry.module, entry.plan = module, plan
        return module.run(plan, x, weight, entry.prepared)


def _frozen(value):
    """A hashable key of an ``output_size`` that tells apart every value the validation could
    treat differently (the type of each entry too: ``17.0`` is rejected where ``17`` is not);
    TypeError when it has none."""
    if isinstance(value, np.ndarray):
        return (np.ndarray, value.dtype.str, value.shape, _frozen(value.tolist()))
    if isinstance(value, (list, tuple)):
        return (type(value),) + tuple(_frozen(v) for v in value)
    hash(value)
    return (type(value), value)


def _read_only(array):
    view = array.view()
    view.flags.writeable = False
    return view


@docfiller
class PreparedConv(_PreparedLayer):
    r"""A convolution layer with its weight prepared once: ``layer(x)`` is
    ``fastdeconv.conv(x, weight, bias, **params)``, bit for bit, faster when called again.

    The weight and bias are validated and copied when the layer is made (later changes to the
    caller's arrays do not affect it). For each input shape and dtype it has seen (the
    ``cache_size`` most recent) the layer keeps the validated problem and, when the algorithm
    chosen for it has one, the weight in the algorithm's prepared form (the packed engine's
    micro-panels, Winograd's transformed weight), made on the first call of that shape.

    Parameters
    ----------
    weight : array_like, shape (C_out, C_in / groups, \*kernel_size)
        Kernels, PyTorch's ``Conv{1,2,3}d.weight`` layout (or ``weight_format``).
    bias : array_like, shape (C_out,), optional
    %(stride)s
    %(padding_conv)s
    %(dilation)s
    %(groups)s
    %(padding_mode)s
    %(data_format)s
    %(weight_format_conv)s
    cache_size : int, default 8
        Input shapes (with dtypes) whose problem and prepared weight the layer keeps, the
        most recently used first.

    Attributes
    ----------
    weight, bias : ndarray
        The layer's read-only copies.
    params : dict
        The keyword parameters.
    nbytes : int
        Memory the layer holds: weight and bias copies (and their float32 / float64 copies
        when a call needs another dtype) and the prepared weights, at most one per cached
        shape and usually one for all of them (the packed layout depends on the dtype and the
        GEMM's register tile, rarely on the shape).

    Raises
    ------
    ValueError, TypeError
        As :func:`fastdeconv.conv`, naming the parameter: the parameters are checked when the
        layer is made, the input on every new shape.

    See Also
    --------
    fastdeconv.conv : the function the layer computes.
    PreparedConvTranspose : the prepared transposed convolution.

    Notes
    -----
    Each spatial output size is

    .. math::

        o = \left\lfloor \frac{i + p_{before} + p_{after} - d (k - 1) - 1}{s} \right\rfloor + 1

    and the output dtype follows the inputs' as in :func:`fastdeconv.conv`.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    >>> layer = fastdeconv.PreparedConv(w, stride=2, padding=1)
    >>> x = rng.standard_normal((2, 4, 16, 16)).astype(np.float32)
    >>> y = layer(x)
    >>> y.shape == (2, 8, (16 + 2 - 3) // 2 + 1, (16 + 2 - 3) // 2 + 1)
    True
    >>> bool(np.array_equal(y, fastdeconv.conv(x, w, stride=2, padding=1)))
    True
    """

    def __init__(self, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros", data_format="channels_first", weight_format=None,
                 cache_size=8):
        super().__init__(weight, bias, dict(stride=stride, padding=padding, dilation=dilation,
                                            groups=groups, padding_mode=padding_mode),
                         data_format, weight_format, cache_size)

    def _problem(self, x_shape, output_size):
        return conv_problem(x_shape, self._weight.shape, **self._params)

    def __call__(self, x):
        """``fastdeconv.conv(x, weight, bias, **params)``.

        Parameters
        ----------
        x : array_like, shape (N, C_in, \\*spatial)
            In the layer's ``data_format``.

        Returns
        -------
        y : ndarray, shape (N, C_out, \\*out_spatial)
            ``(N, *out_spatial, C_out)`` channels-last.
        """
        return self._run(x)

    def __repr__(self):
        return f"PreparedConv(weight of shape {self._weight.shape}, {self._params})"


@docfiller
class PreparedConvTranspose(_PreparedLayer):
    r"""A transposed convolution layer with its weight prepared once: ``layer(x)`` is
    ``fastdeconv.conv_transpose(x, weight, bias, **params)``, bit for bit, faster when called
    again.

    Made and cached as :class:`PreparedConv` (the weight and bias copied: later changes to the
    caller's arrays do not affect the layer); the prepared form of the packed engine's stride
    phases is every phase's packed micro-panels, that of a large-stride sub-pixel convolution
    on the direct convolution its sub-pixel weight's packed panels.

    Parameters
    ----------
    weight : array_like, shape (C_in, C_out / groups, \*kernel_size)
        Kernels, PyTorch's ``ConvTranspose{1,2,3}d.weight`` layout (or ``weight_format``).
    bias : array_like, shape (C_out,), optional
    %(stride)s
    %(padding_transpose)s
    %(output_padding)s
    %(dilation)s
    %(groups)s
    %(data_format)s
    %(weight_format_transpose)s
    cache_size : int, default 8
        Input shapes (with dtypes and ``output_size``) whose problem and prepared weight the
        layer keeps, the most recently used first.

    Attributes
    ----------
    weight, bias : ndarray
        The layer's read-only copies.
    params : dict
        The keyword parameters.
    nbytes : int
        Memory the layer holds (see :class:`PreparedConv`).

    Raises
    ------
    ValueError, TypeError
        As :func:`fastdeconv.conv_transpose`, naming the parameter: the parameters are
        checked when the layer is made, the input (and ``output_size``) on every new shape.

    See Also
    --------
    fastdeconv.conv_transpose : the function the layer computes.
    PreparedConv : the prepared convolution.

    Notes
    -----
    Each spatial output size is

    .. math::

        o = (i - 1) s - p_{before} - p_{after} + d (k - 1) + 1 + p_{out}

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((16, 8, 4, 4)).astype(np.float32)  # (C_in, C_out, kH, kW)
    >>> b = np.zeros(8, np.float32)
    >>> layer = fastdeconv.PreparedConvTranspose(w, b, stride=2, padding=1)
    >>> x = rng.standard_normal((1, 16, 8, 8)).astype(np.float32)
    >>> y = layer(x)
    >>> y.shape == (1, 8, (8 - 1) * 2 - 2 + 4, (8 - 1) * 2 - 2 + 4)
    True
    >>> bool(np.array_equal(y, fastdeconv.conv_transpose(x, w, b, stride=2, padding=1)))
    True
    >>> layer(x, output_size=(17, 17)).shape   # output_size per call, as in PyTorch
    (1, 8, 17, 17)
    """

    _TRANSPOSE = True
    _PASS = "backward_input"

    def __init__(self, weight, bias=None, *, stride=1, padding=0, output_padding=0,
                 dilation=1, groups=1, data_format="channels_first", weight_format=None,
                 cache_size=8):
        super().__init__(weight, bias, dict(stride=stride, padding=padding,
                                            output_padding=output_padding, dilation=dilation,
                                            groups=groups),
                         data_format, weight_format, cache_size)

    def _problem(self, x_shape, output_size):
        return conv_transpose_problem(
            x_shape, self._weight.shape, **self._params,
            output_size=_output_size_in(output_size, self._layout, len(x_shape)))

    def __call__(self, x, output_size=None):
        """``fastdeconv.conv_transpose(x, weight, bias, output_size=output_size, **params)``.

        Parameters
        ----------
        x : array_like, shape (N, C_in, \\*spatial)
            In the layer's ``data_format``.
        output_size : sequence of int, optional
            As in :func:`fastdeconv.conv_transpose` (and PyTorch's
            ``ConvTranspose*.forward``).

        Returns
        -------
        y : ndarray, shape (N, C_out, \\*out_spatial)
            ``(N, *out_spatial, C_out)`` channels-last.
        """
        return self._run(x, output_size)

    def __repr__(self):
        return f"PreparedConvTranspose(weight of shape {self._weight.shape}, {self._params})"
