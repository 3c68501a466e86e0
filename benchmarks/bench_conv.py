"""Convolution: ``fastdeconv.conv`` on the suite's conv cases, the weight gradient alone on
its conv_wgrad cases, and the whole ``fastdeconv.conv_backward`` on both."""

from .common import DTYPES, CaseSuite, case_names, fastdeconv


class Conv(CaseSuite):
    op = "conv"
    params = [case_names("conv"),  # case (the suite)
              DTYPES]              # dtype

    def run(self):
        fastdeconv.conv(self.x, self.weight, **self.kwargs)

    def time_forward(self, case, dtype):
        self.run()

    def peakmem_forward(self, case, dtype):
        self.run()


class ConvWeightGrad(CaseSuite):
    """The weight gradient alone (``conv_backward(..., grads=("weight",))``), as PyTorch's
    ``torch.nn.grad.conv2d_weight``, on the weight-gradient cases."""

    op = "conv_wgrad"
    params = [case_names("conv_wgrad"),  # case (the suite)
              DTYPES]                    # dtype

    def run(self):
        fastdeconv.conv_backward(self.grad_output, self.x, self.weight, grads=("weight",),
                                 **self.kwargs)

    def time_backward(self, case, dtype):
        self.run()

    def peakmem_backward(self, case, dtype):
        self.run()


class ConvBackward(CaseSuite):
    """The whole ``conv_backward`` (grad_x, grad_weight, grad_bias) on conv and wgrad cases."""

    op = "conv_backward"
    params = [case_names("conv") + case_names("conv_wgrad"),  # case (the suite)
              DTYPES]                                         # dtype

    def run(self):
        fastdeconv.conv_backward(self.grad_output, self.x, self.weight, **self.kwargs)

    def time_backward(self, case, dtype):
        self.run()

    def peakmem_backward(self, case, dtype):
        self.run()
