"""``flowgrad explain EXPR NAME=VALUE ...``: the chain rule spelled out for a formula.

Example::

    flowgrad explain "sigmoid(w*x + b)" w=0.5 x=2 b=-1
    flowgrad explain "x*x + sin(x)" x=2 --json
    flowgrad explain -- "-x**2" x=3          # a formula starting with '-' needs '--'
    flowgrad explain "log(x) * y" x=0 y=1 --graph g.svg   # reports the -inf, draws it red

When the formula creates a NaN or an infinity at the given values (forward, or in a
derivative rule), the anomaly report of ``fg.detect_anomaly()`` comes first, naming the
sub-expression, and ``--graph`` colours that node red and what it fed orange.

The formula is parsed by a whitelisting parser (:mod:`flowgrad.viz.formula`) and never
executed as Python. Any problem with it, or with the values, is one error line and exit
code 2.
"""

from __future__ import annotations

import argparse
import math
import re
import sys

from flowgrad.cli import CLIError, check_output

#: NAME=VALUE words may also come after the options (``flowgrad explain EXPR --json x=1``).
INTERMIXED = "values"

_ASSIGNMENT = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*\Z", re.DOTALL)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "expr",
        metavar="EXPR",
        help="formula of numbers, variables, + - * / **, parentheses and exp log sqrt abs "
        "sin cos tanh sigmoid relu step (quote it; put '--' before one starting with '-')",
    )
    parser.add_argument(
        "values",
        nargs="*",
        metavar="NAME=VALUE",
        help="a number for each variable, e.g. w=0.5 x=2 b=-1",
    )
    parser.add_argument("--graph", metavar="FILE", help="also draw the graph (.svg/.png/.dot)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--max-paths",
        type=int,
        default=64,
        metavar="N",
        help="list at most N paths per variable; the sum always covers all (default: 64)",
    )


def parse_assignments(items: list[str]) -> dict[str, float]:
    """``["w=0.5", "x=2"]`` -> ``{"w": 0.5, "x": 2.0}``; a bad item raises CLIError."""
    values: dict[str, float] = {}
    for item in items:
        match = _ASSIGNMENT.match(item)
        if match is None:
            raise CLIError(f"expected NAME=VALUE with a variable name, got {item!r}")
        name, text = match.groups()
        if name in values:
            raise CLIError(f"variable {name!r} is given twice")
        try:
            value = float(text)
        except ValueError:
            raise CLIError(f"value of {name!r} is not a number: {text!r}") from None
        if not math.isfinite(value):
            raise CLIError(f"value of {name!r} must be a finite number, got {text!r}")
        values[name] = value
    return values


def run(args: argparse.Namespace) -> int:
    from flowgrad.viz.explain import explain_formula, find_anomaly
    from flowgrad.viz.formula import FormulaError, compile_formula

    try:
        formula = compile_formula(args.expr)
    except FormulaError as exc:
        raise CLIError(str(exc)) from None
    values = parse_assignments(args.values)
    missing = [n for n in formula.variables if n not in values]
    if missing:
        wanted = " ".join(f"{n}=VALUE" for n in formula.variables)
        raise CLIError(f"no value given for {', '.join(missing)}; give one per variable: {wanted}")
    unused = [n for n in values if n not in formula.variables]
    if unused:
        uses = ", ".join(formula.variables) or "no variables"
        raise CLIError(
            f"value given for {', '.join(unused)}, which the formula does not use (it uses {uses})"
        )
    if args.max_paths < 0:
        raise CLIError(f"--max-paths must be >= 0, got {args.max_paths}")
    if args.graph is not None:
        check_output(args.graph, "--graph", (".svg", ".png", ".pdf", ".dot", ".gv"),
                     ".svg, .png, .pdf or .dot")

    # Where a NaN or Inf is first created (forward or backward), said before the tables.
    found = find_anomaly(formula, values)
    explanation = explain_formula(formula, values, max_paths=args.max_paths)

    if found is not None:
        print(f"anomaly: {found.report()}\n", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(explanation.to_json())
    else:
        print(explanation.table())
    if args.graph is not None:
        highlight = explanation.node(found.node_id) if found is not None else None
        try:
            path = explanation.draw(highlight=highlight).render(args.graph)
        except RuntimeError as exc:
            raise CLIError(str(exc)) from None
        except OSError as exc:
            raise CLIError(f"cannot write {args.graph}: {exc.strerror or exc}") from None
        # Keep stdout pure JSON with --json.
        print(f"graph written to {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
