"""The operation library: each op's forward and derivative rule, registered by name.

Families: :mod:`.arithmetic`, :mod:`.elementwise`, :mod:`.reduction`, :mod:`.shape`,
:mod:`.nn` (fused network ops), :mod:`.selection` (max/min with indices, argmax),
:mod:`.conv` (convolution and pooling).
``OPS`` maps every op name to its definition.
"""

from flowgrad.ops import arithmetic, conv, elementwise, nn, reduction, selection, shape
from flowgrad.ops.registry import OPS, OpDef, apply, op
from flowgrad.tensor import bind_operators

bind_operators(OPS)

__all__ = ["OPS", "OpDef", "apply", "op", "arithmetic", "conv", "elementwise", "nn", "reduction",
           "selection", "shape"]
