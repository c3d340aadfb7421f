"""``flowgrad explore``: the dataflow graph, the chain rule and gradient descent in the browser.

A local web app (``flowgrad explore``, extra ``flowgrad[explore]``: Starlette and uvicorn)
with three views: the graph of a formula with values and gradients on its edges and the
reverse sweep step by step; optimizers of :mod:`flowgrad.optim` descending 2-D surfaces and
a 1-D function; and the reference network training live on the embedded digits, with a
canvas to draw a digit on. Every number on the page is computed by flowgrad, in Python, and
sent as JSON; the page's JavaScript only draws.

* :mod:`flowgrad.explore.api`: the JSON API as plain functions (no web stack needed);
* :mod:`flowgrad.explore.jobs`: the one training run, in a child process;
* :mod:`flowgrad.explore.app`: the Starlette app, its safety rules, and :func:`serve`.

Nothing here is imported by ``import flowgrad``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MISSING_EXTRA", "create_app", "serve"]

#: What to tell a user whose Python lacks the web stack.
MISSING_EXTRA = ("flowgrad explore needs Starlette and uvicorn; install them with "
                 "pip install 'flowgrad[explore]'")


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The ASGI app; see :func:`flowgrad.explore.app.create_app`."""
    from flowgrad.explore.app import create_app as create

    return create(*args, **kwargs)


def serve(*args: Any, **kwargs: Any) -> None:
    """Run the server until Ctrl-C; see :func:`flowgrad.explore.app.serve`."""
    from flowgrad.explore.app import serve as run

    run(*args, **kwargs)
