r"""
Upsampling or transposed convolution? A convolutional autoencoder answers
=========================================================================

Every decoder of a convolutional autoencoder or generator has to make its feature maps
larger, and there are many ways to do it: a transposed convolution ("deconvolution") whose
kernel size is or is not a multiple of its stride, a fixed resize (nearest or bilinear)
followed by a convolution, max-unpooling with the encoder's *switches* (Zeiler and Fergus,
SegNet), or a sub-pixel convolution (a convolution followed by pixel shuffle), with or
without ICNR initialisation. Odena, Dumoulin and Olah (Distill, 2016) argued that the
transposed convolution makes checkerboards and that resize-convolution does not.

Here the question is answered by experiment. One encoder (two stride-2 convolutions) and
seven decoders are trained on the same patches of a real photograph, in plain NumPy: the
forward and backward pass of every layer is a :mod:`fastdeconv` function, and the optimiser
is a few lines of Adam. We compare reconstructions, loss curves, parameters, time per epoch
and two checkerboard scores; then, when PyTorch is installed, the same models are trained in
PyTorch from the same initial weights on the same batches, and the two loss curves agree to
rounding: the gradients are exact.
"""

# %%
# The data: patches of a photograph that scikit-image ships
# ---------------------------------------------------------
# ``skimage.data.camera()`` is bundled in the scikit-image wheel (no download). We take it at
# half resolution (256x256) and cut it into 16x16 patches: the top three quarters, every 8
# pixels, to train on (704 overlapping patches), the bottom quarter, without overlap, held
# out (64 patches).

import time

import matplotlib.pyplot as plt
import numpy as np
from skimage.data import camera

import fastdeconv
from fastdeconv.checkerboard import checkerboard_score, icnr
from fastdeconv.equivalences import resize_conv_as_conv_transpose, subpixel_as_conv_transpose

fastdeconv.set_num_threads(1)   # the arrays here are tiny: one thread avoids threading overhead

image = camera().astype(np.float64) / 255.0
image = image.reshape(256, 2, 256, 2).mean(axis=(1, 3))            # 256x256
P = 16
train = np.array([image[i:i + P, j:j + P] for i in range(0, 192 - P + 1, 8)
                  for j in range(0, 256 - P + 1, 8)])[:704, None]
test = np.array([image[i:i + P, j:j + P] for i in range(192, 256, P) for j in range(0, 256, P)])[:, None]
mean = train.mean()
print(f"{len(train)} training and {len(test)} test patches of {P}x{P} pixels, mean {mean:.3f}")

# %%
# The model
# ---------
# The encoder maps a 1x16x16 patch to an 8x4x4 code with two stride-2 convolutions (3x3,
# padding 1), a ReLU between them. Every decoder has two upsampling stages, 8x4x4 -> 8x8x8
# (then ReLU) -> 1x16x16, each made of one of these layers:
#
# ========================  =================================================================
# ``tconv k3 s2``           ``conv_transpose``, kernel 3, stride 2 (3 is not a multiple of 2)
# ``tconv k4 s2``           ``conv_transpose``, kernel 4, stride 2 (a multiple)
# ``nearest + conv``        ``resize`` nearest x2, then a 3x3 convolution
# ``bilinear + conv``       ``resize`` bilinear x2, then a 3x3 convolution
# ``unpool + conv``         ``max_unpool`` with the encoder's switches, then a 3x3 convolution
# ``pixel shuffle``         3x3 convolution to 4x the channels, then ``pixel_shuffle(., 2)``
# ``pixel shuffle + ICNR``  the same, initialised with :func:`fastdeconv.checkerboard.icnr`
# ========================  =================================================================
#
# The encoder's convolutions are strided, so they have no switches of their own: the
# unpooling decoder takes as switches the positions of the maxima of each encoder layer
# evaluated densely (stride 1) over each 2x2 block, that is, where in the block the
# encoder's filter responded most. Those switches are extra information that only this
# decoder gets (as in SegNet).
#
# Each upsampling layer is a small class with ``forward`` and ``backward``; ``backward``
# takes the gradient of the loss with respect to the layer's output and returns the one
# with respect to its input, storing the weight and bias gradients.

C = 8  # channels of every hidden feature map


def he(shape, fan_in, rng):
    return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)


class Conv:
    """A convolution (stride 1 or 2, padding 1) with bias."""

    def __init__(self, c_in, c_out, rng, stride=1, k=3):
        self.params = {"w": he((c_out, c_in, k, k), c_in * k * k, rng), "b": np.zeros(c_out)}
        self.stride = stride

    def forward(self, x):
        self.x = x
        return fastdeconv.conv(x, self.params["w"], self.params["b"], stride=self.stride, padding=1)

    def backward(self, g):
        gx, gw, gb = fastdeconv.conv_backward(g, self.x, self.params["w"], stride=self.stride, padding=1)
        self.grads = {"w": gw, "b": gb}
        return gx


class TransposedConv:
    """``conv_transpose`` with stride 2 from n to 2n cells: kernel 3 or 4."""

    def __init__(self, c_in, c_out, rng, k):
        self.params = {"w": he((c_in, c_out, k, k), c_in * k * k / 4, rng), "b": np.zeros(c_out)}
        self.kw = dict(stride=2, padding=1, output_padding=1 if k == 3 else 0)

    def forward(self, x):
        self.x = x
        return fastdeconv.conv_transpose(x, self.params["w"], self.params["b"], **self.kw)

    def backward(self, g):
        gx, gw, gb = fastdeconv.conv_transpose_backward(g, self.x, self.params["w"], **self.kw)
        self.grads = {"w": gw, "b": gb}
        return gx


class ResizeConv:
    """``resize`` x2 (nearest or bilinear), then a 3x3 convolution."""

    def __init__(self, c_in, c_out, rng, mode):
        self.conv = Conv(c_in, c_out, rng)
        self.params = self.conv.params
        self.mode = mode

    def forward(self, x):
        self.shape = x.shape
        return self.conv.forward(fastdeconv.resize(x, scale_factor=2, mode=self.mode))

    def backward(self, g):
        g = self.conv.backward(g)
        self.grads = self.conv.grads
        return fastdeconv.resize_backward(g, self.shape, scale_factor=2, mode=self.mode)


class UnpoolConv:
    """``max_unpool`` with switches given at forward time, then a 3x3 convolution."""

    def __init__(self, c_in, c_out, rng):
        self.conv = Conv(c_in, c_out, rng)
        self.params = self.conv.params

    def forward(self, x, switches):
        self.switches = switches
        return self.conv.forward(fastdeconv.max_unpool(x, switches, 2))

    def backward(self, g):
        g = self.conv.backward(g)
        self.grads = self.conv.grads
        return fastdeconv.max_unpool_backward(g, self.switches)


class SubPixelConv:
    """A 3x3 convolution to ``4 c_out`` channels, then ``pixel_shuffle(., 2)``."""

    def __init__(self, c_in, c_out, rng, use_icnr):
        self.conv = Conv(c_in, 4 * c_out, rng)
        if use_icnr:
            self.conv.params["w"] = icnr(self.conv.params["w"].shape, 2, rng=rng)
        self.params = self.conv.params

    def forward(self, x):
        return fastdeconv.pixel_shuffle(self.conv.forward(x), 2)

    def backward(self, g):
        g = self.conv.backward(fastdeconv.pixel_unshuffle(g, 2))  # the inverse is the adjoint
        self.grads = self.conv.grads
        return g


def make_upsampler(kind, c_in, c_out, rng):
    if kind.startswith("tconv"):
        return TransposedConv(c_in, c_out, rng, k=int(kind[7]))
    if kind.endswith("+ conv") and not kind.startswith("unpool"):
        return ResizeConv(c_in, c_out, rng, mode=kind.split()[0])
    if kind.startswith("unpool"):
        return UnpoolConv(c_in, c_out, rng)
    return SubPixelConv(c_in, c_out, rng, use_icnr=kind.endswith("ICNR"))


DECODERS = ["tconv k3 s2", "tconv k4 s2", "nearest + conv", "bilinear + conv", "unpool + conv",
            "pixel shuffle", "pixel shuffle + ICNR"]


class Autoencoder:
    """Encoder: conv s2, ReLU, conv s2. Decoder: up, ReLU, up."""

    def __init__(self, kind, seed=0):
        rng = np.random.default_rng(seed)          # the same encoder for every decoder
        self.enc1, self.enc2 = Conv(1, C, rng, stride=2), Conv(C, C, rng, stride=2)
        rng = np.random.default_rng([seed, DECODERS.index(kind)])
        self.up1, self.up2 = make_upsampler(kind, C, C, rng), make_upsampler(kind, C, 1, rng)
        self.layers = [self.enc1, self.enc2, self.up1, self.up2]
        self.unpool = kind.startswith("unpool")

    def switches(self, layer, x):
        """Where in each 2x2 block ``layer``, evaluated at stride 1, responds most."""
        dense = fastdeconv.conv(x, layer.params["w"], layer.params["b"], padding=1)
        return fastdeconv.max_pool(dense, 2, return_indices=True)[1]

    def forward(self, x):
        x = x - mean
        h = self.enc1.forward(x)
        self.mask1 = h > 0
        h = h * self.mask1
        code = self.enc2.forward(h)
        if self.unpool:
            u = self.up1.forward(code, self.switches(self.enc2, h))
        else:
            u = self.up1.forward(code)
        self.mask2 = u > 0
        u = u * self.mask2
        out = self.up2.forward(u, self.switches(self.enc1, x)) if self.unpool else self.up2.forward(u)
        return out + mean

    def backward(self, g):
        g = self.up2.backward(g) * self.mask2
        g = self.up1.backward(g)
        g = self.enc2.backward(g) * self.mask1
        self.enc1.backward(g)

    def n_params(self):
        return sum(p.size for layer in self.layers for p in layer.params.values())


# %%
# Training: mean squared error and a few lines of Adam
# ----------------------------------------------------
# The Adam update is written exactly as :class:`torch.optim.Adam` computes it, so that the
# PyTorch run below can follow the same trajectory.


class Adam:
    def __init__(self, layers, lr=1e-2, betas=(0.9, 0.999), eps=1e-8):
        self.layers, self.lr, self.betas, self.eps, self.t = layers, lr, betas, eps, 0
        self.m = [{k: np.zeros_like(p) for k, p in layer.params.items()} for layer in layers]
        self.v = [{k: np.zeros_like(p) for k, p in layer.params.items()} for layer in layers]

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for layer, m, v in zip(self.layers, self.m, self.v):
            for k, g in layer.grads.items():
                m[k] = b1 * m[k] + (1 - b1) * g
                v[k] = b2 * v[k] + (1 - b2) * g * g
                denom = np.sqrt(v[k]) / np.sqrt(1 - b2 ** self.t) + self.eps
                layer.params[k] -= self.lr / (1 - b1 ** self.t) * m[k] / denom


EPOCHS, BATCH = 14, 32
STEPS = len(train) // BATCH   # per epoch
batches = [np.random.default_rng([1, e]).permutation(len(train)).reshape(-1, BATCH)
           for e in range(EPOCHS)]


def loss_and_grad(model, x):
    out = model.forward(x)
    diff = out - x
    return np.mean(diff ** 2), 2 * diff / diff.size


def train_model(kind):
    model = Autoencoder(kind)
    initial = [{k: p.copy() for k, p in layer.params.items()} for layer in model.layers]
    opt = Adam(model.layers)
    losses, start = [], time.perf_counter()
    for order in batches:
        for idx in order:
            loss, g = loss_and_grad(model, train[idx])
            model.backward(g)
            opt.step()
            losses.append(loss)
    seconds = (time.perf_counter() - start) / EPOCHS
    return model, np.array(losses), seconds, initial


results = {kind: train_model(kind) for kind in DECODERS}

# %%
# Loss curves
# -----------
# Training loss per step (22 steps per epoch) and the test loss after training.

fig, ax = plt.subplots(figsize=(8, 4.5))
for kind, (model, losses, _, _) in results.items():
    smooth = np.convolve(losses, np.ones(STEPS) / STEPS, mode="valid")
    ax.plot(np.arange(len(smooth)) + STEPS, smooth, label=kind)
ax.set_yscale("log")
ax.set_xlabel("training step (batch of 32 patches)")
ax.set_ylabel("mean squared error (moving average over one epoch)")
ax.set_title(f"Training loss of the seven decoders, {EPOCHS} epochs")
ax.legend(fontsize=8, ncol=2)
plt.show()

# %%
# Checkerboards, measured two ways
# --------------------------------
# *Flat-image score*: decode the code of a uniformly grey 48x48 image and look at the
# 32x32 interior of the output, away from the borders. A checkerboard-free decoder
# returns a flat image; any periodic variation is the artefact (with two stride-2 stages
# its period is 4: period 2 from the last stage, period 4 from the first). The score is
# the spread of the 16 phase means of a 4x4 period divided by the largest of them (0 is
# flat), measured on the trained models.
#
# *Last-layer score*: :func:`fastdeconv.checkerboard.checkerboard_score` of the decoder's
# last upsampling layer written as a transposed convolution
# (:func:`~fastdeconv.equivalences.resize_conv_as_conv_transpose`,
# :func:`~fastdeconv.equivalences.subpixel_as_conv_transpose`): how uneven that layer's
# response to a constant input is, at initialisation and after training. Unpooling is not a
# fixed linear map (its switches depend on the input), so it has no such score.

flat = np.full((1, 1, 48, 48), 0.5)   # the models are convolutional: any size works


def flat_score(model):
    out = model.forward(flat)[0, 0, 8:-8, 8:-8]      # 32x32, away from the zero-padded borders
    phases = out.reshape(8, 4, 8, 4).mean(axis=(0, 2))  # two stride-2 stages: period 4
    return np.ptp(phases) / np.abs(phases).max(), out


def last_layer_score(kind, layer):
    if kind.startswith("tconv"):
        w = layer.params["w"]
    elif kind.startswith("unpool"):
        return float("nan")
    elif kind.startswith("pixel"):
        w = subpixel_as_conv_transpose(layer.params["w"], 2, padding=1)["weight"]
    else:
        mode = "nearest" if kind.startswith("nearest") else "bilinear"
        w = resize_conv_as_conv_transpose(layer.params["w"], 2, mode=mode)["weight"]
    return checkerboard_score(w, 2)


test_out, flats = {}, {}
print(f"{'':<22}{'':>7}{'':>9}{'':>11}{'':>10}{'flat score':>16}{'last-layer score':>18}")
print(f"{'decoder':<22}{'params':>7}{'s/epoch':>9}{'train MSE':>11}{'test MSE':>10}"
      f"{'init':>8}{'trained':>8}{'init':>10}{'trained':>8}")
for kind, (model, losses, seconds, initial) in results.items():
    test_out[kind] = model.forward(test)
    test_mse = np.mean((test_out[kind] - test) ** 2)
    fresh = Autoencoder(kind)                  # the same seeds: the initial weights again
    flat_init = flat_score(fresh)[0]
    score, flats[kind] = flat_score(model)
    print(f"{kind:<22}{model.n_params():>7}{seconds:>9.3f}{losses[-STEPS:].mean():>11.5f}"
          f"{test_mse:>10.5f}{flat_init:>8.3f}{score:>8.3f}"
          f"{last_layer_score(kind, fresh.up2):>10.3f}{last_layer_score(kind, model.up2):>8.3f}")

# %%
# Reconstructions side by side
# ----------------------------
# The six most detailed held-out patches (top row) and every decoder's reconstruction,
# each column on the grey range of its original. The last column is the interior of the
# decoded grey image of the flat-image score, its mean removed, all on one shared colour
# scale (its spread, max - min, is printed above it): there the checkerboard, when there
# is one, has nothing to hide behind.

# sphinx_gallery_thumbnail_number = 2
show = np.argsort(test.std(axis=(1, 2, 3)))[::-1][:6]    # the six most detailed patches
fig, axes = plt.subplots(len(DECODERS) + 1, 7, figsize=(8.5, 10.5))
for j, n in enumerate(show):
    lo, hi = test[n, 0].min(), test[n, 0].max()          # each column on its original's range
    axes[0, j].imshow(test[n, 0], cmap="gray", vmin=lo, vmax=hi)
    for i, kind in enumerate(DECODERS, start=1):
        axes[i, j].imshow(test_out[kind][n, 0], cmap="gray", vmin=lo, vmax=hi)
axes[0, 0].set_ylabel("original", rotation=0, ha="right", va="center", fontsize=8)
axes[0, 6].axis("off")
shared = max(np.abs(f - f.mean()).max() for f in flats.values())
for i, kind in enumerate(DECODERS, start=1):
    axes[i, 0].set_ylabel(kind, rotation=0, ha="right", va="center", fontsize=8)
    f = flats[kind]
    axes[i, 6].imshow(f - f.mean(), cmap="gray", vmin=-shared, vmax=shared)
    axes[i, 6].set_title(f"spread {np.ptp(f):.3f}", fontsize=7)
for a in axes.flat:
    a.set_xticks([])
    a.set_yticks([])
axes[0, 3].set_title("held-out patches and their reconstructions", fontsize=9)
axes[0, 6].text(0.5, 0.2, f"grey image\ndecoded\n(mean removed,\nscale ±{shared:.3f})",
                ha="center", va="center", fontsize=7, transform=axes[0, 6].transAxes)
plt.subplots_adjust(left=0.2, wspace=0.08, hspace=0.3)
plt.show()

# %%
# What the numbers say
# --------------------
# *At initialisation* both transposed convolutions and the randomly initialised pixel
# shuffle decode a grey image with a periodic pattern (flat-image score well above 0, and
# last-layer scores near 1 or above: with kernel 3 and stride 2 the tap counts differ, with
# kernel 4 they are equal but random weights give the four phases different sums).
# Resize-convolution and ICNR start flat.
#
# *After training* resize-convolution, nearest or bilinear, is still exactly flat: whatever
# its weights, its equivalent transposed convolution gives every phase the same taps, so it
# cannot make a periodic pattern out of a flat input. The sub-pixel decoders meet in the
# middle: training removes most of the random pixel shuffle's pattern, and moves ICNR's
# phases apart (ICNR fixes the starting point, not where training goes). The transposed
# convolutions keep a larger pattern, and kernel 4 is no better than kernel 3 in spite of its
# equal tap counts: training sets the phase sums. Max-unpooling ends with the largest: on a
# flat input every position of a 2x2 block ties, the switch falls on the same position in
# every block, and the following convolution cannot fully smooth the resulting grid.
#
# The test errors are close, so the loss alone hardly tells the decoders apart. Bilinear
# resize-convolution comes within a few percent of the lowest test error (the 3x3
# transposed convolution's) with no pattern at all, at the same parameter count.
#
# The same models in PyTorch, from the same initial weights
# ---------------------------------------------------------
# If PyTorch is installed, each model is rebuilt with :mod:`torch.nn.functional` from the
# NumPy model's *initial* weights and trained with :class:`torch.optim.Adam` on the same
# batches, in float64, for the first epochs. The two loss curves agree to rounding error:
# every forward and backward pass above is exact.

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None
    print("PyTorch is not installed: the comparison is skipped")

COMPARE_STEPS = 2 * STEPS   # two epochs


def torch_losses(kind, initial):
    model = Autoencoder(kind)                   # the same architecture and initial weights
    params = []
    tensors = [{k: torch.tensor(p, requires_grad=True) for k, p in layer.items()} for layer in initial]
    params = [p for layer in tensors for p in layer.values()]
    opt = torch.optim.Adam(params, lr=1e-2)
    e1, e2, u1, u2 = tensors
    tmean = torch.tensor(mean)

    def up(kind, p, z, switches):
        if kind.startswith("tconv"):
            k = p["w"].shape[-1]
            return F.conv_transpose2d(z, p["w"], p["b"], stride=2, padding=1,
                                      output_padding=1 if k == 3 else 0)
        if kind.startswith("pixel"):
            return F.pixel_shuffle(F.conv2d(z, p["w"], p["b"], padding=1), 2)
        if kind.startswith("unpool"):
            z = F.max_unpool2d(z, switches, 2)
        else:
            z = F.interpolate(z, scale_factor=2, mode="nearest" if kind.startswith("nearest") else "bilinear")
        return F.conv2d(z, p["w"], p["b"], padding=1)

    def switches(p, x):
        return F.max_pool2d(F.conv2d(x, p["w"], p["b"], padding=1), 2, return_indices=True)[1]

    curve = []
    for idx in np.concatenate(batches)[:COMPARE_STEPS]:
        x = torch.tensor(train[idx]) - tmean
        h = F.relu(F.conv2d(x, e1["w"], e1["b"], stride=2, padding=1))
        code = F.conv2d(h, e2["w"], e2["b"], stride=2, padding=1)
        s1, s2 = (switches(e2, h), switches(e1, x)) if model.unpool else (None, None)
        out = up(kind, u2, F.relu(up(kind, u1, code, s1)), s2) + tmean
        loss = F.mse_loss(out, x + tmean)
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(loss.item())
    return np.array(curve)


if torch is not None:
    torch.set_num_threads(1)
    fig, ax = plt.subplots(figsize=(8, 4))
    print(f"{'decoder':<22}max |loss_numpy - loss_torch| over the first {COMPARE_STEPS} steps")
    for kind, (model, losses, _, initial) in results.items():
        diff = np.abs(losses[:COMPARE_STEPS] - torch_losses(kind, initial))
        print(f"{kind:<22}{diff.max():.1e}")
        ax.semilogy(np.arange(1, COMPARE_STEPS + 1), np.maximum(diff, 1e-18), ".-", label=kind)
    ax.axhline(1e-10, color="k", lw=0.8, ls="--")
    ax.text(COMPARE_STEPS, 1.5e-10, "1e-10", fontsize=8, ha="right", va="bottom")
    ax.set_ylim(5e-19, 1e-8)
    ax.set_xlabel("training step")
    ax.set_ylabel("|loss difference|\n(equal losses drawn at 1e-18)")
    ax.set_title("NumPy + fastdeconv vs PyTorch: same initial weights and batches, float64",
                 fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="center right")
    fig.tight_layout()
    plt.show()
