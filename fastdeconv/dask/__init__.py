"""Placeholder."""
from ._conv import conv, conv_backward, conv_transpose, conv_transpose_backward
