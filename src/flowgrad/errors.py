"""flowgrad's error kinds: ordinary Python exceptions, also catchable as PyTorch's RuntimeError."""


class ShapeError(ValueError, RuntimeError):
    """Operand shapes that do not fit; the message names the shapes."""


class DtypeError(TypeError, RuntimeError):
    """A dtype that cannot be used here, e.g. requires_grad on an integer tensor."""
