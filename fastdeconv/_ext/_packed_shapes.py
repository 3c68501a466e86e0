"""The packed engine's shape arithmetic done in Python and NumPy (used by
:mod:`fastdeconv._ext._packed_conv` when it makes its tables): how a run pads ``x``, the
validated stride phases, and where each column of a pre-packed A lands."""
import math

import numpy as np

from .. import _scratch
from . import _layout_kernels
from ._packed_gemm import _check_per_dim

__all__ = ["apack_destinations", "checked_phases", "live_phases", "one_tap_phases", "pad_plan",
           "padded", "zero_border"]


def pad_plan(spatial, pad, extent):
    """How a run pads x: None when it reads x in place (no padding before any dimension and
    no read past its end), else ``(extent, dst, src)``: a zeroed copy of spatial size
    ``extent`` whose ``dst`` slices take x's ``src`` slices (negative padding crops)."""
    if all(p == 0 for p in pad) and all(e <= n for e, n in zip(extent, spatial)):
        return None
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    for n, p, e in zip(spatial, pad, extent):
        lo_src, lo_dst = max(0, -p), max(0, p)
        length = max(0, min(n - lo_src, e - lo_dst))
        src.append(slice(lo_src, lo_src + length))
        dst.append(slice(lo_dst, lo_dst + length))
    return tuple(extent), tuple(dst), tuple(src)


def padded(x, plan, threads=1):
    """``(xp, block)``: ``x`` padded as :func:`pad_plan` says, in a block of the engine's
    scratch pool (:mod:`fastdeconv._scratch`; give ``block`` back when the run ends), or
    ``(x, None)`` when the plan reads ``x`` in place. Every cell that ``x`` does not fill is
    zeroed (a block holds what its last user left), in the same pass as the copy on
    ``threads`` threads (``_layout_kernels.channels_first_padded``: 2 % of ``resnet_s2``'s
    profile was NumPy's zeroing of the border and assignment of the interior)."""
    if plan is None:
        return x, None
    extent, dst, src = plan
    shape = x.shape[:2] + extent
    xp, block = _scratch.take_array(shape, x.dtype, "padded copy of x")
    if x.flags.c_contiguous and x.dtype in (np.float32, np.float64):   # one pass, threads
        pad_before = tuple(d.start - s.start for d, s in zip(dst[2:], src[2:]))
        _layout_kernels.channels_first_padded(x.reshape(-1, math.prod(x.shape[2:])),
                                              xp.reshape(-1, math.prod(extent)), x.shape[2:],
                                              extent, pad_before, threads)
    else:
        zero_border(xp, dst[2:], 2)
        xp[dst] = x[src]
    return xp, block


def zero_border(array, boxes, first_axis):
    """Zero the cells of ``array`` outside ``boxes`` (:func:`pad_plan`'s ``dst`` slices of
    the spatial axes, which start at ``first_axis``): the border of a padded copy, whatever
    its block held before."""
    for i, box in enumerate(boxes):
        before = (slice(None),) * (first_axis + i)
        array[before + (slice(0, box.start),)] = 0
        array[before + (slice(box.stop, None),)] = 0


def checked_phases(phases, ndim, kernel_size, stride, out_size):
    """The phases as (taps, sub_pad, first, sub_out) tuples, validated."""
    checked, seen = [], set()
    for index, phase in enumerate(phases):
        try:
            taps, pad, first = phase["taps"], phase["sub_pad"], phase["first"]
        except (TypeError, KeyError):
            raise ValueError(f"phases[{index}] must be a dict with taps, sub_pad and first, "
                             f"got {phase!r}") from None
        pad = _check_per_dim(pad, ndim, f"phases[{index}]['sub_pad']", None)
        first = _check_per_dim(first, ndim, f"phases[{index}]['first']", 0)
        if (not isinstance(taps, (tuple, list)) or len(taps) != ndim
                or not all(isinstance(t, (tuple, list)) and len(t) > 0 and all(
                    isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < k
                    for v in t) for t, k in zip(taps, kernel_size))):
            raise ValueError(f"phases[{index}]['taps'] must hold, per dimension, a non-empty "
                             f"tuple of taps in [0, {kernel_size}), got {taps!r}")
        if any(f >= s for f, s in zip(first, stride)) or first in seen:
            raise ValueError(f"phases[{index}]['first'] must be below the stride {stride} and "
                             f"differ from every other phase's, got {first}")
        seen.add(first)
        sub_out = tuple(max(0, -(-(n - f) // s)) for n, f, s in zip(out_size, first, stride))
        taps = tuple(tuple(int(v) for v in t) for t in taps)
        checked.append((taps, pad, first, sub_out))
    return checked


def live_phases(checked):
    """The phases of :func:`checked_phases` that have outputs (a phase given with none
    writes nothing)."""
    return [p for p in checked if 0 not in p[3]]


def one_tap_phases(checked, k_numel):
    """Whether the live phases (:func:`live_phases`) each take one tap of the kernel, every
    tap once, and all read the same B (the same sub-padding and number of outputs: a kernel
    equal to the stride, or smaller with zeros between, no padding). Then one GEMM of every
    live phase's rows replaces a GEMM per phase, its B packed once instead of once a phase."""
    live = live_phases(checked)
    return (len(live) > 1 and len(live) == k_numel
            and all(all(len(t) == 1 for t in p[0]) for p in live)
            and len({p[0] for p in live}) == len(live)      # every tap once
            and len({(p[1], p[3]) for p in live}) == 1)


def apack_destinations(k, m, mr, kc):
    """Where each column of a pre-packed A starts, and the width of its KC slice.

    Parameters
    ----------
    k, m : int
        Columns and rows of A.
    mr, kc : int
        Rows of a register tile (MR) and columns of a full KC slice.

    Returns
    -------
    numpy.ndarray
        C-contiguous intp array of shape ``(2 k,)`` (the layout ``fd_pack_a_phases`` reads):
        ``out[2 kk] = k0 * m_pad + (kk - k0) * mr`` and ``out[2 kk + 1] = min(kc, k - k0)``
        with ``k0 = kk // kc * kc`` and ``m_pad`` = m rounded up to mr, so that column kk of
        the micro-panel of rows ``[i0, i0 + mr)`` starts at ``out[2 kk] + i0 * out[2 kk + 1]``
        (the layout at the top of ``gemm/fd_pack.h``).
    """
    kk = np.arange(k, dtype=np.intp)
    k0 = kk // kc * kc
    m_pad = -(-m // mr) * mr
    return np.stack([k0 * m_pad + (kk - k0) * mr, np.minimum(kc, k - k0)], axis=1).reshape(-1)
