"""Student versions of the chapter notebooks, and cleaning of the committed ones.

``python -m mixcon_lite.classroom student notebooks/ out/`` writes, for every ``*.ipynb`` in
``notebooks/``, a copy in ``out/`` where

* every solution (the code cells between a ``{solution-start}`` and a ``{solution-end}`` markdown
  cell, the sphinx-exercise convention) is replaced by a stub: inside a cell, the lines between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` become ``raise NotImplementedError`` (keeping the
  scaffold around them); a cell without those markers becomes a ``# Your code here`` cell;
* the solution-start / solution-end markdown cells become one "Your solution" note;
* cells tagged ``instructor`` (the ``assert verdict`` cells that make a wrong solution fail the
  instructor's test run) are dropped, and so is any line ``assert <name>`` where ``<name>`` holds a
  checker's verdict: a student sees ``NOT YET: ...`` and no ``AssertionError`` traceback;
* all outputs, execution counts, execution timestamps and the stored ipywidgets state (notebook
  metadata ``widgets``) are removed.

``python -m mixcon_lite.classroom clean notebooks/`` (or one notebook) tidies the committed
notebooks in place, after executing them: it removes the stored ipywidgets state and the widget
outputs that need it (progress bars, explorers: without their state they cannot be displayed), and
rewrites machine paths in text outputs (``.../site-packages/``, the repository, ``$MIXCON_LITE_DATA``,
the home folder). It exits with status 1 and names the cell if a machine path is left.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import nbformat

_START = re.compile(r"\{solution-start\}\s*([\w.:-]+)")
_END = re.compile(r"\{solution-end\}")
_BEGIN_MARK, _END_MARK = "### BEGIN SOLUTION", "### END SOLUTION"
INSTRUCTOR_TAG = "instructor"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Text that must not appear in a committed notebook's stored outputs (tests/test_notebooks_style.py).
MACHINE_PATH = re.compile(r"/work/|/root/|/home/|site-packages|dist-packages")
_VERDICT = re.compile(r"^\s*(\w+)\s*=\s*(?:[\w.]+\.)?check_\w+\(", re.M)
_LIBRARY_PREFIX = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^\s'\"<>:/\\]+)+[/\\](?:site|dist)-packages[/\\]"
                             r"|(?:/[^\s'\"<>:/\\]+)+/lib/python3\.\d+/")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else (value or "")


def _stub_code(source: str, label: str) -> str:
    lines, out, inside = source.splitlines(), [], False
    found = False
    for line in lines:
        stripped = line.strip()
        if stripped == _BEGIN_MARK:
            inside, found = True, True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("Exercise {label}: replace this line with your code")')
        elif stripped == _END_MARK:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"Exercise {label}: '{_BEGIN_MARK}' without a matching '{_END_MARK}'.")
    if not found:
        return f"# Exercise {label}: your code here\n"
    return "\n".join(out) + "\n"


def _drop_verdict_asserts(source: str, verdicts: set[str]) -> str:
    """Remove lines ``assert <verdict>`` (optionally with a message) for the given names."""
    keep = [line for line in source.splitlines()
            if not any(re.fullmatch(rf"\s*assert\s+{re.escape(v)}\s*(?:,.*)?", line) for v in verdicts)]
    return "\n".join(keep).strip("\n")


def is_instructor_cell(cell) -> bool:
    """True if the cell carries the tag ``instructor`` (dropped from student versions)."""
    return INSTRUCTOR_TAG in cell.get("metadata", {}).get("tags", [])


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a student copy of ``nb``: solutions stubbed, ``instructor`` cells and verdict asserts
    dropped, outputs and widget state cleared (see the module docstring)."""
    metadata = {k: v for k, v in nb.metadata.items() if k != "widgets"}
    new = nbformat.v4.new_notebook(metadata=metadata)
    label = None
    verdicts: set[str] = set()
    for cell in nb.cells:
        src = cell.source
        if cell.cell_type == "markdown" and _START.search(src):
            if label is not None:
                raise ValueError(f"solution-start for {_START.search(src).group(1)!r} inside the open solution {label!r}.")
            label = _START.search(src).group(1)
            new.cells.append(nbformat.v4.new_markdown_cell(
                f"**Your solution to {label}** — write it in the cell below, then run the check."))
            continue
        if cell.cell_type == "markdown" and _END.search(src):
            if label is None:
                raise ValueError("solution-end without a solution-start before it.")
            label = None
            continue
        if label is not None and cell.cell_type == "code":
            new.cells.append(nbformat.v4.new_code_cell(_stub_code(src, label)))
            continue
        if label is not None and cell.cell_type == "markdown":
            continue  # explanation that belongs to the solution
        if is_instructor_cell(cell):
            continue
        copy = nbformat.from_dict(dict(cell))
        if copy.cell_type == "code":
            verdicts.update(_VERDICT.findall(copy.source))
            if verdicts:
                copy.source = _drop_verdict_asserts(copy.source, verdicts)
                if not copy.source.strip():
                    continue
            copy.outputs, copy.execution_count = [], None
            copy.metadata.pop("execution", None)
        new.cells.append(copy)
    if label is not None:
        raise ValueError(f"solution-start {label!r} has no solution-end.")
    return new


def write_student_versions(src_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the student version of every notebook in ``src_dir`` into ``out_dir``; return the paths."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"No folder {src_dir}; pass the folder that holds the chapter notebooks.")
    notebooks = sorted(src_dir.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"No .ipynb files in {src_dir}.")
    if out_dir.resolve() == src_dir.resolve():
        raise ValueError("The output folder must differ from the source folder (solutions would be lost).")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        target = out_dir / path.name
        nbformat.write(student_notebook(nb), target)
        written.append(target)
    return written


# ------------------------------------------------------------------ cleaning committed notebooks --

def path_replacements(repo_root: str | Path | None = None) -> list[tuple[str, str]]:
    """The ``(machine path, what to write instead)`` pairs :func:`clean_notebook` applies, longest
    first: the repository root (``repo_root``, default the working directory) becomes a relative
    path, ``$MIXCON_LITE_DATA`` its name, the home folder ``~``."""
    from .config import DATA_ENV

    pairs = []
    root = Path(repo_root if repo_root is not None else Path.cwd()).resolve()
    pairs += [(f"{root}/", ""), (str(root), ".")]
    data = os.environ.get(DATA_ENV)
    if data:
        data_path = str(Path(data).expanduser().resolve())
        pairs += [(data_path, f"${DATA_ENV}")]
        if data.rstrip("/") != data_path:
            pairs += [(data.rstrip("/"), f"${DATA_ENV}")]
    home = str(Path.home().resolve())
    if home not in ("/", ""):
        pairs += [(home, "~")]
    return sorted(set(pairs), key=lambda p: -len(p[0]))


def _clean_text(text: str, pairs: list[tuple[str, str]]) -> str:
    text = _LIBRARY_PREFIX.sub("", text)
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def _map_text(value, fn):
    return [fn(v) for v in value] if isinstance(value, list) else fn(value)


def clean_notebook(nb: dict, repo_root: str | Path | None = None) -> list[str]:
    """Clean a notebook (a dict as read from JSON, or a ``NotebookNode``) in place.

    Removes notebook metadata ``widgets`` and every output that displays a widget view (it cannot be
    shown without that state), and rewrites machine paths in text outputs (see
    :func:`path_replacements`; library paths ``.../site-packages/`` are cut to the package's own
    path). Returns the problems left: ``"cell N: ..."`` for each output still holding a machine path.
    """
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("Expected a notebook: a dict with a 'cells' list (read it with json or nbformat).")
    pairs = path_replacements(repo_root)
    nb.get("metadata", {}).pop("widgets", None)

    def fix(text: str) -> str:
        return _clean_text(text, pairs)

    problems = []
    for index, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data")
            if isinstance(data, dict) and WIDGET_VIEW in data:
                continue
            if "text" in out:
                out["text"] = _map_text(out["text"], fix)
            if "traceback" in out:
                out["traceback"] = [fix(line) for line in out["traceback"]]
            if "evalue" in out:
                out["evalue"] = fix(out["evalue"])
            if isinstance(data, dict):
                for mime in [m for m in data if m.startswith("text/")]:
                    data[mime] = _map_text(data[mime], fix)
            kept.append(out)
            left = MACHINE_PATH.search(output_text(out))
            if left:
                problems.append(f"cell {index}: a machine path is left in an output: "
                                f"...{output_text(out)[max(0, left.start() - 40):left.end() + 40]!r}...")
        cell["outputs"] = kept
    return problems


def output_text(out: dict) -> str:
    """All the text of one stored output (stream text, traceback, ``text/*`` data), joined."""
    parts = [_text(out.get("text")), out.get("evalue", "") or "", "\n".join(out.get("traceback", []))]
    data = out.get("data", {})
    if isinstance(data, dict):
        parts += [_text(v) for m, v in data.items() if m.startswith("text/")]
    return "\n".join(p for p in parts if p)


def clean_notebooks(paths, repo_root: str | Path | None = None) -> tuple[list[Path], list[str]]:
    """Clean each notebook in ``paths`` (files, or folders whose ``*.ipynb`` are cleaned) in place.

    Returns ``(changed files, problems left)``; a file is rewritten only if it changed.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("*.ipynb"))
        elif p.is_file() and p.suffix == ".ipynb":
            files.append(p)
        else:
            raise FileNotFoundError(f"No notebook or folder {p}; pass notebooks/ or a notebooks/NN_name.ipynb file.")
    if repo_root is None and files:
        repo_root = files[0].resolve().parent.parent  # notebooks/ sits at the repository root
    changed, problems = [], []
    for f in files:
        before = f.read_text(encoding="utf-8")
        nb = json.loads(before)
        problems += [f"{f.name} {p}" for p in clean_notebook(nb, repo_root)]
        after = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        if after != before:
            f.write_text(after, encoding="utf-8")
            changed.append(f)
    return changed, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixcon_lite.classroom",
                                     description="Student versions of the chapter notebooks; cleaning "
                                                 "of the committed notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("student", help="solutions stubbed, instructor cells dropped, outputs cleared")
    st.add_argument("src", help="folder with the instructor notebooks (e.g. notebooks/)")
    st.add_argument("out", help="folder to write the student notebooks to")
    cl = sub.add_parser("clean", help="strip widget state and machine paths from notebooks, in place")
    cl.add_argument("paths", nargs="+", help="notebooks/ or notebook files")
    args = parser.parse_args(argv)
    if args.command == "student":
        for path in write_student_versions(args.src, args.out):
            print(f"wrote {path}")
        return 0
    changed, problems = clean_notebooks(args.paths)
    print(f"cleaned: {', '.join(p.name for p in changed) or 'nothing to change'}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("Fix these in the code that prints them (print relative paths), re-execute, clean again.",
              file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
