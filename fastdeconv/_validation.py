"""Argument validation shared by every public operator.

Everything a user passes is checked here, in Python, before any compiled code runs: the
Cython layer trusts what these helpers return. Each error names the parameter and shows the
bad value.
"""

import numbers
import operator
import sys
from math import prod

import numpy as np

__all__ = [
    "normalize_tuple",
    "check_int",
    "result_dtype",
    "as_compute_array",
    "check_ndim",
    "as_sequence",
    "as_int_tuple",
    "spatial_ndim",
    "full_input_shape",
    "MAX_SPATIAL",
    "DTYPE_TABLE",
]

#: Most spatial dimensions of the resize, pooling and pixel-shuffle operators (1-d to 3-d).
MAX_SPATIAL = 3


def check_int(value, name, *, min_value=None):
    """Return ``value`` as a Python int, or raise TypeError/ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    value = operator.index(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")
    return value


def as_sequence(value, expected):
    """``value`` as a tuple (an ndarray through ``tolist``).

    Raises ``TypeError("<expected>, got <value>")`` when ``value`` is not iterable;
    ``expected`` starts with the parameter's name, e.g. ``"size must be a sequence of ints"``.
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    try:
        return tuple(value)
    except TypeError:
        raise TypeError(f"{expected}, got {value!r}") from None


def as_int_tuple(value, name, *, min_value=None, expected="a sequence of ints"):
    """``value``, a sequence of ints, as a tuple of Python ints (each checked by check_int)."""
    values = as_sequence(value, f"{name} must be {expected}")
    return tuple(check_int(n, name, min_value=min_value) for n in values)


def full_input_shape(input_shape, what, grad_output=None):
    """``input_shape``, the full shape ``(N, C, *spatial)`` of a backward function's input.

    Parameters
    ----------
    input_shape : sequence of int
        The shape as the user passed it.
    what : str
        The input it describes, in the messages ("pooled", "resized").
    grad_output : ndarray, optional
        When given, ``input_shape`` must have its batch, channels and number of dimensions;
        otherwise it needs at least one spatial dimension.
    """
    shape = as_int_tuple(input_shape, "input_shape", min_value=0,
                         expected="a sequence of ints (N, C, *spatial)")
    if grad_output is None:
        if len(shape) < 3:
            raise ValueError(f"input_shape must be the full shape (N, C, *spatial) of the "
                             f"{what} input, got {input_shape!r}")
    elif len(shape) != grad_output.ndim or shape[:2] != grad_output.shape[:2]:
        raise ValueError(
            f"input_shape must be the full shape (N, C, *spatial) of the {what} input, with "
            f"the batch, channels and number of dimensions of grad_output "
            f"{grad_output.shape}; got {input_shape!r}")
    return shape


def spatial_ndim(array, name):
    """Number of spatial dimensions of a batch ``(N, C, *spatial)``, 1 to MAX_SPATIAL."""
    if not 3 <= array.ndim <= 2 + MAX_SPATIAL:
        raise ValueError(f"{name} must have shape (N, C, *spatial) with 1 to {MAX_SPATIAL} "
                         f"spatial dimensions, got shape {array.shape}")
    return array.ndim - 2


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def normalize_tuple(value, ndim, name, *, min_value=None):
    """Expand an int or a sequence of ``ndim`` ints into a tuple of ``ndim`` ints.

    Parameters
    ----------
    value : int or sequence of int
        One value for every spatial dimension, or one value per dimension.
    ndim : int
        Number of spatial dimensions.
    name : str
        Parameter name used in error messages.
    min_value : int, optional
        Smallest allowed value.

    Raises
    ------
    TypeError
        If ``value`` is neither an int nor a sequence of ints.
    ValueError
        If the sequence has the wrong length or a value is below ``min_value``.
    """
    bound = {None: "", 0: " non-negative", 1: " positive"}.get(min_value, f" (>= {min_value})")
    expected = f"{name} must be an int or a tuple of {ndim}{bound} ints"
    if _is_int(value):
        values = (operator.index(value),) * ndim
    else:
        value = value.tolist() if isinstance(value, np.ndarray) else value   # for the messages
        values = as_sequence(value, expected)
        if not all(_is_int(v) for v in values):
            raise TypeError(f"{expected}, got {value!r}")
        if len(values) != ndim:
            raise ValueError(f"{expected}, got {value!r} of length {len(values)}")
        values = tuple(operator.index(v) for v in values)
    if min_value is not None and any(v < min_value for v in values):
        raise ValueError(f"{expected}, got {value!r}")
    return values


# The dtype policy, in one place. Keys are numpy dtype kinds or exact dtypes; see the
# "dtypes" section of the docs. The result dtype of an operator is
# ``DTYPE_TABLE[np.result_type(*inputs)]``.
DTYPE_TABLE = {
    "b": np.dtype(np.float64),  # bool
    "i": np.dtype(np.float64),  # signed integers
    "u": np.dtype(np.float64),  # unsigned integers
    np.dtype(np.float16): np.dtype(np.float32),
    np.dtype(np.float32): np.dtype(np.float32),
    np.dtype(np.float64): np.dtype(np.float64),
}


def result_dtype(*arrays_and_names):
    """Compute dtype for ``(array, name)`` pairs: ``np.result_type`` then :data:`DTYPE_TABLE`.

    ``None`` arrays are skipped. Complex, long double, object, string and other
    non-numeric inputs raise ``TypeError`` naming the offending parameter.
    """
    dtypes = []
    for array, name in arrays_and_names:
        if array is None:
            continue
        dt = array.dtype
        if dt.byteorder not in ("=", "|"):  # byte-swapped input: same values, native order
            dt = dt.newbyteorder("=")
        if dt.kind == "c":
            raise TypeError(
                f"{name} has complex dtype {dt}; fastdeconv operators are real-valued "
                "(apply them to the real and imaginary parts separately)"
            )
        if dt.kind not in "biuf" or (dt.kind == "f" and dt not in DTYPE_TABLE):
            raise TypeError(
                f"{name} has unsupported dtype {dt}; expected bool, an integer, "
                "float16, float32 or float64"
            )
        dtypes.append(dt)
    common = np.result_type(*dtypes)
    return DTYPE_TABLE.get(common, DTYPE_TABLE.get(common.kind))


def as_array(value, name):
    """``np.asarray`` with a TypeError naming the parameter when it fails."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except Exception as exc:  # e.g. ragged lists, tensors requiring grad
        raise TypeError(f"{name} could not be converted to a NumPy array: {exc}") from None


def check_ndim(array, name, ndim, description):
    """Raise ValueError unless ``array.ndim == ndim``."""
    if array.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions {description}, got shape {array.shape}"
        )


#: Arrays of at least this many bytes are allocated to start on a huge-page boundary (Linux).
HUGE_PAGE_ALIGN_FROM = 4 * 2**20
_HUGE_PAGE = 2**21
_ALIGN_HUGE_PAGES = sys.platform.startswith("linux")


def _huge_page_aligned(shape, dtype, nbytes, zero):
    """An array of ``shape`` (``nbytes`` bytes) whose data starts on a 2 MiB boundary: a view
    of a buffer of ``nbytes`` rounded up to 2 MiB, plus 2 MiB, so that every 2 MiB range the
    data touches lies inside the buffer. NumPy asks the kernel for transparent huge pages for
    its large buffers, but only whole, aligned 2 MiB ranges inside a buffer get them: a
    buffer that starts or ends inside one gets 4 KiB pages there, up to about 512 page faults
    of a few microseconds each at either end, which dominate the first call of a process on
    a few-MiB output (a later call reuses the C library's memory, without faults). The
    untouched head of a freshly mapped buffer is never resident."""
    padded = -(-nbytes // _HUGE_PAGE) * _HUGE_PAGE + _HUGE_PAGE
    buffer = (np.zeros if zero else np.empty)(padded, dtype=np.uint8)
    start = -buffer.ctypes.data % _HUGE_PAGE
    return buffer[start:start + nbytes].view(dtype).reshape(shape)


def allocate(shape, dtype, what, *, zero=False, result=True):
    """``numpy.empty`` / ``numpy.zeros`` with a MemoryError that says what and how large.

    A ``result`` (an array returned to the caller, not a temporary freed within the call) of
    at least :data:`HUGE_PAGE_ALIGN_FROM` bytes starts on a huge-page boundary on Linux
    (:func:`_huge_page_aligned`); temporaries keep NumPy's allocation, whose size the
    workspace budget counts exactly."""
    try:
        nbytes = prod(operator.index(n) for n in shape) * np.dtype(dtype).itemsize
        if result and _ALIGN_HUGE_PAGES and nbytes >= HUGE_PAGE_ALIGN_FROM:
            return _huge_page_aligned(tuple(shape), dtype, nbytes, zero)
        return (np.zeros if zero else np.empty)(shape, dtype=dtype)
    except (MemoryError, ValueError) as exc:  # ValueError: larger than numpy's index range
        nbytes = float(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
        raise MemoryError(
            f"cannot allocate the {what} of shape {tuple(shape)} and dtype {np.dtype(dtype)} "
            f"({nbytes / 2**30:.3g} GiB)"
        ) from exc


def available_memory_bytes():
    """Memory the system can still give this process (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_workspace(nbytes, what):
    """MemoryError (with the size) when a workspace of ``nbytes`` cannot fit in memory.

    For buffers that the operator builds before it can fail cleanly (NumPy temporaries):
    on Linux a large request is accepted lazily and the process is killed when the pages
    are touched, so the size is checked against ``MemAvailable`` first. Sizes under 1 GiB
    are not checked.
    """
    if nbytes < 2**30:
        return
    available = available_memory_bytes()
    if available is not None and nbytes > available:
        raise MemoryError(f"the {what} would need about {nbytes / 2**30:.3g} GiB; only "
                          f"{available / 2**30:.3g} GiB of memory is available")


def as_compute_array(array, dtype):
    """C-contiguous array of ``dtype``; copies only when needed (any layout is accepted).
    A 0-d array stays 0-d (``numpy.ascontiguousarray`` would make it 1-d, and the shape errors
    would then report ``(1,)`` for a scalar)."""
    return np.asarray(array, dtype=dtype, order="C")
