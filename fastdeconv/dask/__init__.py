"""Placeholder."""
from ._conv import conv, conv_backward, conv_transpose, conv_transpose_backward
from ._upsample import max_pool, max_unpool, pixel_shuffle, pixel_unshuffle, resize
