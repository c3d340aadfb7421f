"""The operation library: each op's forward and derivative rule, registered by name.

Families, in import order (each may use the ones before it): :mod:`.elementwise`,
:mod:`.shape`, :mod:`.arithmetic`, :mod:`.reduction`, :mod:`.selection` (max/min with
indices, argmax), :mod:`.nn` (fused network ops), :mod:`.conv` (convolution and pooling).
``OPS`` maps every op name to its definition (read-only).
"""

from flowgrad.ops import elementwise, shape, arithmetic, reduction, selection, nn, conv  # noqa: I001
from flowgrad.ops.registry import OPS, OpDef, apply, bind_operators, op

bind_operators()

__all__ = ["OPS", "OpDef", "apply", "op", "arithmetic", "conv", "elementwise", "nn", "reduction",
           "selection", "shape"]
