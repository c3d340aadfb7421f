"""Where the time goes: calls, forward and backward time, and bytes produced per op.

``fg.profiler.profile()`` is a context manager: every op applied inside it (in this thread
or asyncio task) is timed, and so is every derivative rule the backward pass runs for it.
``prof.table()`` prints one row per op name, as ``torch.profiler``'s
``key_averages().table()`` does.

Example:
    >>> import flowgrad as fg
    >>> w = fg.randn(64, 32, requires_grad=True)
    >>> x = fg.randn(16, 64)
    >>> with fg.profiler.profile() as prof:
    ...     loss = fg.tanh(x @ w).sum()
    ...     loss.backward()
    >>> [(s.name, s.calls, s.backward_calls) for s in prof.key_averages()]  # doctest: +SKIP
    [('matmul', 1, 1), ('tanh', 1, 1), ('sum', 1, 1)]
    >>> print(prof.table(sort_by="total"))  # doctest: +SKIP

Times are wall-clock (``time.perf_counter``) around each op, so they include flowgrad's own
per-op work (type promotion, recording the graph) as well as NumPy's. A derivative rule's
time includes the ops it applies (when the backward is recorded, ``create_graph=True``),
which are not counted again as forward calls. Outside ``profile()`` nothing is timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flowgrad import anomaly

__all__ = ["OpStats", "profile"]

_SORT_KEYS = {
    "total": "total_time", "forward": "forward_time", "backward": "backward_time",
    "calls": "calls", "backward_calls": "backward_calls", "bytes": "bytes", "name": "name",
    "avg": "avg_time",
    # torch.profiler's names for the same orderings
    "cpu_time_total": "total_time", "self_cpu_time_total": "total_time", "count": "calls",
    "cpu_time": "avg_time", "cpu_memory_usage": "bytes", "self_cpu_memory_usage": "bytes",
}


@dataclass
class OpStats:
    """One op name's totals inside a :class:`profile`.

    Attributes:
        name: the op's name (``"matmul"``, or the name of your own ``fg.op``).
        calls: forward applications.
        forward_time: seconds spent applying it.
        backward_calls: how many times its derivative rule ran.
        backward_time: seconds spent in its derivative rule.
        bytes: bytes of the outputs its forward produced (0 for views such as reshape,
            which share their input's memory).
    """

    name: str
    calls: int = 0
    forward_time: float = 0.0
    backward_calls: int = 0
    backward_time: float = 0.0
    bytes: int = 0

    @property
    def total_time(self) -> float:
        """Forward plus backward seconds."""
        return self.forward_time + self.backward_time

    @property
    def avg_time(self) -> float:
        """Total seconds per forward call (per rule run for an op only seen in backward)."""
        return self.total_time / max(self.calls or self.backward_calls, 1)


def _time(seconds: float) -> str:
    """torch.profiler's style: 812.000us, 3.457ms, 1.204s."""
    us = seconds * 1e6
    if us < 1000:
        return f"{us:.3f}us"
    if us < 1e6:
        return f"{us / 1000:.3f}ms"
    return f"{us / 1e6:.3f}s"


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} B" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"  # unreachable; keeps type checkers content


class profile:
    """Context manager recording, per op name, calls, forward/backward time and bytes.

    Profiles nest (an inner one records its own block; the outer one records it too) and
    combine with :func:`flowgrad.detect_anomaly`. Only the thread (or asyncio task) that
    entered the block is recorded, as grad mode is per thread.

    Attributes:
        wall_time: seconds between entering and leaving the block (so far, while inside).
    """

    def __init__(self) -> None:
        self._stats: dict[str, OpStats] = {}
        self._token: Any = None
        self._start = 0.0
        self._stop: float | None = None

    def __enter__(self) -> profile:
        if self._token is not None:
            raise RuntimeError("this profile() is already active")
        self._start = time.perf_counter()
        self._stop = None
        self._token = anomaly.push(profiler=self)
        return self

    def __exit__(self, *exc: object) -> None:
        anomaly.pop(self._token)
        self._token = None
        self._stop = time.perf_counter()

    # Called by the observer (flowgrad.anomaly._Observer) for every op and rule.
    def _forward(self, name: str, seconds: float, produced: int) -> None:
        stats = self._stats.get(name)
        if stats is None:
            stats = self._stats[name] = OpStats(name)
        stats.calls += 1
        stats.forward_time += seconds
        stats.bytes += produced

    def _backward(self, name: str, seconds: float) -> None:
        stats = self._stats.get(name)
        if stats is None:
            stats = self._stats[name] = OpStats(name)
        stats.backward_calls += 1
        stats.backward_time += seconds

    @property
    def wall_time(self) -> float:
        end = self._stop if self._stop is not None else time.perf_counter()
        return end - self._start

    def key_averages(self) -> list[OpStats]:
        """One :class:`OpStats` per op name, most total time first (torch's name)."""
        return sorted(self._stats.values(), key=lambda s: (-s.total_time, s.name))

    def table(self, sort_by: str = "total", row_limit: int | None = None) -> str:
        """The rows as a printable table, like torch's ``key_averages().table()``.

        Args:
            sort_by: ``"total"``, ``"forward"``, ``"backward"``, ``"calls"``,
                ``"backward_calls"``, ``"bytes"``, ``"avg"`` (largest first) or ``"name"``;
                torch's ``"cpu_time_total"``, ``"self_cpu_time_total"``, ``"count"`` and
                ``"cpu_memory_usage"`` are accepted too.
            row_limit: show at most this many rows (None: all).

        Returns:
            The table, ending with the totals and the wall time inside the block.
        """
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"sort_by must be one of {', '.join(sorted(_SORT_KEYS))}; "
                             f"got {sort_by!r}")
        attr = _SORT_KEYS[sort_by]
        rows = list(self._stats.values())
        if attr == "name":
            rows.sort(key=lambda s: s.name)
        else:
            rows.sort(key=lambda s: (-getattr(s, attr), s.name))
        if row_limit is not None:
            rows = rows[:max(row_limit, 0)]
        forward = sum(s.forward_time for s in self._stats.values())
        backward = sum(s.backward_time for s in self._stats.values())
        total = forward + backward
        headers = ["Name", "Calls", "Forward", "Bwd calls", "Backward", "Total", "Total %",
                   "Avg/call", "Bytes"]
        body = [[s.name, str(s.calls), _time(s.forward_time), str(s.backward_calls),
                 _time(s.backward_time), _time(s.total_time),
                 f"{100 * s.total_time / total:.2f}%" if total > 0 else "-",
                 _time(s.avg_time), _bytes(s.bytes)] for s in rows]
        widths = [max([len(h)] + [len(r[k]) for r in body]) for k, h in enumerate(headers)]
        widths[0] = max(widths[0], 16)
        rule = "  ".join("-" * w for w in widths)

        def line(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                             for k, (c, w) in enumerate(zip(cells, widths)))

        out = [rule, line(headers), rule, *(line(r) for r in body), rule]
        calls = sum(s.calls for s in self._stats.values())
        out.append(f"Ops total: {_time(total)} (forward {_time(forward)}, backward "
                   f"{_time(backward)}) in {calls} calls; {_time(self.wall_time)} wall time "
                   f"inside profile()")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()
