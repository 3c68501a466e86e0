"""The convolution algorithms, one module each, and their registry.

The public functions of :mod:`fastdeconv._conv` validate and then run one of three passes
(:func:`run_pass`): ``"forward"`` (y = conv(x)), ``"backward_input"`` (grad_x = conv^T(grad_y),
i.e. ``conv_transpose``) and ``"backward_weight"``. Which algorithm runs a pass is decided
from the geometry alone by one chooser (:mod:`._chooser`), which walks :data:`REGISTRY` in
this order and takes the first algorithm whose rule says it pays:

==================  ================================  ======================================
module              passes (name)                     rule (thresholds: :class:`Budget`)
==================  ================================  ======================================
winograd            forward, backward_input           2-d 3x3, stride 1 (backward_input: as
                    (stride 1), backward_weight       a forward conv), enough channels and
                    ("winograd")                      tiles, few tiles past the edges
winograd_phases     backward_input ("winograd")       every stride phase an r x r Winograd
                                                      conv with enough tiles and channels,
                                                      and not packed_phases' rule
packed_wgrad        backward_weight ("packed")        the packed engine over channels-last
                                                      copies: 2-d and up, >= 2 taps, enough
                                                      input channels per group and work, a
                                                      padded input under twice the input
direct              forward ("direct")                a stride above 1, enough taps per
                                                      stride step, channels per group and
                                                      work, a weight that stays in cache
                                                      (the input read in place, channels-last)
space_to_depth      forward, backward_weight          kernel r x stride (r = 2, 3), the
                                                      Winograd rule of the rearranged problem
depthwise           backward_input                    one input channel a group, dilation 1,
                                                      its buffer fits
subpixel            backward_input                    kernel a multiple of the stride, large
                                                      kernels (or 16 taps where packed_phases
                                                      does not apply), small intermediate
phases              backward_input                    never by rule (forced only)
packed              forward ("packed")                enough output positions per sample,
                                                      enough work, a weight per group that
                                                      stays in cache (the packed engine)
packed_col2im       backward_input                    the packed engine's col2im: dilation
                    ("packed_col2im")                 1, >= 4 taps per stride step, enough
                                                      input channels, few positions per
                                                      input channel, enough work
packed_phases       backward_input                    the packed engine's stride phases:
                    ("packed_phases")                 enough output channels per group,
                                                      taps per phase and work
im2col              forward, backward_weight          any geometry: the catch-all, last
                    ("im2col"); backward_input
                    ("col2im")
==================  ================================  ======================================

Every algorithm module has the same interface:

``PASSES``
    ``{pass_name: algorithm name}`` of the passes it serves (the name :func:`forced_algorithm`
    and ``Plan.algorithm`` use).
``plan(pass_name, problem, budget, itemsize)``
    A :class:`Plan` (or a subclass carrying every sub-problem and layout it derived), or None
    where the algorithm does not apply or its workspace does not fit ``budget``.
``might_pay(pass_name, problem, budget, itemsize)``, ``pays(plan, budget, itemsize)``
    The default rule: arithmetic checked before planning (so that costly plans are not
    made in vain), then the rule on the plan. Forcing skips both.
``run(plan, first, second)``
    Allocate the pass's output and compute it from the plan alone.
``prepare_weight(plan, weight, known=None)`` (optional)
    For prepared layers (:class:`fastdeconv.PreparedConv`): the weight in the form ``run``
    makes of it on every call, as ``{key: array-like with nbytes}`` (equal keys, equal forms;
    those in ``known`` are reused); ``run(plan, first, second, prepared)`` then takes it and
    must give the same bits. direct, packed, packed_col2im, packed_phases, subpixel, winograd
    and winograd_phases have it.

Adding an algorithm: a module with this interface (and its kernel), one entry in
:data:`REGISTRY`, its thresholds as fields of :class:`Budget`.

Tiles are cache-sized (``Budget.tile_bytes``) and never larger than
``Budget.workspace_bytes``: when one sample has few output positions, several whole samples
share a tile (one larger GEMM, up to ``target_columns`` columns); otherwise a tile is a range
of output positions of one sample. (The packed engine's weight gradient cuts the batch into
parts that fill ``Budget.workspace_bytes`` instead: larger parts measured faster there.)
"""

from . import (_chooser, depthwise, direct, im2col, packed, packed_col2im, packed_phases,
               packed_wgrad, phases, space_to_depth, subpixel, winograd, winograd_phases)
from ._budget import DEFAULT_BUDGET, Budget, budget, current_budget
from ._chooser import ALGORITHMS, forced_algorithm, plan, run_pass
from ._common import BLAS_INT_MAX, Plan

__all__ = ["ALGORITHMS", "BLAS_INT_MAX", "Budget", "DEFAULT_BUDGET", "Plan", "REGISTRY",
           "budget", "current_budget", "forced_algorithm", "plan", "run_pass"]

#: The algorithms in the order the chooser tries them; the last applies to every geometry.
REGISTRY = (winograd, winograd_phases, packed_wgrad, direct, space_to_depth, depthwise, subpixel,
            phases, packed, packed_col2im, packed_phases, im2col)
_chooser.install(REGISTRY)
