"""Benchmark results as data, and their rendering: console text, Markdown, JSON.

RESULTS.md mixes generated tables with hand-written analysis, so :func:`update_markdown`
rewrites only the blocks between ``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->``
markers and leaves every other line of an existing file as it was.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flowgrad._atomic import write_text

COMPETITOR_LABELS = {"flowgrad": "flowgrad", "pytorch": "PyTorch", "numpy": "NumPy floor"}


@dataclass
class Table:
    """A titled table of already formatted cells."""

    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Check:
    """One target from the issue: what it asks, what was measured, whether it holds.

    ``ok`` is None when the run could not decide (a competitor missing, a reduced size).
    """

    target: str
    measured: str
    ok: bool | None


@dataclass
class CaseResult:
    """Everything one case produced."""

    name: str
    description: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Report:
    """A whole run: machine facts, settings and the cases in order."""

    facts: dict[str, Any]
    facts_lines: list[str]
    settings: dict[str, Any]
    command: str
    cases: list[CaseResult]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fmt_number(value: float | None, digits: int = 3) -> str:
    """A value with ``digits`` significant digits, thousands separated; '-' for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def fmt_ratio(num: float | None, den: float | None) -> str:
    if num is None or den is None or den == 0:
        return "-"
    return f"{num / den:.2f}x"


def fmt_x(ratio: float | None) -> str:
    """A ratio as ``1.23x``; '-' for None."""
    return "-" if ratio is None else f"{ratio:.2f}x"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / 2**20:.2f} MiB"


def _widths(table: Table) -> list[int]:
    cells = [table.columns, *table.rows]
    return [max(len(row[i]) for row in cells) for i in range(len(table.columns))]


def render_table_text(table: Table) -> str:
    widths = _widths(table)
    lines = [table.title]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  " + "  ".join([first, *rest])

    lines.append(line(table.columns))
    lines.append("  " + "  ".join("-" * w for w in widths))
    lines.extend(line(row) for row in table.rows)
    return "\n".join(lines)


def render_table_markdown(table: Table) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = [f"**{table.title}**", ""]
    lines.append("| " + " | ".join(esc(c) for c in table.columns) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(table.columns) - 1)) + "|")
    lines.extend("| " + " | ".join(esc(c) for c in row) + " |" for row in table.rows)
    return "\n".join(lines)


def _check_mark(ok: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "n/a"}[ok]


def render_case_text(case: CaseResult) -> str:
    parts = [f"== {case.name}: {case.description} ({case.seconds:.1f} s)"]
    if case.error:
        parts.append(f"  case failed: {case.error}")
    parts.extend(render_table_text(t) for t in case.tables)
    parts.extend(f"  note: {n}" for n in case.notes)
    parts.extend(f"  target [{_check_mark(c.ok)}] {c.target}: {c.measured}" for c in case.checks)
    return "\n".join(parts)


def render_text(report: Report) -> str:
    """The whole report for the console."""
    parts = ["flowgrad benchmarks", *("  " + line for line in report.facts_lines), ""]
    for case in report.cases:
        parts += [render_case_text(case), ""]
    summary = render_targets_text(report)
    if summary:
        parts += [summary, ""]
    return "\n".join(parts)


def render_targets_text(report: Report) -> str:
    checks = [(case.name, c) for case in report.cases for c in case.checks]
    if not checks:
        return ""
    lines = ["== targets"]
    lines += [f"  [{_check_mark(c.ok)}] {name}: {c.target}: {c.measured}" for name, c in checks]
    return "\n".join(lines)


def markdown_blocks(report: Report) -> dict[str, str]:
    """The generated Markdown, one block per marker name (``machine``, each case, ``targets``)."""
    blocks = {
        "machine": "\n".join(
            [f"Command: `{report.command}`", ""]
            + [f"- {line.strip()}" for line in report.facts_lines]
        )
    }
    for case in report.cases:
        parts = [f"{case.description}. Case time {case.seconds:.1f} s."]
        if case.error:
            parts.append(f"Case failed: `{case.error}`")
        parts += [render_table_markdown(t) for t in case.tables]
        if case.notes:
            parts.append("\n".join(f"- {n}" for n in case.notes))
        blocks[case.name] = "\n\n".join(parts)
    checks = [(case.name, c) for case in report.cases for c in case.checks]
    if checks:
        rows = [
            f"| {name} | {c.target} | {c.measured} | {_check_mark(c.ok)} |" for name, c in checks
        ]
        blocks["targets"] = "\n".join(
            ["| case | target | measured | status |", "|---|---|---|---|", *rows]
        )
    return blocks


def _marker(name: str, end: bool) -> str:
    return f"<!-- bench:{name}:{'end' if end else 'begin'} -->"


def _block(name: str, body: str) -> str:
    return f"{_marker(name, False)}\n{body}\n{_marker(name, True)}"


def update_markdown(path: Path, report: Report) -> None:
    """Write the report's blocks into ``path``, keeping any hand-written text around them.

    A block whose markers are in the file replaces what is between them; a new block is
    appended under a heading. The file is replaced atomically.
    """
    blocks = markdown_blocks(report)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if not text:
        text = (
            "# flowgrad benchmark results\n\n"
            "Generated by `python -m benchmarks --markdown benchmarks/RESULTS.md`; text outside "
            "the `bench:` markers is kept when the tables are regenerated.\n"
        )
    for name, body in blocks.items():
        pattern = re.compile(
            re.escape(_marker(name, False)) + r".*?" + re.escape(_marker(name, True)), re.S
        )
        if pattern.search(text):
            replacement = _block(name, body)
            text = pattern.sub(lambda _m, r=replacement: r, text, count=1)
        else:
            heading = {"machine": "Machine", "targets": "Targets"}.get(name, f"`{name}`")
            text = text.rstrip("\n") + f"\n\n## {heading}\n\n{_block(name, body)}\n"
    write_text(path, text if text.endswith("\n") else text + "\n")
