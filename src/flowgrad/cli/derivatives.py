"""``flowgrad derivatives``: f, f' and f'' of activation functions, computed by autodiff.

Examples::

    flowgrad derivatives                                   # identity step sigmoid tanh relu exp log
    flowgrad derivatives --functions relu,abs,leaky_relu --out kinks.svg
    flowgrad derivatives --formula "x**3" --formula "relu(x - 1)*x"
    flowgrad derivatives --functions all --formula "sin(x)*exp(-x**2)"

The derivatives come from flowgrad's autodiff on a whole grid at once (f' as the gradient
of a sum, f'' by differentiating that gradient again), never from hand-written formulas.
Kinks and jumps are marked with the value flowgrad returns there (relu'(0) = 0, step' = 0).
"""

from __future__ import annotations

import argparse
import math

from flowgrad.cli import CLIError, check_output


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--functions", metavar="NAMES",
        help="comma-separated catalogue names, or 'all': identity, step, sigmoid, tanh, relu, "
        "exp, log, abs, sqrt, sin, leaky_relu (default: the first seven; none when only "
        "--formula is given)",
    )
    parser.add_argument("--formula", action="append", default=[], metavar="F",
                        help="a formula of x to add, e.g. 'x**3' (repeatable)")
    parser.add_argument("--domain", metavar="A,B",
                        help="one x interval for every panel (default: per function; "
                        "use --domain=-2,2 for a negative start)")
    parser.add_argument("--points", type=int, default=801, metavar="N",
                        help="grid points per panel (default: 801)")
    parser.add_argument("--dpi", type=int, default=110, help="resolution of a PNG (default 110)")
    parser.add_argument("--out", metavar="FILE", default="derivatives.png",
                        help="picture to write, .png or .svg (default: derivatives.png)")


def run(args: argparse.Namespace) -> int:
    from flowgrad.viz.derivatives import CATALOGUE, DEFAULT_FUNCTIONS, plot_derivatives
    from flowgrad.viz.formula import FormulaError

    check_output(args.out, "--out", (".png", ".svg", ".pdf"), ".png or .svg")
    if args.functions is None:
        names = [] if args.formula else list(DEFAULT_FUNCTIONS)
    elif args.functions.strip().lower() == "all":
        names = list(CATALOGUE)
    else:
        names = [n.strip() for n in args.functions.split(",") if n.strip()]
        for n in names:
            if n.lower().replace("-", "_") not in CATALOGUE:
                raise CLIError(f"--functions: unknown function {n!r}; known: "
                               f"{', '.join(CATALOGUE)} (use --formula for a formula)")
    if not names and not args.formula:
        raise CLIError("nothing to plot: give --functions or --formula")
    domain = None
    if args.domain is not None:
        parts = [p for p in args.domain.split(",") if p.strip()]
        try:
            domain = tuple(float(p) for p in parts)
        except ValueError:
            raise CLIError(f"--domain: expected two numbers A,B, got {args.domain!r}") from None
        if len(domain) != 2 or not all(math.isfinite(v) for v in domain) or domain[0] >= domain[1]:
            raise CLIError(f"--domain: expected two finite numbers A < B, got {args.domain!r}")
        if not math.isfinite(domain[1] - domain[0]):
            raise CLIError(f"--domain: the interval {args.domain} is too wide (B - A "
                           "overflows); keep it within about ±1e307")
    if not 20 <= args.dpi <= 600:
        raise CLIError(f"--dpi must be between 20 and 600, got {args.dpi}")
    if not 21 <= args.points <= 100_000:
        raise CLIError(f"--points must be between 21 and 100000, got {args.points}")
    try:
        gallery = plot_derivatives(names, args.formula, domain=domain, points=args.points)
    except FormulaError as exc:
        raise CLIError(f"--formula: {exc}") from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(gallery.summary())
    try:
        gallery.save(args.out, dpi=args.dpi)
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {args.out}")
    return 0
