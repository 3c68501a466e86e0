r"""
Checkerboards, forward and backward
===================================

Odena, Dumoulin and Olah ("Deconvolution and checkerboard artifacts", Distill, 2016) made
two claims:

1. **Forward.** A transposed convolution with stride :math:`s` writes each input cell into
   :math:`k` output cells, :math:`s` apart from its neighbour's: when :math:`s` does not
   divide :math:`k` the output cells receive different numbers of kernel taps (the *overlap
   pattern*), so even a constant input gives a checkerboard. A kernel size that is a
   multiple of the stride evens out the counts, but random (or trained) weights still give
   each phase a different *sum* of taps.
2. **Backward.** The gradient of a strided convolution with respect to its input is a
   transposed convolution of the output's gradient, so it has the same pattern, even when
   the loss is perfectly smooth. A network trained through strided convolutions (a GAN's
   discriminator, an encoder) receives checkerboard gradients.

Both are reproduced here with :mod:`fastdeconv`, together with the two fixes: resize then
convolve, and ICNR initialisation, scored with
:func:`fastdeconv.checkerboard.checkerboard_score`.
"""

import matplotlib.pyplot as plt
import numpy as np

import fastdeconv
from fastdeconv.checkerboard import checkerboard_score, icnr, overlap_map
from fastdeconv.equivalences import resize_conv_as_conv_transpose

rng = np.random.default_rng(1)


def phase_spread(image, s=2, border=3):
    """Spread of the period-``s`` phase means of an image's interior over their largest magnitude."""
    inner = image[border:-border, border:-border]
    h, w = (inner.shape[0] // s) * s, (inner.shape[1] // s) * s
    phases = inner[:h, :w].reshape(h // s, s, w // s, s).mean(axis=(0, 2))
    return float(np.ptp(phases) / np.abs(phases).max())


# %%
# 1. The forward pass: the overlap pattern and the weights' sums
# --------------------------------------------------------------
# :func:`~fastdeconv.checkerboard.overlap_map` counts, for every output cell, the kernel taps
# that land on it. Stride 2 with a 3x3 kernel: the interior cells get 4, 2, 2 or 1 taps;
# with a 4x4 kernel every interior cell gets 4 (only the border is thinner).

fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.6), layout="constrained")
for ax, k in zip(axes, (3, 4)):
    counts = overlap_map(k, 2, input_shape=(6, 6), padding=1, output_padding=1 if k == 3 else 0)
    im = ax.imshow(counts, cmap="viridis", vmin=0, vmax=counts.max())
    ax.set_title(f"{k}x{k} kernel, stride 2: {counts.min()}..{counts.max()} taps")
    ax.set_xlabel("output column")
    ax.set_ylabel("output row")
    fig.colorbar(im, ax=ax, shrink=0.8, label="taps per cell")
plt.show()

# %%
# Now the output of :func:`fastdeconv.conv_transpose` for a constant input, with weights
# that are all ones and with random weights; then the two fixes, resize-convolution (nearest
# x2 then a random 3x3 convolution) and a 4x4 transposed convolution initialised with ICNR.
# Each panel has its own colour scale; the title gives its checkerboard score (0 is flat)
# and the phase spread measured on the image itself.

# sphinx_gallery_thumbnail_number = 2
x = np.ones((1, 1, 10, 10))
w3_ones, w4_ones = np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 4))
w3, w4 = rng.standard_normal((1, 1, 3, 3)), rng.standard_normal((1, 1, 4, 4))
w4_icnr = icnr((1, 1, 4, 4), 2, transpose=True, rng=rng)
w_conv = rng.standard_normal((1, 1, 3, 3))          # the convolution after the resize
w_resize = resize_conv_as_conv_transpose(w_conv, 2)["weight"]

cases = [
    ("ones 3x3, stride 2", fastdeconv.conv_transpose(x, w3_ones, stride=2, padding=1), w3_ones),
    ("ones 4x4, stride 2", fastdeconv.conv_transpose(x, w4_ones, stride=2, padding=1), w4_ones),
    ("random 3x3, stride 2", fastdeconv.conv_transpose(x, w3, stride=2, padding=1), w3),
    ("random 4x4, stride 2", fastdeconv.conv_transpose(x, w4, stride=2, padding=1), w4),
    ("nearest x2 + random 3x3 conv",
     fastdeconv.conv(fastdeconv.resize(x, scale_factor=2), w_conv, padding=1), w_resize),
    ("ICNR 4x4, stride 2", fastdeconv.conv_transpose(x, w4_icnr, stride=2, padding=1), w4_icnr),
]
fig, axes = plt.subplots(2, 3, figsize=(9, 6.4))
for ax, (title, y, w) in zip(axes.flat, cases):
    im = ax.imshow(y[0, 0], cmap="magma")
    ax.set_title(f"{title}\nscore {checkerboard_score(w, 2):.2f}, "
                 f"phase spread {phase_spread(y[0, 0]):.2f}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.75)
fig.suptitle("conv_transpose of a constant 10x10 input (each panel on its own scale)")
plt.show()

for title, y, w in cases:
    print(f"{title:<30} checkerboard_score {checkerboard_score(w, 2):.3f}   "
          f"phase spread of the output {phase_spread(y[0, 0]):.3f}")

# One random draw is one sample: over many random (He-initialised) kernels the typical
# score is similar for 3x3 and 4x4, and is zero only for structured weights.

for k in (3, 4):
    draws = [checkerboard_score(rng.standard_normal((1, 1, k, k)), 2) for _ in range(500)]
    print(f"random {k}x{k} kernels, stride 2: median checkerboard_score {np.median(draws):.2f} "
          f"over {len(draws)} draws")

# %%
# All-ones 4x4 weights are flat in the interior (every cell gets four taps of value one);
# random 4x4 weights are not: the overlap is uniform, the sums of the four phases' taps are
# not. Resize-convolution is flat for *any* weights, because every phase of its equivalent
# transposed convolution sums the same taps; ICNR makes the four phases of a transposed
# convolution equal at initialisation.
#
# 2. The backward pass: checkerboard gradients from a smooth loss
# ---------------------------------------------------------------
# Take a strided convolution ``y = conv(x, w, stride=2)`` on a photograph and the smoothest
# loss there is, ``L = sum(g * y)`` with a broad Gaussian ``g`` (so ``dL/dy = g``). The
# gradient with respect to the input, :func:`fastdeconv.conv_backward`, is
# ``conv_transpose(g, w, stride=2)``: a smooth field stamped with the kernel at stride 2.

from skimage.data import camera  # noqa: E402  (bundled with scikit-image, no download)

photo = camera()[200:264, 220:284].astype(np.float64)[None, None] / 255.0   # 64x64
yy, xx = np.mgrid[:32, :32]
g = np.exp(-((yy - 15.5) ** 2 + (xx - 15.5) ** 2) / (2 * 8.0 ** 2))[None, None]

w3_conv = rng.standard_normal((1, 1, 3, 3))
w4_conv = rng.standard_normal((1, 1, 4, 4))
grads = {
    "conv 3x3, stride 2": (fastdeconv.conv_backward(g, photo, w3_conv, stride=2, padding=1,
                                                    grads=("x",))[0], w3_conv),
    "conv 4x4, stride 2": (fastdeconv.conv_backward(g, photo, w4_conv, stride=2, padding=1,
                                                    grads=("x",))[0], w4_conv),
}
# The fix for the backward pass is the mirror image of resize-convolution: a stride-1
# convolution followed by a fixed downsampling (2x2 averaging, ``resize(..., mode="area")``).
# Its gradient is the average pooling's adjoint (each gradient value spread evenly over its
# 2x2 block) followed by the stride-1 convolution's adjoint: no phase is favoured.
dense = fastdeconv.conv(photo, w3_conv, padding=1)
g_dense = fastdeconv.resize_backward(g, dense.shape, size=(32, 32), mode="area")
grads["conv 3x3 + 2x2 average"] = (fastdeconv.conv_backward(g_dense, photo, w3_conv, padding=1,
                                                            grads=("x",))[0], None)

fig, axes = plt.subplots(1, 4, figsize=(11, 3.2))
axes[0].imshow(g[0, 0], cmap="viridis")
axes[0].set_title("dL/dy: a Gaussian (32x32)", fontsize=9)
for ax, (title, (gx, w)) in zip(axes[1:], grads.items()):
    im = ax.imshow(gx[0, 0], cmap="RdBu_r", vmin=-np.abs(gx).max(), vmax=np.abs(gx).max())
    score = "" if w is None else f"score {checkerboard_score(w, 2):.2f}, "
    ax.set_title(f"dL/dx, {title}\n{score}phase spread {phase_spread(gx[0, 0], border=12):.2f}",
                 fontsize=9)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()
plt.show()

for title, (gx, w) in grads.items():
    score = "   -  " if w is None else f"{checkerboard_score(w, 2):.3f}"
    print(f"gradient through {title:<24} checkerboard_score {score}   "
          f"phase spread {phase_spread(gx[0, 0], border=12):.3f}")

# %%
# The gradient does not depend on the photograph at all (``x`` enters only the weight
# gradient): a strided convolution turns *any* smooth output gradient into a periodic
# input gradient, with the checkerboard score of its kernel read as a transposed
# convolution's (:func:`~fastdeconv.checkerboard.checkerboard_score` of ``w`` itself, since
# ``conv_backward``'s input gradient is ``conv_transpose`` with the same weight array).
# Downsampling by a fixed average after a stride-1 convolution removes it, as
# resize-convolution does in the forward direction.
