"""Student versions of the chapter notebooks.

``python -m mixcon_lite.classroom student notebooks/ out/`` writes, for every ``*.ipynb`` in
``notebooks/``, a copy in ``out/`` where

* every solution (the code cells between a ``{solution-start}`` and a ``{solution-end}`` markdown
  cell, the sphinx-exercise convention) is replaced by a stub: inside a cell, the lines between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` become ``raise NotImplementedError`` (keeping the
  scaffold around them); a cell without those markers becomes a ``# Your code here`` cell;
* the solution-start / solution-end markdown cells become one "Your solution" note;
* all outputs and execution counts are cleared.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

_START = re.compile(r"\{solution-start\}\s*([\w.:-]+)")
_END = re.compile(r"\{solution-end\}")
_BEGIN_MARK, _END_MARK = "### BEGIN SOLUTION", "### END SOLUTION"


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


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of ``nb`` with solutions stubbed and outputs cleared (see module docstring)."""
    new = nbformat.v4.new_notebook(metadata=nb.metadata)
    label = None
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
        copy = nbformat.from_dict(dict(cell))
        if copy.cell_type == "code":
            copy.outputs, copy.execution_count = [], None
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixcon_lite.classroom",
                                     description="Write student versions of the chapter notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("student", help="solutions stubbed, outputs cleared")
    st.add_argument("src", help="folder with the instructor notebooks (e.g. notebooks/)")
    st.add_argument("out", help="folder to write the student notebooks to")
    args = parser.parse_args(argv)
    for path in write_student_versions(args.src, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
