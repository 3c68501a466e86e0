"""Convolution: ``fastdeconv.conv`` on the suite's conv cases and ``fastdeconv.conv_backward``
on its conv_wgrad cases (weight-gradient layers)."""

from .common import DTYPES, CaseSuite, case_names, fastdeconv


class Conv(CaseSuite):
    op = "conv"
    params = [case_names("conv"),  # case (shared/bench/suite.json)
              DTYPES]              # dtype

    def run(self):
        fastdeconv.conv(self.x, self.weight, **self.kwargs)

    def time_forward(self, case, dtype):
        self.run()

    def peakmem_forward(self, case, dtype):
        self.run()


class ConvWeightGrad(CaseSuite):
    """``conv_backward`` (grad_x, grad_weight and grad_bias) on the weight-gradient cases."""

    op = "conv_wgrad"
    params = [case_names("conv_wgrad"),  # case (shared/bench/suite.json)
              DTYPES]                    # dtype

    def run(self):
        fastdeconv.conv_backward(self.grad_output, self.x, self.weight, **self.kwargs)

    def time_backward(self, case, dtype):
        self.run()

    def peakmem_backward(self, case, dtype):
        self.run()
