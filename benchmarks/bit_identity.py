"""Fingerprints of fastdeconv's results, to show that a refactoring changed no bit.

Not an asv benchmark: a script. It runs every layer of the benchmark suite (``suite.json``,
package data of ``fastdeconv._bench``) and a set of extra geometries (groups, dilation, 1-d
and 3-d, padding modes, the upsamplers) in float32 and float64, through every pass (forward, transposed, and all
gradients of both), and prints one SHA-256 digest per result::

    python benchmarks/bit_identity.py > before.txt      # on the old commit
    python benchmarks/bit_identity.py > after.txt       # on the new one
    diff before.txt after.txt && echo "bit-identical"

The operands are seeded, so two runs of the same build print the same lines.
"""

import hashlib
import json
import sys
from importlib import resources

import numpy as np

import fastdeconv

#: Extra geometries beyond the suite: (name, N, C_in, C_out, spatial, k, s, p, output_padding, d, groups)
EXTRA = [
    ("grouped_dilated_2d", 2, 12, 18, (13, 11), 3, 2, (1, 2), 1, 2, 3),
    ("conv1d_k5s3", 3, 8, 6, (40,), 5, 3, 2, 2, 1, 1),
    ("conv3d_k3s1", 1, 6, 5, (7, 8, 9), 3, 1, 1, 0, 1, 1),
    ("depthwise_k3s1", 2, 16, 16, (20, 20), 3, 1, 1, 0, 1, 16),
    ("subpixel_large_kernel", 1, 9, 9, (6, 6), 16, 8, 4, 0, 1, 1),
    ("winograd_3x3", 4, 32, 32, (20, 20), 3, 1, 1, 0, 1, 1),
    ("winograd_k3s2_t", 4, 64, 64, (12, 12), 3, 2, 1, 1, 1, 1),
    ("pointwise_s2", 2, 16, 24, (9, 10), 1, 2, 0, 1, 1, 1),
]


def digest(array):
    array = np.ascontiguousarray(array)
    return hashlib.sha256(array.tobytes()).hexdigest()[:24] + f" {array.dtype} {array.shape}"


def operands(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def conv_cases():
    suite = resources.files("fastdeconv._bench").joinpath("suite.json")
    for c in json.loads(suite.read_text(encoding="utf-8"))["cases"]:
        yield (c["name"], c["N"], c["Cin"], c["Cout"], tuple(c["spatial"]), c["k"], c["s"],
               c["p"], c["output_padding"], c["d"], c["groups"])
    yield from EXTRA


def conv_lines(dtype):
    for name, n, cin, cout, spatial, k, s, p, op, d, groups in conv_cases():
        rng = np.random.default_rng([ord(ch) for ch in name])
        nd = len(spatial)
        kernel = (k,) * nd
        kw = dict(stride=s, padding=p, dilation=d, groups=groups)
        # Transposed convolution: x has C_in channels, weight (C_in, C_out/groups, *k).
        x = operands(rng, (n, cin) + spatial, dtype)
        wt = operands(rng, (cin, cout // groups) + kernel, dtype)
        bias = operands(rng, (cout,), dtype)
        y = fastdeconv.conv_transpose(x, wt, bias, output_padding=op, **kw)
        yield f"{name} conv_transpose", y
        g = operands(rng, y.shape, dtype)
        for grad_name, grad in zip("x weight bias".split(),
                                   fastdeconv.conv_transpose_backward(g, x, wt, output_padding=op, **kw)):
            yield f"{name} conv_transpose_backward {grad_name}", grad
        # Forward convolution, the adjoint geometry: conv(z, wt) maps y's shape back to x's.
        z = operands(rng, y.shape, dtype)
        yield f"{name} conv (adjoint geometry)", fastdeconv.conv(z, wt, **kw)
        # Forward convolution of x itself: weight (C_out, C_in/groups, *k), where it fits.
        wf = operands(rng, (cout, cin // groups) + kernel, dtype)
        try:
            yf = fastdeconv.conv(x, wf, bias, **kw)
        except ValueError:
            continue
        yield f"{name} conv", yf
        gf = operands(rng, yf.shape, dtype)
        for grad_name, grad in zip("x weight bias".split(), fastdeconv.conv_backward(gf, x, wf, **kw)):
            yield f"{name} conv_backward {grad_name}", grad
        if nd == 2 and groups == 1 and d == 1:
            for mode in ("reflect", "replicate", "circular"):
                if p and min(spatial) > p:
                    yield f"{name} conv {mode}", fastdeconv.conv(x, wf, stride=s, padding=p,
                                                                 padding_mode=mode)


def upsampler_lines(dtype):
    rng = np.random.default_rng(12345)
    x = operands(rng, (2, 3, 9, 7), dtype)
    for mode in ("nearest", "nearest-exact", "linear", "cubic", "area"):
        y = fastdeconv.resize(x, scale_factor=(2.5, 1.5), mode=mode)
        yield f"resize {mode}", y
        yield f"resize_backward {mode}", fastdeconv.resize_backward(
            operands(rng, y.shape, dtype), x.shape, scale_factor=(2.5, 1.5), mode=mode)
    pooled, indices = fastdeconv.max_pool(x, 2, return_indices=True)
    yield "max_pool", pooled
    yield "max_unpool", fastdeconv.max_unpool(pooled, indices, 2, output_size=x.shape[2:])
    yield "pixel_shuffle", fastdeconv.pixel_shuffle(operands(rng, (2, 8, 5, 6), dtype), 2)
    yield "pixel_unshuffle", fastdeconv.pixel_unshuffle(operands(rng, (2, 3, 8, 6), dtype), 2)


def main():
    for dtype in (np.float32, np.float64):
        for lines in (conv_lines, upsampler_lines):
            for label, array in lines(dtype):
                print(f"{np.dtype(dtype).name} {label}: {digest(array)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
