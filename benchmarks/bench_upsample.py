"""Upsampling: ``fastdeconv.resize`` (2x / 4x nearest, linear, cubic and their adjoints),
``max_pool`` / ``max_unpool`` 2x2 with their gradients, and ``pixel_shuffle``, on a
``(16, 64, 64, 64)`` float32 batch (the batch of ``python -m fastdeconv bench --upsampling``).

Threads are pinned to one as in the layer suite. Set ``ASV_SKIP_SLOW=1`` to skip the 4x
grid points (their outputs are 268 MB).
"""

import os

import numpy as np
from threadpoolctl import threadpool_limits

from .common import _fastdeconv_import, fastdeconv

SHAPE = (16, 64, 64, 64)
SEED = 1234


class _Pinned:
    """Pins every thread pool to one thread in ``setup``; ``teardown`` restores it."""

    timeout = 180
    _threads = None

    def _pin(self):
        if fastdeconv is None:
            raise NotImplementedError(f"fastdeconv is not importable: {_fastdeconv_import.error}")
        if not hasattr(fastdeconv, "resize"):
            raise NotImplementedError("this commit has no upsampling operators")
        self._threads = threadpool_limits(limits=1)
        self.x = np.random.default_rng(SEED).standard_normal(SHAPE, dtype=np.float32)

    def teardown(self, *params):
        if self._threads is not None:  # asv also calls teardown after a skipping setup
            self._threads.restore_original_limits()

    def peakmem_reference(self, *params):
        """Empty: asv's peak memory includes what ``setup`` allocated; this is the baseline."""


class Resize(_Pinned):
    params = [["nearest", "linear", "cubic"],  # mode
              [2, 4]]                          # scale factor
    param_names = ["mode", "scale"]

    def setup(self, mode, scale):
        if scale == 4 and os.environ.get("ASV_SKIP_SLOW", "") not in ("", "0"):
            raise NotImplementedError("ASV_SKIP_SLOW is set")
        self._pin()
        out = tuple(n * scale for n in SHAPE[2:])
        self.grad = np.random.default_rng(SEED + 1).standard_normal(SHAPE[:2] + out,
                                                                    dtype=np.float32)

    def time_forward(self, mode, scale):
        fastdeconv.resize(self.x, scale_factor=scale, mode=mode)

    def peakmem_forward(self, mode, scale):
        fastdeconv.resize(self.x, scale_factor=scale, mode=mode)

    def time_backward(self, mode, scale):
        fastdeconv.resize_backward(self.grad, SHAPE, scale_factor=scale, mode=mode)

    def peakmem_backward(self, mode, scale):
        fastdeconv.resize_backward(self.grad, SHAPE, scale_factor=scale, mode=mode)


class ResizeConventions(_Pinned):
    """2x linear/cubic through the ONNX coordinate modes and with antialiased 0.5x."""

    params = [["tf1_linear", "tf2_bicubic", "antialias_half"]]  # configuration
    param_names = ["configuration"]
    _KWARGS = {
        "tf1_linear": dict(scale_factor=2, mode="linear",
                           coordinate_transformation_mode="asymmetric"),
        "tf2_bicubic": dict(scale_factor=2, mode="cubic", cubic_coeff_a=-0.5,
                            coordinate_transformation_mode="half_pixel", exclude_outside=True),
        "antialias_half": dict(scale_factor=0.5, mode="linear", antialias=True),
    }

    def setup(self, configuration):
        self._pin()

    def time_forward(self, configuration):
        fastdeconv.resize(self.x, **self._KWARGS[configuration])


class MaxPoolUnpool(_Pinned):
    params = [["max_pool", "max_unpool"]]  # operator
    param_names = ["op"]

    def setup(self, op):
        self._pin()
        self.y, self.indices = fastdeconv.max_pool(self.x, 2, return_indices=True)

    def time_forward(self, op):
        if op == "max_pool":
            fastdeconv.max_pool(self.x, 2, return_indices=True)
        else:
            fastdeconv.max_unpool(self.y, self.indices, 2)

    def peakmem_forward(self, op):
        self.time_forward(op)

    def time_backward(self, op):
        if op == "max_pool":
            fastdeconv.max_pool_backward(self.y, self.indices, SHAPE)
        else:
            fastdeconv.max_unpool_backward(self.x, self.indices)


class PixelShuffle(_Pinned):
    params = [["CRD", "DCR"]]  # order
    param_names = ["order"]

    def setup(self, order):
        self._pin()

    def time_shuffle(self, order):
        fastdeconv.pixel_shuffle(self.x, 2, order=order)

    def time_unshuffle(self, order):
        fastdeconv.pixel_unshuffle(self.x, 2, order=order)


class DataFormat(_Pinned):
    """Every operator of the family and its backward pass in both data layouts (the
    channels-last array is the C-contiguous ``(N, *spatial, C)`` form of the same batch)."""

    params = [["resize nearest 2x", "resize linear 2x", "resize cubic 2x", "max_pool 2x2",
               "max_unpool 2x2", "pixel_shuffle 2"],    # operator
              ["channels_first", "channels_last"]]      # data_format
    param_names = ["op", "data_format"]

    def setup(self, op, data_format):
        self._pin()
        if data_format == "channels_last":
            self.x = np.ascontiguousarray(np.moveaxis(self.x, 1, -1))
        kw = dict(data_format=data_format)
        name, _, arg = op.partition(" ")
        if name == "resize":
            kw.update(scale_factor=2, mode=arg.split()[0])
            grad = fastdeconv.resize(self.x, **kw)
            self._forward = lambda: fastdeconv.resize(self.x, **kw)
            self._backward = lambda: fastdeconv.resize_backward(grad, self.x.shape, **kw)
        elif name == "pixel_shuffle":
            self._forward = lambda: fastdeconv.pixel_shuffle(self.x, 2, **kw)
            self._backward = lambda: fastdeconv.pixel_unshuffle(self.x, 2, **kw)
        else:
            y, indices = fastdeconv.max_pool(self.x, 2, return_indices=True, **kw)
            if name == "max_pool":
                self._forward = lambda: fastdeconv.max_pool(self.x, 2, return_indices=True, **kw)
                self._backward = lambda: fastdeconv.max_pool_backward(y, indices, self.x.shape,
                                                                      **kw)
            else:
                self._forward = lambda: fastdeconv.max_unpool(y, indices, 2, **kw)
                self._backward = lambda: fastdeconv.max_unpool_backward(self.x, indices, **kw)

    def time_forward(self, op, data_format):
        self._forward()

    def time_backward(self, op, data_format):
        self._backward()
