"""flowgrad's benchmarks: flowgrad against PyTorch eager and a hand-written NumPy floor.

They live beside the package, not in it, so an installed flowgrad does not carry them: run
them from a source checkout with ``python -m benchmarks`` (``--help`` lists the options);
``flowgrad bench`` run from a checkout does the same. PyTorch is optional; without it its
columns say "not installed". See ``docs/benchmarks.md`` for the method.

* :mod:`benchmarks.cases`      the cases (``@case`` functions) and the size profiles;
* :mod:`benchmarks.harness`    :func:`~benchmarks.harness.run_benchmarks`: thread limits,
  machine facts, the cases in turn;
* :mod:`benchmarks.timing`     alternating timing blocks and paired ratios;
* :mod:`benchmarks.memory`     traced and resident memory of a training step;
* :mod:`benchmarks.machine`    CPU, BLAS, threads, load average;
* :mod:`benchmarks.report`     results as data, console text, Markdown, JSON;
* :mod:`benchmarks.fg_impl`, :mod:`benchmarks.torch_impl`, :mod:`benchmarks.floor`  the
  same work written with flowgrad, PyTorch and bare NumPy;
* :mod:`benchmarks.profiler`   where flowgrad's time goes (``python -m benchmarks.profiler``).

Importing this package puts the checkout's ``src`` first on ``sys.path``, so the flowgrad
measured is the one in this checkout, installed or not.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
if (_SRC / "flowgrad").is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))
