"""XLA's general convolution as one canonical fastdeconv call (``jax.lax``'s semantics).

XLA's ``Conv`` (``jax.lax.conv_general_dilated``) dilates the input by ``lhs_dilation``
(``L - 1`` zeros between neighbours), pads it by ``(lo, hi)`` per spatial dimension (negative
values crop), correlates it with the kernel dilated by ``rhs_dilation`` and keeps every
``window_strides``-th output. Along one dimension with input size ``n`` and dilated kernel
extent ``k``, output ``o`` reads the dilated, padded input at ``o * S + t * D``, i.e. the
input ``j`` with ``j * L = o * S + t * D - lo``.

* ``L == 1``: that is ``fastdeconv.conv`` with ``padding=(lo, hi)``; a negative ``lo`` or
  ``hi`` crops the input first.
* ``L > 1`` (a transposed convolution): with the kernel flipped (``t -> K - 1 - t``), the
  stride-1 output is ``fastdeconv.conv_transpose`` with ``stride=L`` and
  ``padding=(k - 1 - lo, k - 1 - hi)``: input ``j`` lands on ``j * L - (k - 1 - lo) + t' D``.
  A negative value there (padding beyond the kernel's reach) means zeros outside the
  scattered range: output padding at the end when below ``max(L, D)``, else explicit zeros
  (``np.pad``). Window strides ``S > 1`` then keep every ``S``-th output (``[::S]``).

``feature_group_count`` is fastdeconv's ``groups``. ``batch_group_count`` ``B`` (how XLA
computes weight gradients of grouped convolutions: batch block ``b`` of the input meets
output-channel block ``b`` of the kernel) is a grouped convolution with ``groups=B`` after
moving the batch blocks into the channels (a reshape of the input). Everything around the
one fastdeconv call is data movement, shown by ``explain=True``
(:mod:`fastdeconv.compat._expressions`).
"""

from dataclasses import dataclass

import numpy as np

from .._formats import SPATIAL_LETTERS
from .._geometry import resolve_padding
from .._validation import result_dtype
from ._call import Operand, canonical_call, check_explain, render
from ._expressions import pad_step, slice_step, transpose_step

__all__ = ["ZerosCall", "general_call", "padding_keyword"]


@dataclass(frozen=True)
class ZerosCall:
    """A result without any contribution of the input (an empty output, or every input
    position cropped away): zeros of the framework's output shape."""

    shape: tuple
    dtype: np.dtype

    def run(self):
        return np.zeros(self.shape, self.dtype)

    def text(self):
        return f"np.zeros({render(tuple(self.shape))}, dtype=np.{np.dtype(self.dtype).name})"

    def finish(self, explain):
        return self.text() if check_explain(explain) else self.run()


def padding_keyword(pairs):
    """fastdeconv's ``padding``: one int when symmetric and equal, one int per dimension
    when symmetric, else the pairs."""
    pairs = tuple((int(b), int(a)) for b, a in pairs)
    if all(b == a for b, a in pairs):
        if len(set(pairs)) == 1:
            return pairs[0][0]
        return tuple(b for b, _ in pairs)
    return pairs


def _padding_text(pairs, output_padding, in_size, kernel, stride, dilation, transpose):
    """``padding`` (and ``output_padding``) as fastdeconv keywords: ``"same"`` where that is
    what the pairs are (the caller's ``"SAME"`` shows as ``"same"``), else the numbers."""
    pairs = tuple(pairs)
    if any(map(any, pairs)):
        same, implied = resolve_padding("same", tuple(in_size), tuple(kernel), tuple(stride),
                                        tuple(dilation), transpose=transpose)
        if same == pairs and tuple(implied) == tuple(output_padding):
            return dict(padding="same")
    return dict(padding=padding_keyword(pairs), output_padding=tuple(output_padding))


def _weight_letters(rhs_perm, n):
    """The kernel array's layout in fastdeconv's letters (``O``, ``I``, ``HW``...)."""
    letters = [""] * (n + 2)
    letters[rhs_perm[0]], letters[rhs_perm[1]] = "O", "I"
    for letter, axis in zip(SPATIAL_LETTERS[n], rhs_perm[2:]):
        letters[axis] = letter
    return "".join(letters)


def _conv_weight(rhs, rhs_perm, flipped, n):
    """``fastdeconv.conv``'s weight: the kernel as given (flipped when ``flipped``)."""
    w = rhs.flip(rhs_perm[2:]) if flipped else rhs
    if n not in SPATIAL_LETTERS:
        return w.transpose(rhs_perm), None
    layout = _weight_letters(rhs_perm, n)
    return w, None if layout == "OI" + SPATIAL_LETTERS[n] else layout


def _transpose_weight(rhs, rhs_perm, flipped, n, groups):
    """``fastdeconv.conv_transpose``'s weight ``(C_in, C_out / groups, *kernel)``: the
    kernel spatially flipped, its per-group blocks regrouped when ``groups > 1``."""
    w = rhs if flipped else rhs.flip(rhs_perm[2:])
    if groups == 1 and n in SPATIAL_LETTERS:
        layout = _weight_letters(rhs_perm, n)
        return w, None if layout == "IO" + SPATIAL_LETTERS[n] else layout
    if groups == 1:
        return w.transpose((rhs_perm[1], rhs_perm[0]) + tuple(rhs_perm[2:])), None
    w = w.transpose(rhs_perm)                      # (O, I, *kernel)
    c_out, c_in, *kernel = w.value.shape
    w = w.reshape((groups, c_out // groups, c_in, *kernel)).swapaxes(1, 2)
    return w.reshape((groups * c_in, c_out // groups, *kernel)), None


def _batch_groups_to_channels(x, groups, last, n):
    """``(B * N', C, ...)`` -> ``(N', B * C, ...)``: batch block ``b`` becomes channel block
    ``b`` (channels-first or channels-last ``x``)."""
    shape = x.value.shape
    split = x.reshape((groups, shape[0] // groups) + shape[1:])
    if last:
        moved = split.transpose(tuple(range(1, n + 2)) + (0, n + 2))
        return moved.reshape((shape[0] // groups,) + shape[1:n + 1] + (groups * shape[-1],))
    moved = split.transpose((1, 0) + tuple(range(2, n + 3)))
    return moved.reshape((shape[0] // groups, groups * shape[1]) + shape[2:])


def _output_size(n_in, lhs_dilation, pair, k_eff, stride, dim):
    dilated = max(0, 1 + lhs_dilation * (n_in - 1))
    padded = dilated + pair[0] + pair[1]
    if padded < 0:
        raise ValueError(
            f"negative padding is larger than the (dilated) input along spatial dimension "
            f"{dim}: padding {pair} for an input of size {n_in} (dilated to {dilated})")
    return max(0, (padded - k_eff) // stride + 1)


def general_call(lhs, rhs, *, lhs_perm, rhs_perm, out_perm, window_strides, padding,
                 lhs_dilation, rhs_dilation, feature_group_count, batch_group_count,
                 rhs_flipped=False):
    """The canonical call of ``conv_general_dilated`` (validated arguments).

    Parameters
    ----------
    lhs, rhs : Expression
        The operands (text in the caller's names, value).
    lhs_perm, rhs_perm, out_perm : tuple of int
        JAX's dimension permutations: ``(N, C, *spatial)`` axes of ``lhs`` and the output,
        ``(O, I, *spatial)`` axes of the kernel, spatial dimensions in the kernel's order.
    window_strides, lhs_dilation, rhs_dilation : tuple of int
    padding : tuple of (int, int)
        Explicit ``(lo, hi)`` per spatial dimension, negative values crop.
    feature_group_count, batch_group_count : int
    rhs_flipped : bool
        The kernel is ``rhs`` flipped along its spatial axes (``conv_transpose``'s
        ``transpose_kernel``, whose O/I swap the caller puts into ``rhs_perm``).

    Returns
    -------
    CanonicalCall or ZerosCall
    """
    n = len(window_strides)
    in_size = [lhs.value.shape[a] for a in lhs_perm[2:]]
    kernel = [rhs.value.shape[a] for a in rhs_perm[2:]]
    k_eff = [d * (k - 1) + 1 for k, d in zip(kernel, rhs_dilation)]
    out_size = [_output_size(*args, dim) for dim, args in enumerate(
        zip(in_size, lhs_dilation, padding, k_eff, window_strides))]
    canonical_out = ((lhs.value.shape[lhs_perm[0]] // batch_group_count,
                      rhs.value.shape[rhs_perm[0]]) + tuple(out_size))
    out_shape = tuple(canonical_out[i] for i in np.argsort(out_perm))
    dtype = result_dtype((lhs.value, "lhs"), (rhs.value, "rhs"))
    if 0 in out_size:
        return ZerosCall(out_shape, dtype)

    identity = tuple(range(n + 2))
    channels_last = (0, n + 1) + tuple(range(1, n + 1))
    last = tuple(lhs_perm) == channels_last
    x = lhs if last else lhs.transpose(lhs_perm)
    spatial_axes = tuple(range(1, n + 1)) if last else tuple(range(2, n + 2))
    groups = feature_group_count
    if batch_group_count > 1:
        x = _batch_groups_to_channels(x, batch_group_count, last, n)
        groups = batch_group_count
    layout = dict(data_format="channels_last" if last else "channels_first")
    current = channels_last if last else identity
    steps = [transpose_step([current[j] for j in np.argsort(out_perm)])]

    if all(d == 1 for d in lhs_dilation):   # a convolution: negative padding crops the input
        crop = [slice(None)] * (n + 2)
        for axis, (lo, hi), size in zip(spatial_axes, padding, in_size):
            start, stop = max(-lo, 0), size - max(-hi, 0)
            if stop <= start:
                return ZerosCall(out_shape, dtype)
            crop[axis] = slice(start or None, stop if stop < size else None)
        x = x.index(crop)
        w, weight_format = _conv_weight(rhs, rhs_perm, rhs_flipped, n)
        cropped_size = [x.value.shape[axis] for axis in spatial_axes]
        pairs = [(max(lo, 0), max(hi, 0)) for lo, hi in padding]
        padding_keywords = _padding_text(pairs, (0,) * n, cropped_size, kernel, window_strides,
                                         rhs_dilation, False)
        padding_keywords.pop("output_padding", None)
        keywords = dict(stride=window_strides, **padding_keywords, dilation=rhs_dilation,
                        groups=groups, **layout, weight_format=weight_format)
        return canonical_call("conv", [Operand(x.text, x.value), Operand(w.text, w.value)],
                              keywords, [s for s in steps if s is not None])

    # a transposed convolution (stride L), then zeros beyond its reach and window strides
    pairs, output_padding, zeros = [], [], [(0, 0)] * (n + 2)
    for axis, (lo, hi), k, n_in, stride, dilation in zip(
            spatial_axes, padding, k_eff, in_size, lhs_dilation, rhs_dilation):
        before, after = k - 1 - lo, k - 1 - hi
        extra = max(-after, 0)
        at_end = extra if extra < max(stride, dilation) else 0
        pairs.append((max(before, 0), max(after, 0)))
        output_padding.append(at_end)
        zeros[axis] = (max(-before, 0), extra - at_end)
        if (n_in - 1) * stride - sum(pairs[-1]) + k + at_end < 1:
            return ZerosCall(out_shape, dtype)      # every input position cropped away
    w, weight_format = _transpose_weight(rhs, rhs_perm, rhs_flipped, n, groups)
    keywords = dict(stride=lhs_dilation,
                    **_padding_text(pairs, output_padding, in_size, kernel, lhs_dilation,
                                    rhs_dilation, True),
                    dilation=rhs_dilation, groups=groups, **layout, weight_format=weight_format)
    subsample = [slice(None)] * (n + 2)
    for axis, s in zip(spatial_axes, window_strides):
        subsample[axis] = slice(None, None, s) if s > 1 else slice(None)
    steps = [pad_step(zeros), slice_step(subsample)] + steps
    return canonical_call("conv_transpose",
                          [Operand(x.text, x.value), Operand(w.text, w.value)],
                          keywords, [s for s in steps if s is not None])
