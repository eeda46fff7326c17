"""Book-wide consistency of the chapter notebooks (the conventions in book/contributing.md).

Every ``notebooks/NN_*.ipynb`` is read as stored (nothing is executed). Each test names the notebook,
the cell (0-based index, as ``nbformat`` counts, with the cell's first line) and, where it applies,
the line, and says how to fix it. The tests only read files, so they take a second.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from mixcon_lite.classroom import MACHINE_PATH, is_instructor_cell, output_text

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_LINE = 88
CONTRIBUTING = "book/contributing.md"


def _load(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return nb


def _where(path: Path, index: int, cell: dict) -> str:
    first = next((ln.strip() for ln in cell["source"].splitlines() if ln.strip()), "")
    return f"{path.name} cell {index} ({cell['cell_type']}: {first[:50]!r})"


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _report(problems: list[str], fix: str) -> None:
    """Fail with every problem on its own line and the fix, without a traceback."""
    if problems:
        pytest.fail("\n".join(problems) + f"\nHow to fix: {fix}", pytrace=False)


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request) -> tuple[Path, dict]:
    return request.param, _load(request.param)


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


# ------------------------------------------------------------------------------------ header --

def test_header(notebook):
    path, nb = notebook
    md = [c for c in nb["cells"] if c["cell_type"] == "markdown"]
    head = md[0]["source"] if md else ""
    first = nb["cells"][0] if nb["cells"] else {"cell_type": "none", "source": ""}
    nn = path.name[:2]
    problems = []
    if first["cell_type"] != "markdown":
        problems.append(f"{path.name}: the first cell must be the markdown header")
    if not re.match(rf"# {nn} · \S", head):
        problems.append(f"{path.name}: the header must start with '# {nn} · Title'; it starts "
                        f"{head.splitlines()[0][:60] if head else '(empty)'!r}")
    checks = {r"\*\*Run time:\*\*[^\n]*\*\*(\d+|\?\?) s\*\*": "'> **Run time:** fast mode on a 2-core CPU, "
                                                             "**N s** (budget 180 s)'",
              r"\*\*Study time:\*\*\s*\S": "'· **Study time:** about NN min' on the run-time line",
              r"\*\*Prerequisites:\*\*\s*\S": "a line '> **Prerequisites:** chapter 00 ({doc}`00_first_look`), "
                                              "...; Python, PyTorch basics'"}
    for pattern, want in checks.items():
        if not re.search(pattern, head):
            problems.append(f"{path.name}: the header (first markdown cell) lacks {want}")
    _report(problems, f"use the header shape in {CONTRIBUTING} ('A chapter notebook'); "
                                           "`python -m mixcon_lite.reproducibility` fills N.")


def test_timer_cells(notebook):
    path, nb = notebook
    code = [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    problems = []
    if not code:
        problems.append(f"{path.name}: no code cells")
    else:
        i, first = code[0]
        if "_t0 = time.perf_counter()" not in first["source"] or "seed_everything" not in first["source"]:
            problems.append(f"{_where(path, i, first)}: the first code cell must start the timer "
                            "`_t0 = time.perf_counter()` and call `mixcon_lite.seed_everything`")
        i, last = code[-1]
        if 'glue("runtime_s"' not in last["source"].replace("'", '"'):
            problems.append(f"{_where(path, i, last)}: the last code cell must "
                            "`glue(\"runtime_s\", round(runtime_s, 1), display=False)`")
        if "hide-input" not in _tags(last):
            problems.append(f"{_where(path, i, last)}: the last code cell needs the tag hide-input")
    _report(problems, f"copy the first and last code cells from {CONTRIBUTING} ('A chapter notebook').")


def test_executed_top_to_bottom(notebook):
    path, nb = notebook
    counts = [(i, c.get("execution_count")) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    problems = [f"{_where(path, i, nb['cells'][i])}: not executed (execution_count is empty)"
                for i, n in counts if n is None]
    numbers = [n for _, n in counts if n is not None]
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"{path.name}: execution counts {numbers[:8]}... are not 1, 2, 3, ...: the stored "
                        "outputs are not one fresh run from top to bottom")
    _report(problems, "jupyter nbconvert --to notebook --execute --inplace "
                                           f"--ExecutePreprocessor.timeout=900 notebooks/{path.name}")


# ------------------------------------------------------------------------------------ source --

def _code_lines(nb: dict):
    """``(cell index, cell, line number, line)`` for every line of every code cell."""
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            for n, line in enumerate(cell["source"].splitlines(), 1):
                yield i, cell, n, line


def test_code_lines_fit(notebook):
    path, nb = notebook
    problems = []
    for i, cell, n, line in _code_lines(nb):
        if len(line) > MAX_LINE:
            problems.append(f"{_where(path, i, cell)} line {n}: {len(line)} characters > {MAX_LINE}: "
                            f"{line[:60]!r}...")
    _report(problems, f"wrap code lines at {MAX_LINE} characters (the book shows them "
                                           "without a scroll bar).")


MATH = re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)\$")
DOUBLE_ESCAPED = re.compile(r"\\\\(?:pm|mp|lVert|rVert|lvert|rvert|mathrm|mathbb|mathcal|frac|sum|le|ge|in|"
                            r"delta|Delta|lambda|beta|varepsilon|epsilon|hat|cdot|times|text|operatorname|"
                            r"sqrt|log|min|max|infty|alpha|sigma|theta|nabla|ell)\b")


def _prose_lines(source: str):
    """Markdown lines outside fenced code blocks (``` / ~~~ fences that are not MyST directives)."""
    fence = None
    for n, line in enumerate(source.splitlines(), 1):
        m = re.match(r"\s*(`{3,}|~{3,})(.*)", line)
        if m:
            if fence is None and not m.group(2).strip().startswith("{"):
                fence = m.group(1)
                continue
            if fence is not None and m.group(1).startswith(fence[0]) and len(m.group(1)) >= len(fence):
                fence = None
                continue
        if fence is None:
            yield n, line


def test_markdown(notebook):
    """Tables, escapes, exercise references, links to chapters that exist, citation keys."""
    path, nb = notebook
    keys = set(re.findall(r"@\w+\s*\{\s*([^,\s]+)\s*,", (ROOT / "book" / "references.bib").read_text()))
    chapters = {p.name[:2] for p in NOTEBOOKS}
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        where = _where(path, i, cell)
        for n, line in _prose_lines(cell["source"]):
            if line.lstrip().startswith("|") and any("|" in m.group(1) for m in MATH.finditer(line)):
                problems.append(f"{where} line {n}: a '|' inside $...$ splits the table row; write "
                                r"\lvert \rvert or \lVert \rVert")
            if DOUBLE_ESCAPED.search(line):
                problems.append(f"{where} line {n}: double backslash {DOUBLE_ESCAPED.search(line).group(0)!r}: "
                                "escape once ($\\pm 1$)")
            if re.search(r"\b[Ee]xercises? \d", line):
                problems.append(f"{where} line {n}: 'Exercise N' by number; refer with {{ref}}`ex-NN-name`")
            for nn in re.findall(r"(?i)\bnext\b[^.]*?\bchapter (\d\d)\b", line):
                if nn not in chapters:
                    problems.append(f"{where} line {n}: points to chapter {nn} as next, which does not exist")
            for target in re.findall(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", line):
                base = (path.parent / target).resolve()
                if not (base.with_suffix(".md").is_file() or base.with_suffix(".ipynb").is_file()):
                    problems.append(f"{where} line {n}: {{doc}}`{target}` does not exist")
            for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", line):
                for key in (k.strip() for k in group.split(",")):
                    if key not in keys:
                        problems.append(f"{where} line {n}: citation key {key!r} is not in book/references.bib")
    _report(problems, f"see 'Rendering' in {CONTRIBUTING}.")


# ----------------------------------------------------------------------------------- outputs --

def test_outputs_carry_no_machine_paths(notebook):
    path, nb = notebook
    problems = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            text = output_text(out)
            m = MACHINE_PATH.search(text)
            if m:
                problems.append(f"{_where(path, i, cell)}: output holds a machine path: "
                                f"...{text[max(0, m.start() - 40):m.end() + 40]!r}...")
    _report(problems, f"run `python -m mixcon_lite.classroom clean notebooks/{path.name}`; "
                                           "what it cannot rewrite, print as a relative path and re-execute.")


LITERAL_SEED = re.compile(r"(\bseed\s*=\s*\d|manual_seed\(\s*\d|seed_everything\(\s*\d"
                          r"|default_rng\(\s*\d)")


def test_seeds_derive_from_the_course_seed(notebook):
    """Every seed a chapter passes derives from SEED = mixcon_lite.get_seed(), so that
    MIXCON_LITE_SEED reruns the whole chapter at another draw; a fixed object the text names is
    marked with a comment containing 'fixed'."""
    path, nb = notebook
    problems = []
    for i, cell, n, line in _code_lines(nb):
        code, _, comment = line.partition("#")
        if LITERAL_SEED.search(code) and "fixed" not in comment:
            problems.append(f"{_where(path, i, cell)} line {n}: literal seed: {line.strip()!r}")
    _report(problems, "derive it from the course seed (`seed=SEED + k`, `manual_seed(SEED + k)`, "
                      f"`default_rng(SEED + k)`; see {CONTRIBUTING}, 'Seeds, and claims that hold "
                      "at any seed'), or mark a fixed object with a '# ... fixed ...' comment.")


def test_no_stray_generator_repr(notebook):
    path, nb = notebook
    problems = [f"{_where(path, i, c)}: an output shows '<torch._C.Generator ...>'"
                for i, c in enumerate(nb["cells"]) for o in c.get("outputs", [])
                if "<torch._C.Generator" in output_text(o)]
    _report(problems, "end the cell with ';' or assign the generator "
                                           "(`g = mixcon_lite.seed_everything(0)`).")


def test_no_widget_state(notebook):
    path, nb = notebook
    _report(
        [f"{path.name}: notebook metadata holds ipywidgets state ('widgets')"]
        if "widgets" in nb.get("metadata", {}) else [],
        f"run `python -m mixcon_lite.classroom clean notebooks/{path.name}` after executing.")


def test_figures_have_captions(notebook):
    path, nb = notebook
    nn = path.name[:2]
    problems, names = [], {}
    for i, cell in enumerate(nb["cells"]):
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if not images:
            continue
        fig = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
        where = _where(path, i, cell)
        if not str(fig.get("caption", "")).strip():
            problems.append(f"{where}: makes a figure but has no metadata.mystnb.figure.caption")
        alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt", "")
        if not str(alt).strip():
            problems.append(f"{where}: its figure has no alt text (metadata.mystnb.image.alt: what "
                            "the figure shows, in words, for a screen reader)")
        name = str(fig.get("name", ""))
        if not re.fullmatch(rf"fig-{nn}-[a-z0-9-]+", name):
            problems.append(f"{where}: metadata.mystnb.figure.name is {name!r}; expected 'fig-{nn}-<what>'")
        elif name in names:
            problems.append(f"{where}: figure name {name!r} is already used by cell {names[name]}")
        names.setdefault(name, i)
        if len(images) > 1:
            problems.append(f"{where}: {len(images)} images in one cell; a caption and a name belong to one "
                            "figure: draw them in one figure or split the cell")
    _report(problems, 'add cell metadata {"mystnb": {"figure": {"caption": "...", '
                                           f'"name": "fig-{nn}-..."}}}}}} (see "Rendering" in {CONTRIBUTING}).')


# --------------------------------------------------------------------------------- exercises --

def _exercise_blocks(nb: dict):
    """Yield (label, index, exercise_text, cells after it up to the next exercise)."""
    starts = [(i, c) for i, c in enumerate(nb["cells"])
              if c["cell_type"] == "markdown" and "{exercise}" in c["source"]]
    for k, (i, cell) in enumerate(starts):
        m = re.search(r":label:\s*(\S+)", cell["source"])
        end = starts[k + 1][0] if k + 1 < len(starts) else len(nb["cells"])
        yield (m.group(1) if m else None), i, cell["source"], list(range(i + 1, end))


def _checker_call(source: str):
    """``(verdict name, names passed to check_*)`` from ``verdict = exercises.check_x(...)``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None, set()
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)):
            func = node.value.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname.startswith("check_"):
                args = list(node.value.args) + [kw.value for kw in node.value.keywords]
                used = {n.id for a in args for n in ast.walk(a) if isinstance(n, ast.Name)}
                return node.targets[0].id, used
    return None, set()


def test_exercises(notebook):
    """Each exercise: label ex-NN-name, a dropdown solution with BEGIN/END markers, then a checker
    cell ending with the verdict, then an instructor cell that asserts it."""
    path, nb = notebook
    nn = path.name[:2]
    cells = nb["cells"]
    blocks = list(_exercise_blocks(nb))
    problems = []
    if len(blocks) < 3:
        problems.append(f"{path.name}: {len(blocks)} exercises; every chapter has at least 3")
    for label, i, text, after in blocks:
        where = _where(path, i, cells[i])
        if not label or not re.fullmatch(rf"ex-{nn}-[a-z0-9-]+", label):
            problems.append(f"{where}: ':label: {label}' should be 'ex-{nn}-<name>'")
            continue
        start = next((j for j in after if cells[j]["cell_type"] == "markdown"
                      and re.search(rf"\{{solution-start\}}\s*{re.escape(label)}\s", cells[j]["source"] + "\n")),
                     None)
        end = next((j for j in after if start is not None and j > start and cells[j]["cell_type"] == "markdown"
                    and "{solution-end}" in cells[j]["source"]), None)
        if start is None or end is None:
            problems.append(f"{where}: {label} needs a '````{{solution-start}} {label}' cell and a "
                            "'````{solution-end}' cell after it")
            continue
        if ":class: dropdown" not in cells[start]["source"]:
            problems.append(f"{_where(path, start, cells[start])}: the solution needs ':class: dropdown'")
        solution = [j for j in range(start + 1, end) if cells[j]["cell_type"] == "code"]
        if not any("### BEGIN SOLUTION" in cells[j]["source"] for j in solution):
            problems.append(f"{where}: {label}'s solution has no code cell with '### BEGIN SOLUTION' / "
                            "'### END SOLUTION' around the student's code")
        rest = [j for j in after if j > end]
        checker = next((j for j in rest if cells[j]["cell_type"] == "code" and not is_instructor_cell(cells[j])
                        and _checker_call(cells[j]["source"])[0]), None)
        if checker is None:
            problems.append(f"{where}: {label} has no checker cell after its solution "
                            "('verdict = exercises.check_x(...)' then 'verdict' on the last line)")
            continue
        verdict, used = _checker_call(cells[checker]["source"])
        cw = _where(path, checker, cells[checker])
        lines = [ln.strip() for ln in cells[checker]["source"].splitlines() if ln.strip()]
        if lines[-1] != verdict:
            problems.append(f"{cw}: the checker cell must end with the line '{verdict}' (shows PASS / NOT YET)")
        if any(re.match(rf"assert\s+{re.escape(verdict)}\b", ln) for ln in lines):
            problems.append(f"{cw}: 'assert {verdict}' belongs in its own cell tagged "
                            "['remove-cell', 'instructor'], not in the checker cell")
        for name in sorted(used - {"exercises", "mixcon_lite", "torch", "np", "True", "False", "None"}):
            if not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text):
                problems.append(f"{where}: the checker cell passes `{name}`, which {label}'s text never names")
        asserts = [j for j in rest if j > checker and cells[j]["cell_type"] == "code"
                   and cells[j]["source"].strip() == f"assert {verdict}"]
        tagged = [j for j in asserts if {"instructor", "remove-cell"} <= set(_tags(cells[j]))]
        if not tagged:
            problems.append(f"{cw}: after it, a code cell containing only 'assert {verdict}' with tags "
                            f"['remove-cell', 'instructor'] is missing"
                            + (f" (cell {asserts[0]} has it without both tags)" if asserts else ""))
    _report(problems, f"follow 'Exercises' in {CONTRIBUTING}.")
