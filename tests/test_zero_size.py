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
    return fastdeconv.pixel_unshuffle(fastdeconv.pixel_shuffle(x, 1), 1)


# operator, expected output length for an input of length 4, channel-wise?
OPERATORS = {
    "conv": (_conv, 4, False),
    "conv_transpose": (_conv_transpose, 9, False),
    "conv_backward": (_conv_backward, 4, False),
    "conv_transpose_backward": (_conv_transpose_backward, 4, False),
    "resize": (_resize, 7, True),
    "resize_backward": (_resize_backward, 4, True),
    "max_pool": (_max_pool, 2, True),
    "max_unpool": (_max_unpool, 4, True),
    "max_pool_backward": (_max_pool_backward, 4, True),
    "max_unpool_backward": (_max_unpool_backward, 2, True),
    "pixel_shuffle": (_pixel_shuffle, 4, True),
}


@pytest.mark.parametrize("name", OPERATORS)
def test_an_empty_batch_gives_an_empty_result_of_the_documented_shape(name):
    op, length, _ = OPERATORS[name]
    out = op(np.ones((0, 3, 4)))
    assert out.shape[0] == 0 and out.shape[2:] == (length,), out.shape
    assert out.shape[1] in (2, 3)


@pytest.mark.parametrize("name", OPERATORS)
def test_zero_channels_are_empty_for_channelwise_operators_and_rejected_by_convolutions(name):
    op, length, channelwise = OPERATORS[name]
    x = np.ones((2, 0, 4))
    if channelwise:
        assert op(x).shape == (2, 0, length)
    else:
        with pytest.raises(ValueError, match=r"weight must not have zero-size dimensions"):
            op(x)


@pytest.mark.parametrize("name", OPERATORS)
def test_a_zero_spatial_size_is_rejected_naming_x_except_by_pixel_shuffle(name):
    op, _, _ = OPERATORS[name]
    x = np.ones((2, 3, 0))
    if name == "pixel_shuffle":
        assert op(x).shape == (2, 3, 0)
    else:
        with pytest.raises(ValueError, match=r"(?<![A-Za-z_])x(?![A-Za-z_])"):
            op(x)
