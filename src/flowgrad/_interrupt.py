"""Ctrl-C while the ``flowgrad`` command is still starting: one line and exit code 130.

``flowgrad.cli.main`` turns an interrupt into ``flowgrad CMD: interrupted`` once it runs, but
the command first imports flowgrad itself (NumPy and the core), and an interrupt there would
end in a traceback. ``flowgrad/__init__.py`` therefore imports this module first thing, which calls
:func:`install`: in
the ``flowgrad`` command (its console script, or ``python -m flowgrad``), and only there, it
adds an exception hook that reports an uncaught ``KeyboardInterrupt`` as that one line. In
every other program importing flowgrad it does nothing.
"""

from __future__ import annotations

import os
import sys


def is_command() -> bool:
    """Whether this process is the ``flowgrad`` command line."""
    argv = list(getattr(sys, "orig_argv", ()))
    i = 1
    while i < len(argv):  # the interpreter's own options, up to the script or -m/-c
        word = argv[i]
        if word == "-m":
            return argv[i + 1:i + 2] == ["flowgrad"]
        if word.startswith("-m"):
            return word == "-mflowgrad"
        if not word.startswith("-") or word.startswith("-c") or word == "-":
            break
        # -X opt, -W arg and --check-hash-based-pycs mode take the next word.
        i += 2 if word in ("-X", "-W", "--check-hash-based-pycs") else 1
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name in ("flowgrad", "flowgrad.exe")


def install() -> None:
    """In the ``flowgrad`` command, report an uncaught Ctrl-C as one line, exit code 130."""
    if not is_command() or getattr(sys.excepthook, "_flowgrad", False):
        return
    previous = sys.excepthook

    def hook(kind, value, traceback):  # type: ignore[no-untyped-def]
        if issubclass(kind, KeyboardInterrupt):
            try:
                sys.stderr.write("flowgrad: interrupted\n")
                sys.stderr.flush()
            finally:
                os._exit(130)
        previous(kind, value, traceback)

    hook._flowgrad = True  # type: ignore[attr-defined]
    sys.excepthook = hook


install()
