"""fg.op is public: the API example, registration, the graph, gradcheck at orders 1 and 2."""

from __future__ import annotations

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.ops import registry


@pytest.fixture
def cleanup():
    """Ops registered by a test are removed afterwards (the op table covers built-ins only)."""
    names: list[str] = []
    yield names
    store = getattr(registry, "_OPS", registry.OPS)
    for name in names:
        store.pop(name, None)


def test_api_example(cleanup):
    cleanup.append("softclip_test")

    @fg.op("softclip_test")
    def softclip(xp, x):
        return xp.tanh(x) * 2.0

    @softclip.rule
    def _(g, x, out):
        return g * (1.0 - (out / 2.0) ** 2) * 2.0

    x = fg.randn(3, requires_grad=True)
    y = softclip(x)
    assert [node.name for node in fg.graph.walk(y)] == ["softclip_test"]
    np.testing.assert_allclose(y.numpy(), np.tanh(x.numpy()) * 2, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (1 - np.tanh(x.numpy()) ** 2), rtol=1e-5)
    x64 = fg.randn(4, dtype=fg.float64, requires_grad=True)
    assert fg.gradcheck(softclip, (x64,))
    assert fg.gradcheck(lambda t: fg.grad(lambda u: softclip(u).sum())(t).sum(), (x64,))
    _, tangent = fg.jvp(softclip, (x64,), (fg.ones(4, dtype=fg.float64),))
    np.testing.assert_allclose(tangent.numpy(), 2 * (1 - np.tanh(x64.numpy()) ** 2))


def test_two_inputs_keyword_and_broadcasting(cleanup):
    cleanup.append("weighted_diff_test")

    @fg.op("weighted_diff_test")
    def weighted_diff(xp, x, y, *, alpha=0.5):
        return x - alpha * y

    @weighted_diff.rule
    def _(g, x, y, needs, alpha):
        return (g if needs[0] else None), (-alpha * g if needs[1] else None)

    a = fg.randn(2, 3, requires_grad=True)
    b = fg.randn(3, requires_grad=True)
    weighted_diff(a, b, alpha=2.0).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), [-4.0, -4.0, -4.0])
    np.testing.assert_allclose(a.grad.numpy(), np.ones((2, 3)))
    assert weighted_diff(a, b).grad_fn.params == {"alpha": 0.5}


def test_names_are_unique(cleanup):
    with pytest.raises(ValueError, match="'relu' is already registered"):
        fg.op("relu")(lambda xp, x: x)
