"""``flowgrad explore``: the dataflow graph, the chain rule and gradient descent in the browser.

Example::

    flowgrad explore                  # http://127.0.0.1:8765/, opens the browser
    flowgrad explore --port 0 --no-open

Needs the extra ``flowgrad[explore]`` (Starlette and uvicorn). Stops on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from flowgrad.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; "
                        "any other address is reachable from the network and prints a warning)")
    parser.add_argument("--port", type=int, default=8765,
                        help="port to listen on (default: 8765; 0 picks a free one)")
    parser.add_argument("--no-open", action="store_true",
                        help="do not open the page in a web browser")


def run(args: argparse.Namespace) -> int:
    from flowgrad.explore import MISSING_EXTRA

    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be between 0 and 65535, got {args.port}")
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise CLIError(f"{MISSING_EXTRA} (missing: {', '.join(missing)})")
    from flowgrad.explore.app import serve

    def announce(line: str) -> None:
        print(line, file=sys.stderr if line.startswith("warning") else sys.stdout, flush=True)

    try:
        serve(args.host, args.port, open_browser=not args.no_open, announce=announce)
    except OSError as exc:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: "
                       f"{exc.strerror or exc}") from None
    print("flowgrad explore: stopped", flush=True)
    return 0
