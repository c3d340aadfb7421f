"""``flowgrad descent [1d|2d|basins]``: gradient descent you can see.

Examples::

    flowgrad descent                                   # six optimizers on an ill-conditioned bowl
    flowgrad descent 2d --surface rosenbrock --gif rosenbrock.gif
    flowgrad descent 2d --surface "x**2 + 5*y**2 + x*y" --optimizers sgd,adam --lr adam=0.2
    flowgrad descent 1d                                # x**2 with four learning rates
    flowgrad descent 1d --function "x**4 - 3*x**2 + x" --lr 0.01,0.05,0.2 --start=-2
    flowgrad descent basins --surface himmelblau --n-starts 100

Each run prints a summary table (final point, final loss, steps until the gradient norm
fell below ``--tol``, or "diverged") and writes the picture to ``--out`` (PNG or SVG by the
suffix; default ``descent-MODE.png``), and an animation with ``--gif FILE``.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from flowgrad.cli import CLIError, check_output, check_seed

MODES = ("2d", "1d", "basins")
#: Every path is kept to be drawn; far more steps than a picture can show would only fill
#: memory (``--steps 100000000`` ran out of it).
MAX_STEPS = 100_000


def configure(parser: argparse.ArgumentParser) -> None:
    from flowgrad.optim.catalogue import OPTIMIZERS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "modes:\n"
        "  2d      optimizers side by side on a contour plot (default)\n"
        "  1d      one function, several learning rates, the stability bound 2/f''(x*)\n"
        "  basins  many starts; each path coloured by the minimum it reaches\n\n"
        "built-in surfaces: ill-conditioned, rosenbrock, beale, himmelblau, saddle\n"
        f"optimizers: {', '.join(OPTIMIZERS)}\n"
        "negative numbers after an option need '=': --start=-1.5,2"
    )
    parser.add_argument("mode", nargs="?", choices=MODES, default="2d",
                        help="what to draw (default: 2d)")
    parser.add_argument(
        "--function", "--surface", "-f", dest="function", metavar="F",
        help="1d: a formula of x (default x**2); 2d/basins: a built-in surface or a formula "
        "of x and y (default: ill-conditioned for 2d, himmelblau for basins)",
    )
    parser.add_argument(
        "--lr", metavar="LR",
        help="1d: learning rates, comma-separated (default: 0.05, 0.4, 0.9 and 1.2 times the "
        "bound 2/f''(x*)); 2d: one rate for all, NAME=LR pairs (sgd=0.1,adam=0.3) or one "
        "per optimizer (default: tuned per surface); basins: one rate",
    )
    parser.add_argument(
        "--optimizers", "--optimizer", dest="optimizers", metavar="NAMES",
        help="2d: comma-separated optimizers (default: sgd,momentum,nesterov,adagrad,rmsprop,"
        "adam); 1d/basins: one optimizer (default: sgd)",
    )
    parser.add_argument("--steps", type=int, metavar="N", help="steps per run")
    parser.add_argument("--start", metavar="X[,Y]",
                        help="starting point: X in 1d, X,Y otherwise (use --start=-1,2 "
                        "for negative numbers)")
    parser.add_argument("--tol", type=float, default=1e-6, metavar="T",
                        help="gradient-norm tolerance for 'converged' (default: 1e-6)")
    parser.add_argument("--window", metavar="X0,X1[,Y0,Y1]",
                        help="plotted window (default: per function or surface)")
    parser.add_argument("--n-starts", type=int, default=81, metavar="N",
                        help="basins: number of starts (default: 81, a 9 x 9 grid)")
    parser.add_argument("--random-starts", action="store_true",
                        help="basins: random starts instead of a grid")
    parser.add_argument("--seed", type=int, default=0, help="basins: seed for random starts")
    parser.add_argument("--out", metavar="FILE",
                        help="picture to write, .png or .svg (default: descent-MODE.png, "
                        "or none when only --gif is given)")
    parser.add_argument("--gif", metavar="FILE", help="also write an animated GIF")
    parser.add_argument("--fps", type=int, default=10, help="GIF frames per second (default 10)")
    parser.add_argument("--frames", type=int, default=60, metavar="N",
                        help="GIF: at most N distinct steps shown (default 60)")
    parser.add_argument("--dpi", type=int, default=110,
                        help="resolution of the PNG (default 110; the GIF uses half)")


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CLIError(f"{what}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise CLIError(f"{what}: {text.strip()!r} is not a finite number")
    return value


def _numbers(text: str, what: str) -> list[float]:
    parts = [p for p in text.replace(" ", ",").split(",") if p]
    if not parts:
        raise CLIError(f"{what}: expected numbers separated by commas, got {text!r}")
    return [_number(p, what) for p in parts]


def _positive(values: list[float], what: str) -> list[float]:
    for v in values:
        if v <= 0:
            raise CLIError(f"{what}: learning rates must be positive, got {v:g}")
    return values


def _names(text: str) -> list[str]:
    from flowgrad.optim.catalogue import OPTIMIZERS

    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise CLIError("--optimizers: give at least one optimizer name")
    for n in names:
        if n not in OPTIMIZERS:
            raise CLIError(f"--optimizers: unknown optimizer {n!r}; choose one of "
                           f"{', '.join(OPTIMIZERS)}")
    if len(set(names)) != len(names):
        raise CLIError("--optimizers: an optimizer is listed twice")
    return names


def _lrs_2d(text: str, names: list[str]) -> Any:
    if "=" not in text:
        values = _positive(_numbers(text, "--lr"), "--lr")
        if len(values) == 1:
            return values[0]
        if len(values) != len(names):
            raise CLIError(f"--lr: {len(values)} learning rates for {len(names)} optimizers "
                           f"({', '.join(names)}); give one, one per optimizer, or NAME=LR pairs")
        return values
    rates: dict[str, float] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in names:
            raise CLIError(f"--lr: expected NAME=LR with NAME among {', '.join(names)}, "
                           f"got {item.strip()!r}")
        rates[name] = _positive([_number(value, f"--lr {name}")], "--lr")[0]
    return rates


def _window(text: str | None, mode: str) -> tuple[Any, Any]:
    if text is None:
        return None, None
    values = _numbers(text, "--window")
    if mode == "1d" and len(values) == 2:
        lims = [(values[0], values[1])]
    elif mode != "1d" and len(values) == 4:
        lims = [(values[0], values[1]), (values[2], values[3])]
    else:
        want = "X0,X1" if mode == "1d" else "X0,X1,Y0,Y1"
        raise CLIError(f"--window: expected {want}, got {text!r}")
    for lo, hi in lims:
        if not lo < hi:
            raise CLIError(f"--window: each interval needs lo < hi, got {lo:g},{hi:g}")
    return lims[0], (lims[1] if len(lims) > 1 else None)


def run(args: argparse.Namespace) -> int:
    from flowgrad.viz.formula import FormulaError

    mode = args.mode
    # With only --gif asked for, write only the GIF.
    out = args.out if args.out is not None else None if args.gif else f"descent-{mode}.png"
    if out is not None:
        check_output(out, "--out", (".png", ".svg", ".pdf"), ".png or .svg")
    if args.gif is not None:
        check_output(args.gif, "--gif", (".gif",))
    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        raise CLIError(f"--steps must be between 1 and {MAX_STEPS:,}, got {args.steps}")
    if not (args.tol > 0):
        raise CLIError(f"--tol must be positive, got {args.tol:g}")
    if args.fps < 1:
        raise CLIError(f"--fps must be at least 1, got {args.fps}")
    if not 2 <= args.frames <= 1000:
        raise CLIError(f"--frames must be between 2 and 1000, got {args.frames}")
    if not 20 <= args.dpi <= 600:
        raise CLIError(f"--dpi must be between 20 and 600, got {args.dpi}")
    check_seed(args.seed)
    xlim, ylim = _window(args.window, mode)
    try:
        plot = _draw(args, mode, xlim, ylim)
    except FormulaError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None

    print(plot.summary())
    try:
        if out is not None:
            plot.save(out, dpi=args.dpi)
            print(f"wrote {out}")
        if args.gif is not None:
            plot.save_gif(args.gif, fps=args.fps, max_frames=args.frames,
                          dpi=max(20, args.dpi // 2))
            print(f"wrote {args.gif}")
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    return 0


def _draw(args: argparse.Namespace, mode: str, xlim: Any, ylim: Any) -> Any:
    from flowgrad.viz import descent

    if mode == "1d":
        names = _names(args.optimizers) if args.optimizers else ["sgd"]
        if len(names) != 1:
            raise CLIError("--optimizer: the 1d mode compares learning rates of one optimizer")
        start = _numbers(args.start, "--start") if args.start else [2.0]
        if len(start) != 1:
            raise CLIError(f"--start: the 1d mode takes one number, got {args.start!r}")
        lrs = _positive(_numbers(args.lr, "--lr"), "--lr") if args.lr else None
        return descent.plot_learning_rates(
            args.function or "x**2", lrs=lrs, start=start[0], steps=args.steps or 30,
            optimizer=names[0], tol=args.tol, xlim=xlim,
        )

    surface = descent.get_surface(
        args.function or ("ill-conditioned" if mode == "2d" else "himmelblau"), xlim, ylim
    )
    start = None
    if args.start:
        start = _numbers(args.start, "--start")
        if len(start) != 2:
            raise CLIError(f"--start: a surface needs X,Y, got {args.start!r}")
    if mode == "2d":
        names = _names(args.optimizers) if args.optimizers else list(descent.DEFAULT_OPTIMIZERS)
        lrs = _lrs_2d(args.lr, names) if args.lr else None
        return descent.plot_optimizers(surface, start=start, steps=args.steps, optimizers=names,
                                       lrs=lrs, tol=args.tol)
    names = _names(args.optimizers) if args.optimizers else ["sgd"]
    if len(names) != 1:
        raise CLIError("--optimizer: the basins mode runs one optimizer from many starts")
    if start is not None:
        raise CLIError("--start: the basins mode chooses its starts (see --n-starts)")
    lr = None
    if args.lr:
        values = _positive(_numbers(args.lr, "--lr"), "--lr")
        if len(values) != 1:
            raise CLIError("--lr: the basins mode takes one learning rate")
        lr = values[0]
    if not 1 <= args.n_starts <= 2500:
        raise CLIError(f"--n-starts must be between 1 and 2500, got {args.n_starts}")
    return descent.plot_basins(
        surface, n_starts=args.n_starts, optimizer=names[0], lr=lr, steps=args.steps,
        tol=args.tol, starts="random" if args.random_starts else "grid", seed=args.seed,
    )
