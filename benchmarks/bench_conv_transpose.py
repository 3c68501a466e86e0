"""Transposed convolution (``fastdeconv.conv_transpose``) on the suite's conv_transpose cases."""

from .common import DTYPES, CaseSuite, case_names, fastdeconv


class ConvTranspose(CaseSuite):
    op = "conv_transpose"
    params = [case_names("conv_transpose"),  # case (the suite)
              DTYPES]                         # dtype

    def run(self):
        fastdeconv.conv_transpose(self.x, self.weight, **self.kwargs)

    def time_forward(self, case, dtype):
        self.run()

    def peakmem_forward(self, case, dtype):
        self.run()
