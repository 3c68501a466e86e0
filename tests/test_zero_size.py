"""One zero-size policy for every operator (documented in docs/user_guide/reliability.rst).

* ``N = 0`` (an empty batch): every operator returns an empty result of the documented shape,
  and every gradient of an empty batch is empty too (the weight gradient is zeros).
* ``C = 0``: the channel-wise operators (resize, pooling, unpooling, pixel shuffle and their
  gradients) return an empty result; convolutions reject a weight with a zero-size
  dimension (as PyTorch does), so ``x`` cannot have zero channels there.
* A zero spatial size is rejected, naming ``x``, by every operator whose output size is
  computed from it (convolutions, resize, pooling, unpooling); pixel shuffle is a pure
  permutation and passes it through.
"""

import numpy as np
import pytest

import fastdeconv
from fastdeconv._operators import OPERATORS


def _conv(x):
    return fastdeconv.conv(x, np.ones((2, x.shape[1], 3)), padding=1)


def _conv_transpose(x):
    return fastdeconv.conv_transpose(x, np.ones((x.shape[1], 2, 3)), stride=2)


def _conv_backward(x):
    w = np.ones((2, x.shape[1], 3))
    gx, gw, gb = fastdeconv.conv_backward(_conv(x), x, w, padding=1)
    assert gw.shape == w.shape and not gw.any() and gb.shape == (2,) and not gb.any()
    return gx


def _conv_transpose_backward(x):
    w = np.ones((x.shape[1], 2, 3))
    gx, gw, gb = fastdeconv.conv_transpose_backward(_conv_transpose(x), x, w, stride=2)
    assert gw.shape == w.shape and not gw.any() and gb.shape == (2,) and not gb.any()
    return gx


def _resize(x):
    return fastdeconv.resize(x, 7, mode="linear")


def _resize_backward(x):
    return fastdeconv.resize_backward(_resize(x), x.shape, 7, mode="linear")


def _max_pool(x):
    return fastdeconv.max_pool(x, 2)


def _max_unpool(x):
    y, idx = fastdeconv.max_pool(x, 2, return_indices=True)
    return fastdeconv.max_unpool(y, idx, 2)


def _max_pool_backward(x):
    y, idx = fastdeconv.max_pool(x, 2, return_indices=True)
    return fastdeconv.max_pool_backward(y, idx, x.shape)


def _max_unpool_backward(x):
    y, idx = fastdeconv.max_pool(x, 2, return_indices=True)
    return fastdeconv.max_unpool_backward(fastdeconv.max_unpool(y, idx, 2), idx)


def _pixel_shuffle(x):
    return fastdeconv.pixel_shuffle(x.repeat(2, axis=1), 2)    # 1-d: C -> 2 C -> C, length x 2


# public function: (output length for an input of length 4, output channels for 3 input
# channels, channel-wise?)
CALLS = {
    "conv": (_conv, 4, 2, False),
    "conv_transpose": (_conv_transpose, 9, 2, False),
    "conv_backward": (_conv_backward, 4, 3, False),
    "conv_transpose_backward": (_conv_transpose_backward, 4, 3, False),
    "resize": (_resize, 7, 3, True),
    "resize_backward": (_resize_backward, 4, 3, True),
    "max_pool": (_max_pool, 2, 3, True),
    "max_unpool": (_max_unpool, 4, 3, True),
    "max_pool_backward": (_max_pool_backward, 4, 3, True),
    "max_unpool_backward": (_max_unpool_backward, 2, 3, True),
    "pixel_shuffle": (_pixel_shuffle, 8, 3, True),
}

# Every registered operator and its backward (pixel_unshuffle, the backward of pixel_shuffle,
# is checked in pixel_shuffle's row): a new operator fails here until CALLS has its rows.
NAMES = [name for op in OPERATORS for name in (op.name, op.backward.__name__)
         if name != "pixel_unshuffle"]


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_batch_gives_an_empty_result_of_the_documented_shape(name):
    op, length, channels, _ = CALLS[name]
    assert op(np.ones((0, 3, 4))).shape == (0, channels, length)


@pytest.mark.parametrize("name", NAMES)
def test_zero_channels_are_empty_for_channelwise_operators_and_rejected_by_convolutions(name):
    op, length, _, channelwise = CALLS[name]
    x = np.ones((2, 0, 4))
    if channelwise:
        assert op(x).shape == (2, 0, length)
    else:
        with pytest.raises(ValueError, match=r"weight must not have zero-size dimensions"):
            op(x)


@pytest.mark.parametrize("name", NAMES)
def test_a_zero_spatial_size_is_rejected_naming_x_except_by_pixel_shuffle(name):
    op, _, _, _ = CALLS[name]
    x = np.ones((2, 3, 0))
    if name == "pixel_shuffle":
        assert op(x).shape == (2, 3, 0)
        assert fastdeconv.pixel_unshuffle(x, 2).shape == (2, 6, 0)
    else:
        with pytest.raises(ValueError, match=r"(?<![A-Za-z_])x(?![A-Za-z_])"):
            op(x)


def test_an_empty_batch_has_no_32_bit_blas_limit():
    # no kernel runs: the 2**31-positions limit of the GEMMs does not apply
    assert fastdeconv.conv(np.zeros((0, 1, 1)), np.ones((1, 1, 1)),
                           padding=2**40).shape == (0, 1, 2**41 + 1)
    assert fastdeconv.conv_transpose(np.zeros((0, 1, 2)), np.ones((1, 1, 1)),
                                     stride=2**40).shape == (0, 1, 2**40 + 1)
