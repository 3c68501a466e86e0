"""Argument checks shared by the compat modules: ONNX-, TF- or JAX-style attribute lists.

Every error names the parameter and shows its value.
"""

import operator

import numpy as np

__all__ = ["array", "choice", "flag", "int_value", "ints", "per_axis", "spatial_rank"]


def array(value, name):
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except Exception as exc:   # ragged lists and the like
        raise TypeError(f"{name} must be an array, got {type(value).__name__}: {exc}") from None


def spatial_rank(X, name, *, most=3):
    if X.ndim < 3 or X.ndim > most + 2:
        raise ValueError(f"{name} must have shape (N, C, D1, ..., Dn) with 1 to {most} spatial "
                         f"dimensions, got shape {X.shape}")
    return X.ndim - 2


def int_value(value, name, minimum=None):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def ints(value, name, count, *, minimum=None):
    """An ONNX ``ints`` attribute (list, tuple or 1-d array) of ``count`` entries."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise ValueError(f"{name} must be a list of {count} ints, got an array of shape "
                             f"{value.shape}")
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of {count} ints, got {value!r}")
    if len(value) != count:
        raise ValueError(f"{name} must have {count} entries, got {len(value)}: {list(value)}")
    try:
        return tuple(int_value(v, name, minimum) for v in value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{exc} (in {name}={list(value)})") from None


def per_axis(value, name, n, default, *, minimum=None):
    return (default,) * n if value is None else ints(value, name, n, minimum=minimum)


def choice(value, name, choices):
    if isinstance(value, bytes):   # onnx.helper attributes of type STRING are bytes
        value = value.decode()
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def flag(value, name):
    """An ONNX ``int`` attribute that is 0 or 1 (``bool`` accepted)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if int_value(value, name) not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return bool(value)
