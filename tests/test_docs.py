"""Docs that run: every Python block of README.md and docs/*.md is executed, every
``flowgrad`` (and ``python -m benchmarks``) command shown must name a real subcommand and
real options, and no link or reference leaves the repository.

A Python block that needs what a test machine lacks is marked by an HTML comment on the
line just before its fence, invisible on the rendered page::

    <!-- needs: network -->
    ```python
    x, y = fg.data.load_mnist("data", download=True)
    ```

The only reasons accepted are ``network`` and ``gpu`` (never run here) and ``mpi`` (run when
mpi4py is installed, as in CI; the README's plain ``.[test]`` install skips it). A block
that shows an error on purpose says which, and then must raise exactly that
(``<!-- raises: AnomalyError -->``). The blocks of one file run in order in one namespace
(a later block may use what an earlier one made), in a temporary folder, in a process of
their own.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_REASONS = ("network", "gpu", "mpi")

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_MARK = re.compile(r"^\s*<!--\s*needs:\s*(\S+)\s*-->\s*$")
_RAISES = re.compile(r"^\s*<!--\s*raises:\s*(\w+)\s*-->\s*$")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    needs: str | None
    raises: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, lang = match.groups()
        start = i
        i += 1
        body = []
        while i < len(lines) and not _FENCE.match(lines[i]):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line)
            i += 1
        mark = _MARK.match(lines[start - 1]) if start else None
        raises = _RAISES.match(lines[start - 1]) if start else None
        out.append(Block(page, start + 1, lang.lower(), "\n".join(body) + "\n",
                         mark.group(1) if mark else None, raises.group(1) if raises else None))
        i += 1
    return out


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]


# ---------------------------------------------------------------- Python blocks run


def _python_pages() -> list[Path]:
    return [p for p in PAGES if any(b.lang == "python" for b in blocks(p))]


def _can_run(needs: str | None) -> bool:
    if needs == "mpi":
        return importlib.util.find_spec("mpi4py") is not None
    return needs is None


def run_page(page: Path) -> None:
    """Run a page's Python blocks in order in one namespace (in this process)."""
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks(page):
        if block.lang != "python" or not _can_run(block.needs):
            continue
        code = compile(block.text, block.where, "exec")
        try:
            exec(code, namespace)  # noqa: S102 - the repository's own documentation
        except Exception as exc:
            if type(exc).__name__ != block.raises:
                raise SystemExit(f"{block.where}: {type(exc).__name__}: {exc}") from exc
        else:
            if block.raises is not None:
                raise SystemExit(f"{block.where}: should raise {block.raises}, raised nothing")


@pytest.mark.parametrize("page", _python_pages(), ids=lambda p: p.name)
def test_every_python_block_runs(page, tmp_path):
    # A process per page: the pages define ops and seed generators, which must not leak
    # into each other or into the rest of the suite. Pictures a page draws for itself
    # (docs/img/...) land in the temporary folder, never in the repository.
    (tmp_path / "docs" / "img").mkdir(parents=True)
    env = {**os.environ, "FLOWGRAD_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT / "tests"),
                                                       os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", f"from test_docs import run_page; "
                           f"from pathlib import Path; run_page(Path({str(page)!r}))"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_markers_only_name_known_reasons():
    for block in ALL_BLOCKS:
        if block.needs is not None:
            assert block.needs in SKIP_REASONS, block.where
            assert block.lang == "python", f"{block.where}: only Python blocks are skipped"


# ---------------------------------------------------------------- shell commands exist


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from flowgrad.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = dict(sub.choices)
    found[""] = parser
    try:
        from benchmarks.__main__ import build_parser as bench_parser

        found["python -m benchmarks"] = bench_parser()
    except ImportError:  # pragma: no cover - the benchmarks live in the checkout
        pass
    return found


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


_COMMAND = re.compile(r"^(?:\$\s+)?(?:(?:mpiexec|mpirun)\s+(?:-n|-np)\s+\d+\s+)?"
                      r"(flowgrad|python3? -m flowgrad|python3? -m benchmarks)"
                      r"(\s+(?:[a-z][a-z0-9-]*|-)(?:\s.*)?)?$")


def commands() -> list[tuple[str, str]]:
    """(where, command) for every flowgrad command in a shell block or an inline code span."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in blocks(page):
            if block.lang == "python":
                continue
            for k, line in enumerate(block.text.splitlines(), start=1):
                line = line.split("  #")[0].strip()
                if line.startswith(("#", "usage:")) or not _COMMAND.match(line):
                    continue
                found.append((f"{block.where}+{k}", line))
        for n, line in enumerate(text.splitlines(), start=1):
            for span in re.findall(r"`([^`\n]+)`", line):
                if _COMMAND.match(span.strip()):
                    found.append((f"{page.relative_to(ROOT)}:{n}", span.strip()))
    return found


def _check_command(where: str, command: str, parsers: dict) -> None:
    match = _COMMAND.match(command)
    program, rest = match.group(1), match.group(2) or ""
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise AssertionError(f"{where}: cannot split {command!r}: {exc}") from None
    words = [w for w in words if w not in ("|", "&&", ";")]
    if program.endswith("benchmarks"):
        parser = parsers.get("python -m benchmarks")
        if parser is None:
            return
    elif not words or words[0].startswith("-"):
        parser = parsers[""]
    else:
        name = words.pop(0)
        if "…" in name or "..." in name:
            return
        assert name in parsers, f"{where}: {command!r}: no subcommand {name!r}"
        parser = parsers[name]
    known = _options(parser)
    for word in words:
        if word.startswith("--") and len(word) > 2 or re.fullmatch(r"-[A-Za-z]", word):
            option = word.split("=")[0]
            if parser is parsers.get("bench"):
                continue  # passed through to python -m benchmarks, checked there
            assert option in known, f"{where}: {command!r}: {option} is not an option"


def test_every_command_shown_exists():
    parsers = _parsers()
    found = commands()
    assert len(found) > 50  # the pages do show commands
    for where, command in found:
        _check_command(where, command, parsers)


def test_the_command_check_catches_mistakes():
    parsers = _parsers()
    with pytest.raises(AssertionError, match="no subcommand 'trian'"):
        _check_command("x", "flowgrad trian --epochs 3", parsers)
    with pytest.raises(AssertionError, match="--epoch is not an option"):
        _check_command("x", "flowgrad train --epoch 3", parsers)
    _check_command("x", "mpiexec -n 2 flowgrad train --nproc=2 -q", parsers)


# ---------------------------------------------------------------- links stay inside


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_links_point_inside_the_repository_and_exist():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "../shared" not in text and "API.md" not in text, \
            f"{page.name} refers to the API contract outside the repository"
        for target in _LINK.findall(text):
            if re.match(r"^[a-z]+://|^mailto:|^#", target):
                continue
            path = target.split("#")[0]
            resolved = (page.parent / path).resolve()
            assert resolved.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
            assert resolved.exists(), f"{page.name}: {target} does not exist"


def test_doc_files_named_in_text_exist():
    for page in PAGES:
        for name in re.findall(r"`((?:docs|examples|benchmarks|src|tests)/[\w./-]+)`",
                               page.read_text(encoding="utf-8")):
            assert (ROOT / name).exists() or any(ROOT.glob(name)), \
                f"{page.name}: {name} does not exist"


# A measured time or speed in prose ("takes about 1.1 s", "355 ms", "1.18x PyTorch's").
_TIMING = re.compile(r"\b(takes?|took|in about|about)\s+\d+(\.\d+)?\s?(s|ms|µs|us)\b|"
                     r"\b\d+(\.\d+)?\s?(ms|µs)\b|\b\d+(\.\d+)?x (PyTorch|the NumPy)")


def test_timings_in_the_docs_say_where_they_come_from():
    """A timing in prose is generated (benchmarks/RESULTS.md, written by the harness), taken
    on an idle 2-core machine, or labelled noisy (the shared development machine); pasted
    command output (fenced) comes from a real run as it stands."""
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for paragraph in re.split(r"\n\s*\n", text):
            if _TIMING.search(paragraph):
                assert re.search(r"idle 2-core machine|RESULTS\.md|noisy", paragraph), \
                    f"{page.name}: a timing without its source:\n{paragraph[:300]}"


def test_the_marker_is_documented():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert "<!-- needs: network -->" in text


if os.environ.get("FLOWGRAD_DOCS_LIST"):  # pragma: no cover - a helper for doc writers
    for b in ALL_BLOCKS:
        print(b.where, b.lang, b.needs)
