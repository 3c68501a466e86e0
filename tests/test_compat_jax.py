"""fastdeconv.compat.jax against jax.lax itself (CPU, float64): random sweeps and explained calls.

Every case draws a convolution at random -- 1 to 3 spatial dimensions, a layout from
``LAYOUTS`` (or None), sizes, strides, kernel and input dilation, string or explicit
(asymmetric, negative) paddings, feature or batch groups; ``conv_transpose`` also both
``transpose_kernel`` and ``use_consistent_padding`` -- and compares the compat function with
``jax.lax``: the same result (float64), or both refuse the arguments. The explained call,
evaluated with the operands bound to ``lhs`` and ``rhs``, gives the same array.

``python tests/test_compat_jax.py`` prints the counts (cases, refused by both, mismatches).
"""

import numpy as np
import pytest

import fastdeconv
from fastdeconv.compat import jax as compat

pytestmark = pytest.mark.jax

#: dimension_numbers per spatial rank: canonical, TensorFlow's, mixed and exotic ones
LAYOUTS = {
    1: [("NCH", "OIH", "NCH"), ("NHC", "HIO", "NHC"), ("NCH", "HIO", "NHC"),
        ("HNC", "IHO", "CHN")],
    2: [("NCHW", "OIHW", "NCHW"), ("NHWC", "HWIO", "NHWC"), ("NCHW", "HWIO", "NHWC"),
        ("NHWC", "OIHW", "NCHW"), ("NWHC", "WHOI", "CNHW"), ("CHWN", "IOWH", "WNHC")],
    3: [("NCDHW", "OIDHW", "NCDHW"), ("NDHWC", "DHWIO", "NDHWC"),
        ("NCDHW", "HWDIO", "NDHWC")],
}
GENERAL_CASES = 120
TRANSPOSE_CASES = 80


def _layout(rng, n, allow_none=True):
    options = LAYOUTS[n] + ([None] if allow_none else [])
    return options[rng.integers(len(options))]


def _arrays(rng, dn, n, batch, c_in, c_out, in_size, kernel, default):
    """lhs and rhs laid out as ``dn`` says (``default`` strings when it is None)."""
    lhs_spec, rhs_spec, _ = dn if dn is not None else default
    spatial = [c for c in rhs_spec if c not in "OI"]
    lhs_sizes = dict(N=batch, C=c_in, **dict(zip(spatial, in_size)))
    rhs_sizes = dict(O=c_out[0], I=c_out[1], **dict(zip(spatial, kernel)))
    lhs = rng.standard_normal([lhs_sizes[c] for c in lhs_spec])
    rhs = rng.standard_normal([rhs_sizes[c] for c in rhs_spec])
    return lhs, rhs


def _default_strings(n):
    return ("NC" + "HWD"[:n], "OI" + "HWD"[:n], "NC" + "HWD"[:n])


def general_case(seed):
    """Arguments of one random conv_general_dilated call."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    dn = _layout(rng, n)
    kind = rng.integers(3)            # plain, feature groups, batch groups
    groups = int(rng.integers(2, 4)) if kind == 1 else 1
    batch_groups = int(rng.integers(2, 4)) if kind == 2 else 1
    batch = batch_groups * int(rng.integers(1, 3))
    c_in = groups * int(rng.integers(1, 3))
    c_out = max(groups, batch_groups) * int(rng.integers(1, 3))
    in_size = [int(v) for v in rng.integers(1, 8 if n < 3 else 5, n)]
    kernel = [int(v) for v in rng.integers(1, 4, n)]
    strides = tuple(int(v) for v in rng.integers(1, 4, n))
    rhs_dilation = tuple(int(v) for v in rng.integers(1, 3, n)) if rng.random() < 0.5 else None
    lhs_dilation = tuple(int(v) for v in rng.integers(1, 4, n)) if rng.random() < 0.5 else None
    if lhs_dilation is None and rng.random() < 0.4:
        padding = ["SAME", "VALID", "SAME_LOWER", "same"][rng.integers(4)]
    else:
        padding = [tuple(int(v) for v in rng.integers(-2, 4, 2)) for _ in range(n)]
    lhs, rhs = _arrays(rng, dn, n, batch, c_in, (c_out, c_in // groups), in_size, kernel,
                       _default_strings(n))
    return (lhs, rhs, strides, padding), dict(
        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dn,
        feature_group_count=groups, batch_group_count=batch_groups)


def transpose_case(seed):
    """Arguments of one random conv_transpose call."""
    rng = np.random.default_rng(10_000 + seed)
    n = int(rng.integers(1, 4))
    dn = _layout(rng, n)
    transpose_kernel = bool(rng.integers(2))
    consistent = bool(rng.random() < 0.3)
    c_in, c_out = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    in_size = [int(v) for v in rng.integers(1, 6 if n < 3 else 4, n)]
    kernel = [int(v) for v in rng.integers(1, 5, n)]
    strides = tuple(int(v) for v in rng.integers(1, 4, n))
    rhs_dilation = tuple(int(v) for v in rng.integers(1, 3, n)) if rng.random() < 0.4 else None
    if rng.random() < 0.5:
        padding = ["SAME", "VALID"][rng.integers(2)]
    else:
        low = 0 if consistent else -2
        padding = [tuple(int(v) for v in rng.integers(low, 4, 2)) for _ in range(n)]
    default = {1: ("NHC", "HIO", "NHC"), 2: ("NHWC", "HWIO", "NHWC"),
               3: ("NHWDC", "HWDIO", "NHWDC")}[n]
    rhs_channels = (c_in, c_out) if transpose_kernel else (c_out, c_in)
    lhs, rhs = _arrays(rng, dn, n, int(rng.integers(1, 3)), c_in, rhs_channels, in_size, kernel,
                       default)
    return (lhs, rhs, strides, padding), dict(
        rhs_dilation=rhs_dilation, dimension_numbers=dn, transpose_kernel=transpose_kernel,
        use_consistent_padding=consistent)


def _oracle(jax, name, arguments, keywords):
    """jax.lax's result as a NumPy array, or the exception it raised."""
    try:
        return np.asarray(getattr(jax.lax, name)(*arguments, **keywords))
    except Exception as exc:   # noqa: BLE001 -- any refusal counts
        return exc


def compare(jax, name, arguments, keywords):
    """``"match"``, ``"both refuse"``, or raise AssertionError with the case."""
    expected = _oracle(jax, name, arguments, keywords)
    function = getattr(compat, name)
    if isinstance(expected, Exception):
        with pytest.raises((ValueError, TypeError)):
            function(*arguments, **keywords)
        return "both refuse"
    actual = function(*arguments, **keywords)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, keywords)
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10, err_msg=str(keywords))
    text = function(*arguments, explain=True, **keywords)
    scope = dict(np=np, fastdeconv=fastdeconv, lhs=arguments[0], rhs=arguments[1])
    np.testing.assert_array_equal(eval(text, scope), actual, err_msg=text)
    return "match"


@pytest.mark.parametrize("seed", range(GENERAL_CASES))
def test_conv_general_dilated_matches_jax(jax, seed):
    arguments, keywords = general_case(seed)
    compare(jax, "conv_general_dilated", arguments, keywords)


@pytest.mark.parametrize("seed", range(TRANSPOSE_CASES))
def test_conv_transpose_matches_jax(jax, seed):
    arguments, keywords = transpose_case(seed)
    compare(jax, "conv_transpose", arguments, keywords)


def test_the_sweeps_cover_the_features():
    """The random cases include every feature the module claims (a sweep that silently
    stopped drawing, say, batch groups would pass without testing them)."""
    general = [general_case(s) for s in range(GENERAL_CASES)]
    transposed = [transpose_case(s) for s in range(TRANSPOSE_CASES)]
    kw = [k for _, k in general]
    assert any(k["feature_group_count"] > 1 for k in kw)
    assert any(k["batch_group_count"] > 1 for k in kw)
    assert any(k["lhs_dilation"] and max(k["lhs_dilation"]) > 1 for k in kw)
    assert any(isinstance(a[3], list) and min(min(p) for p in a[3]) < 0 for a, _ in general)
    assert {a[3] for a, _ in general if isinstance(a[3], str)} == {"SAME", "VALID",
                                                                  "SAME_LOWER", "same"}
    assert {a[0].ndim for a, _ in general} == {3, 4, 5}
    tk = [k for _, k in transposed]
    assert {k["transpose_kernel"] for k in tk} == {True, False}
    assert {k["use_consistent_padding"] for k in tk} == {True, False}
    assert {str(k["dimension_numbers"]) for k in tk} >= {"None", str(LAYOUTS[2][4])}


# ---------------------------------------------------------------------- fixed cases
def test_explained_calls_show_the_translation():
    lhs, rhs = np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 4))
    dn = ("NHWC", "HWIO", "NHWC")
    assert compat.conv_general_dilated(lhs, rhs, (1, 1), "SAME", dimension_numbers=dn,
                                       explain=True) == (
        "fastdeconv.conv(lhs, rhs, padding='same', data_format='channels_last', "
        "weight_format='HWIO')")
    # negative padding crops, lhs_dilation with window strides subsamples
    assert compat.conv_general_dilated(lhs, rhs, (1, 1), [(-1, 0), (0, 0)],
                                       dimension_numbers=dn, explain=True).startswith(
        "fastdeconv.conv(lhs[:, 1:], rhs")
    text = compat.conv_general_dilated(lhs, rhs, (2, 1), [(0, 0), (0, 0)], lhs_dilation=(2, 2),
                                       dimension_numbers=dn, explain=True)
    assert text.startswith("fastdeconv.conv_transpose(lhs, np.flip(rhs, (0, 1)), stride=(2, 2)")
    assert text.endswith("[:, ::2]")
    # Keras's Conv2DTranspose kernel: transpose_kernel=True is the canonical HWOI weight
    assert compat.conv_transpose(lhs, np.ones((3, 3, 4, 2)), (2, 2), "SAME",
                                 transpose_kernel=True, explain=True) == (
        "fastdeconv.conv_transpose(lhs, rhs, stride=(2, 2), padding='same', "
        "data_format='channels_last', weight_format='HWOI')")


def test_batch_groups_are_a_grouped_convolution_of_the_regrouped_batch():
    lhs, rhs = np.ones((4, 2, 5)), np.ones((6, 2, 3))
    text = compat.conv_general_dilated(lhs, rhs, (1,), "VALID", batch_group_count=2,
                                       explain=True)
    assert text == ("fastdeconv.conv(lhs.reshape(2, 2, 2, 5).transpose(1, 0, 2, 3)"
                    ".reshape(2, 4, 5), rhs, groups=2)")
    assert compat.conv_general_dilated(lhs, rhs, (1,), "VALID", batch_group_count=2).shape == (
        2, 6, 3)


def test_empty_outputs_and_cropped_inputs_give_zeros():
    lhs, rhs = np.ones((1, 1, 3)), np.ones((1, 1, 5))
    assert compat.conv_general_dilated(lhs, rhs, (1,), "VALID").shape == (1, 1, 0)
    assert compat.conv_general_dilated(lhs, rhs, (1,), "VALID", explain=True) == (
        "np.zeros((1, 1, 0), dtype=np.float64)")
    # the input cropped away entirely, the output made of padding only
    out = compat.conv_general_dilated(lhs, np.ones((1, 1, 1)), (1,), [(-3, 2)])
    assert out.shape == (1, 1, 2) and not out.any()


@pytest.mark.parametrize("call, error, match", [
    (lambda: compat.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2, 2)), (1,),
                                         "SAME"), ValueError, "same number of dimensions"),
    (lambda: compat.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1, 1),
                                         "SAME"), ValueError, "window_strides"),
    (lambda: compat.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,),
                                         "FULL"), ValueError, "padding must be one of"),
    (lambda: compat.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,),
                                         [(1, 2, 3)]), ValueError, "padding must be"),
    (lambda: compat.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,),
                                         "SAME", lhs_dilation=(2,)),
     ValueError, "string padding is not implemented"),
    (lambda: compat.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,),
                                         [(-9, 0)]), ValueError, "negative padding"),
    (lambda: compat.conv_general_dilated(np.ones((1, 4, 4)), np.ones((2, 2, 2)), (1,),
                                         "SAME", feature_group_count=2, batch_group_count=2),
     ValueError, "at most one"),
    (lambda: compat.conv_general_dilated(np.ones((1, 3, 4)), np.ones((2, 2, 2)), (1,),
                                         "SAME", feature_group_count=2),
     ValueError, "feature_group_count=2"),
    (lambda: compat.conv_general_dilated(np.ones((3, 2, 4)), np.ones((2, 2, 2)), (1,),
                                         "SAME", batch_group_count=2),
     ValueError, "batch_group_count=2"),
    (lambda: compat.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,), "SAME",
                                         dimension_numbers=("NCH", "OIW", "NCH")),
     ValueError, "same spatial letters"),
    (lambda: compat.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,), "SAME",
                                         dimension_numbers="NCH"),
     TypeError, "dimension_numbers must be"),
    (lambda: compat.conv_transpose(np.ones((1, 4, 1)), np.ones((2, 1, 1)), (2,), "SAME",
                                   transpose_kernel="yes"), TypeError, "transpose_kernel"),
    (lambda: compat.conv_transpose(np.ones((1, 4, 1)), np.ones((2, 1, 1)), (2,), "SAME_LOWER",
                                   use_consistent_padding=True), ValueError, "padding must be"),
    (lambda: compat.conv_transpose(np.ones((1, 4, 1)), np.ones((2, 1, 1)), (2,), "SAME",
                                   explain=1), TypeError, "explain must be"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


if __name__ == "__main__":   # the counts for the notes
    import collections
    import os

    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
    import jax as jax_module

    jax_module.config.update("jax_enable_x64", True)
    counts = collections.Counter()
    for name, make, cases in (("conv_general_dilated", general_case, GENERAL_CASES),
                              ("conv_transpose", transpose_case, TRANSPOSE_CASES)):
        for seed in range(cases):
            try:
                counts[name, compare(jax_module, name, *make(seed))] += 1
            except AssertionError:
                counts[name, "mismatch"] += 1
    for key, count in sorted(counts.items()):
        print(*key, count)
