r"""
fastdeconv as the gradient reference for your own kernel
========================================================

You have written a convolution and its backward pass yourself (a NumPy prototype, a CUDA
kernel, a layer of a small framework) and want to know that the gradient is right. This
example plants a realistic bug in a hand-written backward pass and shows how
:mod:`fastdeconv.testing` finds it and how the explicit sparse matrix of
:mod:`fastdeconv.sparse` says exactly which entries are wrong.

The hand-written convolution
----------------------------
The forward pass is im2col with NumPy's sliding windows. The input gradient uses the
textbook identity (Dumoulin and Visin): the gradient of a strided convolution is a stride-1
convolution of the output gradient with ``stride - 1`` zeros inserted between its cells,
padded by ``k - 1 - padding``, with the kernel flipped and its channels swapped. The
textbook identity holds when the strides tile the padded input exactly; otherwise
``(H + 2 padding - k) % stride`` extra rows (the transposed convolution's
``output_padding``) must be padded at the end. This implementation forgets them and pads
the result with zeros to the input's shape, which hides the mistake from any shape check.
"""

import matplotlib.pyplot as plt
import numpy as np

import fastdeconv
from fastdeconv.sparse import conv_matrix
from fastdeconv.testing import assert_adjoint, conv_reference, directional_derivative_check


def my_conv2d(x, w, stride=1, padding=0):
    """Cross-correlation, x (N, C, H, W), w (O, C, k, k)."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", cols, w)


def my_conv2d_grad_input(g, w, x_shape, stride=1, padding=0, fixed=False):
    """Gradient of my_conv2d with respect to x, for the output gradient g."""
    n, o, ho, wo = g.shape
    k = w.shape[-1]
    dilated = np.zeros((n, o, (ho - 1) * stride + 1, (wo - 1) * stride + 1))
    dilated[:, :, ::stride, ::stride] = g
    q = k - 1 - padding
    h, wd = x_shape[2:]
    extra = ((h + 2 * padding - k) % stride, (wd + 2 * padding - k) % stride) if fixed else (0, 0)
    dilated = np.pad(dilated, ((0, 0), (0, 0), (q, q + extra[0]), (q, q + extra[1])))
    gx = my_conv2d(dilated, np.flip(w, (2, 3)).transpose(1, 0, 2, 3))
    # "make the shapes agree": the bug's hiding place when extra is not added above
    return np.pad(gx, ((0, 0), (0, 0), (0, h - gx.shape[2]), (0, wd - gx.shape[3])))


def my_conv2d_grad_weight(g, x, k, stride=1, padding=0):
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,nohw->ocij", cols, g)


rng = np.random.default_rng(0)
w = rng.standard_normal((4, 3, 3, 3))          # O=4, C=3, 3x3 kernel; stride 2, padding 1
S, PAD = 2, 1

# %%
# Step 1: the forward pass against the independent reference
# ----------------------------------------------------------
# :func:`fastdeconv.testing.conv_reference` is a plain-NumPy convolution that shares no code
# with the compiled kernels; :func:`fastdeconv.conv` is the fast one. Both agree with the
# hand-written forward, on odd and even sizes: the forward pass is fine.

for size in (7, 8):
    x = rng.standard_normal((2, 3, size, size))
    mine = my_conv2d(x, w, S, PAD)
    print(f"{size}x{size}: |mine - conv_reference| = {np.abs(mine - conv_reference(x, w, stride=S, padding=PAD)).max():.1e}, "
          f"|mine - fastdeconv.conv| = {np.abs(mine - fastdeconv.conv(x, w, stride=S, padding=PAD)).max():.1e}")

# %%
# Step 2: the dot test and a finite difference find the bug
# ---------------------------------------------------------
# The input gradient of a convolution is its adjoint, so
# :func:`fastdeconv.testing.assert_adjoint` checks it with one inner product:
# :math:`\langle C x, y \rangle = \langle x, C^T y \rangle` for random ``x`` and ``y``.
# :func:`~fastdeconv.testing.directional_derivative_check` compares the gradient of the
# loss ``L(x) = <conv(x, w), g>`` with a central difference along a random direction. On a
# 7x7 input (where the strides tile the padded input exactly) both pass; on 8x8 both fail.


def checks(size, fixed=False):
    x_shape, y_shape = (2, 3, size, size), (2, 4, (size + 1) // 2, (size + 1) // 2)
    results = {}
    try:
        assert_adjoint(lambda x: my_conv2d(x, w, S, PAD),
                       lambda y: my_conv2d_grad_input(y, w, x_shape, S, PAD, fixed), x_shape, y_shape, rng=1)
        results["dot test"] = "passed"
    except AssertionError as error:
        results["dot test"] = f"FAILED: {error}"
    x, g, d = (np.random.default_rng(2).standard_normal(s) for s in (x_shape, y_shape, x_shape))
    try:
        directional_derivative_check(lambda v: np.vdot(my_conv2d(v, w, S, PAD), g), x, d,
                                     my_conv2d_grad_input(g, w, x_shape, S, PAD, fixed), eps=1.0)
        results["finite difference, x"] = "passed"
    except AssertionError as error:
        results["finite difference, x"] = f"FAILED: {error}"
    dw = np.random.default_rng(3).standard_normal(w.shape)
    try:
        directional_derivative_check(lambda v: np.vdot(my_conv2d(x, v, S, PAD), g), w, dw,
                                     my_conv2d_grad_weight(g, x, 3, S, PAD), eps=1.0)
        results["finite difference, w"] = "passed"
    except AssertionError as error:
        results["finite difference, w"] = f"FAILED: {error}"
    return results


for size in (7, 8):
    for name, outcome in checks(size).items():
        print(f"{size}x{size} {name:<22} {outcome}")

# %%
# Step 3: compare with fastdeconv's exact gradient
# ------------------------------------------------
# :func:`fastdeconv.conv_backward` returns the exact input gradient. The difference from the
# hand-written one, summed over batch and channels, is non-zero only in the last row and
# the last column of the input.

size = 8
x = rng.standard_normal((2, 3, size, size))
g = rng.standard_normal((2, 4, 4, 4))
exact = fastdeconv.conv_backward(g, x, w, stride=S, padding=PAD, grads=("x",))[0]
wrong = np.abs(my_conv2d_grad_input(g, w, x.shape, S, PAD) - exact).sum(axis=(0, 1))

# %%
# Step 4: the sparse matrix says which entries are wrong
# ------------------------------------------------------
# :func:`fastdeconv.sparse.conv_matrix` builds the convolution's matrix :math:`C` (one sample)
# from index arithmetic. The hand-written backward is linear in ``g``, so applying it to
# every unit vector gives its matrix :math:`B`, which should be :math:`C^T`. The non-zero
# entries of :math:`B - C^T` name the (input cell, output cell) pairs that are wrong, and
# from them the kernel tap: ``tap = input_row + padding - stride * output_row``.

C = conv_matrix((3, size, size), w, stride=S, padding=PAD).toarray()       # (4*4*4, 3*8*8)
unit = np.eye(C.shape[0]).reshape(-1, 4, 4, 4)
B = my_conv2d_grad_input(unit, w, (len(unit), 3, size, size), S, PAD).reshape(len(unit), -1).T
D = B - C.T
rows, cols = np.nonzero(np.abs(D) > 1e-12)
ci, iy, ix = np.unravel_index(rows, (3, size, size))
co, oy, ox = np.unravel_index(cols, (4, 4, 4))
print(f"{len(rows)} of {np.count_nonzero(C)} non-zero entries of C^T are wrong")
last_in = (iy == size - 1) | (ix == size - 1)
last_out = (oy == 3) | (ox == 3)
print(f"their input cells are all in the last row or column: {bool(last_in.all())}; "
      f"their output cells too: {bool(last_out.all())}")
tap_y, tap_x = iy + PAD - S * oy, ix + PAD - S * ox
print("kernel tap rows of the entries in input row 7:      ", sorted(set(tap_y[iy == size - 1].tolist())))
print("kernel tap columns of the entries in input column 7:", sorted(set(tap_x[ix == size - 1].tolist())))
print("B is zero there:", bool(np.all(B[rows, cols] == 0)))

fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), layout="constrained")
im = axes[0].imshow(wrong, cmap="Reds")
axes[0].set_title("|hand-written - conv_backward| per input cell\n(8x8 input, summed over batch and channels)",
                  fontsize=9)
axes[0].set_xlabel("input column")
axes[0].set_ylabel("input row")
fig.colorbar(im, ax=axes[0], shrink=0.8)
axes[1].spy(C.T, markersize=1, color="0.75")
axes[1].spy(np.abs(D) > 1e-12, markersize=2, color="red")
axes[1].set_title("entries of $C^T$ (grey) and the wrong ones of $B$ (red)", fontsize=9)
axes[1].set_xlabel("output cell (channel, row, column), C order")
axes[1].set_ylabel("input cell (channel, row, column)")
axes[1].set_aspect("auto")
axes[1].xaxis.tick_bottom()
plt.show()

# %%
# Every wrong entry joins the last input row (or column) to the last output row (or
# column) through the last kernel tap, 2, and the hand-written matrix has a zero there:
# the contribution of the last output row to the last input row is missing. That is the ``(H + 2 padding - k) % stride``
# extra row of padding that the textbook identity needs for even sizes.
#
# Step 5: fix and check again
# ---------------------------
# With the extra padding the checks pass at every size, and the matrix equals
# :math:`C^T` exactly.

for size in (5, 6, 7, 8, 9):
    outcome = checks(size, fixed=True)
    print(f"{size}x{size} fixed: " + ", ".join(f"{name} {result}" for name, result in outcome.items()))
B_fixed = my_conv2d_grad_input(unit, w, (len(unit), 3, 8, 8), S, PAD, fixed=True).reshape(len(unit), -1).T
print(f"max |B - C^T| after the fix: {np.abs(B_fixed - C.T).max():.1e}")
