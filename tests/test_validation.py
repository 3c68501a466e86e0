"""Argument helpers in isolation: tuples, ints, the dtype table, array conversion."""

import numpy as np
import pytest

from fastdeconv._validation import (
    DTYPE_TABLE,
    as_array,
    check_int,
    normalize_tuple,
    result_dtype,
)


def test_normalize_tuple_repeats_an_int_for_every_dimension():
    assert normalize_tuple(2, 3, "stride") == (2, 2, 2)
    assert normalize_tuple(np.int64(4), 1, "stride") == (4,)


def test_normalize_tuple_accepts_sequences_and_arrays_of_the_right_length():
    assert normalize_tuple([1, 2], 2, "stride") == (1, 2)
    assert normalize_tuple(np.array([3, 1, 2]), 3, "dilation") == (3, 1, 2)


@pytest.mark.parametrize(
    "value, error, match",
    [
        ((1, 2), ValueError, r"stride must be an int or a tuple of 3 positive ints, got \(1, 2\) of length 2"),
        ((2, 0, 1), ValueError, r"stride must be .* positive ints, got \(2, 0, 1\)"),
        (-1, ValueError, r"stride .* got -1"),
        (1.5, TypeError, r"stride must be an int or a tuple .* got 1.5"),
        ((1, 2.0, 3), TypeError, r"got \(1, 2.0, 3\)"),
        (True, TypeError, r"got True"),
        ("2", TypeError, r"got '2'"),
        (None, TypeError, r"got None"),
    ],
)
def test_normalize_tuple_rejects_bad_values_naming_the_parameter(value, error, match):
    with pytest.raises(error, match=match):
        normalize_tuple(value, 3, "stride", min_value=1)


def test_check_int_rejects_bools_floats_and_small_values():
    assert check_int(np.int32(3), "groups", min_value=1) == 3
    with pytest.raises(TypeError, match="groups must be an int, got True"):
        check_int(True, "groups")
    with pytest.raises(TypeError, match="groups must be an int, got 2.0"):
        check_int(2.0, "groups")
    with pytest.raises(ValueError, match="groups must be >= 1, got 0"):
        check_int(0, "groups", min_value=1)


# The dtype policy as a table (pywt's dtypes_in / dtypes_out).
DTYPES_IN_OUT = [
    ((np.float32,), np.float32),
    ((np.float64,), np.float64),
    ((np.float16,), np.float32),
    ((np.bool_,), np.float64),
    ((np.int8,), np.float64),
    ((np.uint8,), np.float64),
    ((np.int32,), np.float64),
    ((np.int64,), np.float64),
    ((np.uint64,), np.float64),
    ((np.float32, np.float64), np.float64),
    ((np.float16, np.float32), np.float32),
    ((np.float16, np.float64), np.float64),
    ((np.int8, np.float32), np.float32),   # numpy.result_type(int8, float32) is float32
    ((np.int32, np.float32), np.float64),  # ... and (int32, float32) is float64
    ((np.bool_, np.float32), np.float32),
]


@pytest.mark.parametrize("dtypes_in, dtype_out", DTYPES_IN_OUT)
def test_result_dtype_follows_result_type_then_the_table(dtypes_in, dtype_out):
    arrays = [(np.zeros(1, dtype=dt), f"a{i}") for i, dt in enumerate(dtypes_in)]
    assert result_dtype(*arrays) == np.dtype(dtype_out)


def test_result_dtype_skips_missing_arrays():
    assert result_dtype((np.zeros(1, np.float32), "x"), (None, "bias")) == np.float32


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_result_dtype_rejects_complex_naming_the_parameter(dtype):
    with pytest.raises(TypeError, match="weight has complex dtype"):
        result_dtype((np.zeros(1), "x"), (np.zeros(1, dtype=dtype), "weight"))


@pytest.mark.parametrize("dtype", [np.longdouble, object, "U3", "M8[s]"])
def test_result_dtype_rejects_non_numeric_and_long_double(dtype):
    if np.dtype(dtype) == np.float64:  # platforms where long double is double
        pytest.skip("long double is float64 here")
    with pytest.raises(TypeError, match="x has unsupported dtype"):
        result_dtype((np.zeros(1, dtype=dtype), "x"))


def test_dtype_table_only_produces_float32_or_float64():
    assert set(DTYPE_TABLE.values()) == {np.dtype(np.float32), np.dtype(np.float64)}


def test_as_array_names_the_parameter_when_conversion_fails():
    with pytest.raises(TypeError, match="weight could not be converted"):
        as_array([[1, 2], [3]], "weight")


def test_result_dtype_accepts_byte_swapped_arrays():
    swapped = np.zeros(3, dtype=np.dtype(np.float64).newbyteorder())
    assert result_dtype((swapped, "x")) == np.float64
    assert result_dtype((np.zeros(1, dtype=">f4"), "x"), (np.zeros(1, dtype="<f4"), "w")) == np.float32


def test_validated_problems_are_kept_per_exact_arguments():
    from fastdeconv._problem import conv_problem, conv_transpose_problem
    kw = dict(stride=2, padding=(1, 1), groups=1)
    first = conv_problem((2, 4, 9, 9), (6, 4, 3, 3), **kw)
    assert conv_problem((2, 4, 9, 9), (6, 4, 3, 3), **kw) is first     # kept
    again = conv_problem((2, 4, 9, 9), (6, 4, 3, 3), stride=np.int64(2), padding=(1, 1),
                         groups=1)                                     # the same names
    assert again == first and again is not first                      # not kept: checked
    assert conv_problem((2, 4, 9, 9), (6, 4, 3, 3), stride=[2, 2], padding=[1, 1],
                        groups=1) == first
    transposed = conv_transpose_problem((2, 4, 9, 9), (4, 3, 3, 3), **kw)
    assert conv_transpose_problem((2, 4, 9, 9), (4, 3, 3, 3), **kw) is transposed
    assert transposed != first


@pytest.mark.parametrize("good, bad", [
    (dict(stride=2), dict(stride=2.0)),          # 2.0 == 2
    (dict(stride=1), dict(stride=True)),         # True == 1
    (dict(groups=1), dict(groups=1.0)),          # 1.0 == 1
    (dict(padding=(1, 1)), dict(padding=(1, 1.0))),
    (dict(dilation=(1, 1)), dict(dilation=(True, 1))),
])
def test_kept_problems_never_answer_for_arguments_the_checks_reject(good, bad):
    # 2.0 == 2 and True == 1 in Python, with equal hashes: a key by value alone would return
    # the problem kept for the int and skip the check; the key holds the exact types
    from fastdeconv._problem import conv_problem
    assert conv_problem((2, 4, 9, 9), (6, 4, 3, 3), **good) is not None   # kept first
    for _ in range(2):   # failures are not kept either
        with pytest.raises(TypeError):
            conv_problem((2, 4, 9, 9), (6, 4, 3, 3), **bad)
