"""The benchmark layer suite: the cases, their geometry and FLOP counts, and how they are chosen.

The suite is ``suite.json`` in this package (package data, the only copy): one operator call
per case, as real networks make them. The environment variable ``FASTDECONV_BENCH_SUITE`` (or
``python -m fastdeconv bench --suite FILE``) names another file of the same form to use instead.
"""

import json
import os
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["OPS", "SUITE", "SUITE_ENV", "Case", "load_suite", "make_operands", "select_cases",
           "suite_text"]

OPS = ("conv_transpose", "conv", "conv_wgrad")

#: Environment variable naming a suite JSON file to use instead of the packaged one.
SUITE_ENV = "FASTDECONV_BENCH_SUITE"

#: Seed of every operand the benchmarks draw.
SEED = 1234


def suite_text(path=None):
    """Text of a suite file: ``path``, else ``$FASTDECONV_BENCH_SUITE``, else the packaged one."""
    path = path or os.environ.get(SUITE_ENV)
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    return _packaged_text()


def _packaged_text():
    return resources.files(__package__).joinpath("suite.json").read_text(encoding="utf-8")


#: Entries of the packaged suite (dicts, as in ``suite.json``). Shapes are (N, C, *spatial);
#: k, s, p, output_padding and d apply to every spatial dimension.
SUITE = tuple(json.loads(_packaged_text())["cases"])


@dataclass(frozen=True)
class Case:
    """One operator call of the suite.

    Parameters
    ----------
    name : str
        Case name, e.g. ``"dcgan_g2"``.
    op : {"conv_transpose", "conv", "conv_wgrad"}
        Transposed convolution, forward convolution, or the gradient of a convolution with
        respect to its weight.
    N, Cin, Cout : int
        Batch size and the channels of the *convolution's* input and output; for
        ``conv_transpose`` they are the channels of its own input and output.
    spatial : tuple of int
        Spatial size of the operator's input ``x``.
    k, s, p, output_padding, d, groups : int
        Kernel size, stride, zero padding, output padding (``conv_transpose`` only), dilation
        and groups, the same in every spatial dimension.
    """

    name: str
    op: str
    N: int
    Cin: int
    Cout: int
    spatial: tuple
    k: int
    s: int
    p: int
    output_padding: int = 0
    d: int = 1
    groups: int = 1

    @classmethod
    def from_dict(cls, entry):
        """Build a case from one entry of ``suite.json`` (unknown keys are an error)."""
        entry = dict(entry)
        entry["spatial"] = tuple(entry["spatial"])
        case = cls(**entry)
        if case.op not in OPS:
            raise ValueError(f"case {case.name!r}: op must be one of {OPS}, got {case.op!r}")
        return case

    @property
    def ndim(self):
        """Number of spatial dimensions."""
        return len(self.spatial)

    @property
    def out_spatial(self):
        """Spatial size of the operator's output (of the convolution for ``conv_wgrad``)."""
        extent = self.d * (self.k - 1) + 1
        if self.op == "conv_transpose":
            return tuple((n - 1) * self.s - 2 * self.p + extent + self.output_padding
                         for n in self.spatial)
        return tuple((n + 2 * self.p - extent) // self.s + 1 for n in self.spatial)

    @property
    def weight_shape(self):
        """Weight shape: (Cin, Cout/groups, *k) for conv_transpose, else (Cout, Cin/groups, *k)."""
        kernel = (self.k,) * self.ndim
        if self.op == "conv_transpose":
            return (self.Cin, self.Cout // self.groups) + kernel
        return (self.Cout, self.Cin // self.groups) + kernel

    @property
    def operand_shapes(self):
        """Shapes of the arrays the operator reads, by argument name."""
        x = (self.N, self.Cin) + self.spatial
        if self.op == "conv_wgrad":
            return {"grad_output": (self.N, self.Cout) + self.out_spatial, "x": x}
        return {"x": x, "weight": self.weight_shape}

    @property
    def result_shape(self):
        """Shape of the operator's result."""
        if self.op == "conv_wgrad":
            return self.weight_shape
        return (self.N, self.Cout) + self.out_spatial

    @property
    def params(self):
        """Keyword arguments of the fastdeconv call (stride, padding, dilation, groups, ...)."""
        params = {"stride": self.s, "padding": self.p, "dilation": self.d, "groups": self.groups}
        if self.op == "conv_transpose":
            params["output_padding"] = self.output_padding
        return params

    def macs(self):
        """Exact number of multiply-adds that touch real input (no padding, no inserted zeros).

        Per spatial dimension, count the pairs (position of the convolution's output ``o``,
        tap ``t``) whose input index ``o * s - p + t * d`` lies inside the input; the product of
        these counts times ``N * Cout * Cin / groups`` is the number of multiply-adds. A
        transposed convolution is the adjoint of the convolution from its output to its input,
        so the same count applies with the roles of the two sizes swapped.
        """
        if self.op == "conv_transpose":
            sizes = zip(self.spatial, self.out_spatial)  # (conv output, conv input)
        else:
            sizes = zip(self.out_spatial, self.spatial)
        count = self.N * self.Cout * (self.Cin // self.groups)
        for n_out, n_in in sizes:
            count *= sum(1 for o in range(n_out) for t in range(self.k)
                         if 0 <= o * self.s - self.p + t * self.d < n_in)
        return count

    def summary(self):
        """Short geometry string, e.g. ``16x512x4x4 -> 256x8x8 k4 s2 p1``."""
        def dims(shape):
            return "x".join(map(str, shape))
        text = (f"{dims((self.N, self.Cin) + self.spatial)} -> "
                f"{dims((self.Cout,) + self.out_spatial)} k{self.k} s{self.s} p{self.p}")
        for label, value, default in (("op", self.output_padding, 0), ("d", self.d, 1),
                                      ("g", self.groups, 1)):
            if value != default:
                text += f" {label}{value}"
        return text


def load_suite(path=None):
    """Return the benchmark cases.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A ``suite.json`` file. Defaults to the file named by the environment variable
        ``FASTDECONV_BENCH_SUITE`` if set, else the packaged ``suite.json``.

    Returns
    -------
    list of Case
    """
    return [Case.from_dict(entry) for entry in json.loads(suite_text(path))["cases"]]


def select_cases(suite, selectors):
    """Cases whose name or op is in ``selectors`` (all if None), in suite order.

    ``selectors`` is a sequence of names or one comma-separated string; an unknown name is a
    ValueError listing the known ones.
    """
    if selectors is None:
        return list(suite)
    if isinstance(selectors, str):
        selectors = selectors.split(",")
    selectors = [s.strip() for s in selectors if s.strip()]
    known = {case.name for case in suite} | set(OPS)
    unknown = [s for s in selectors if s not in known]
    if unknown:
        raise ValueError(f"unknown case or op {unknown}; choose from {sorted(known)}")
    return [case for case in suite if case.name in selectors or case.op in selectors]


def make_operands(case, dtype):
    """Seeded standard-normal operands of ``case`` (the same for every peer)."""
    rng = np.random.default_rng(SEED)
    return {name: rng.standard_normal(shape, dtype=np.dtype(dtype))
            for name, shape in case.operand_shapes.items()}
