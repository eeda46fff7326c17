import json
import os
import subprocess
import sys
import re
from pathlib import Path

import nbformat
import pytest

from mixcon_lite import classroom, exercises

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_check_result_behaviour():
    ok, bad = exercises.CheckResult(True, "fine"), exercises.CheckResult(False, "expected 1")
    assert ok and not bad
    assert repr(ok) == "PASS: fine" and repr(bad).startswith("NOT YET")
    assert "NOT YET" in bad._repr_html_()


def _exercise_notebook(with_markers=True, close=True):
    nb = nbformat.v4.new_notebook()
    body = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n" if with_markers \
        else "answer = 42\n"
    cells = [nbformat.v4.new_markdown_cell("```{exercise}\n:label: ex-t\nDo it.\n```"),
             nbformat.v4.new_markdown_cell("````{solution-start} ex-t\n:class: dropdown\n````"),
             nbformat.v4.new_code_cell(body),
             nbformat.v4.new_markdown_cell("why it works")]
    if close:
        cells.append(nbformat.v4.new_markdown_cell("````{solution-end}\n````"))
    cells.append(nbformat.v4.new_code_cell("check(f)"))
    cells[-1].outputs = [nbformat.v4.new_output("stream", text="PASS")]
    cells[-1].execution_count = 3
    nb.cells = cells
    return nb


def test_student_notebook_stubs_and_clears():
    st = classroom.student_notebook(_exercise_notebook())
    code = [c.source for c in st.cells if c.cell_type == "code"]
    assert code[0] == 'def f(x):\n    raise NotImplementedError("Exercise ex-t: replace this line with your code")\n'
    assert "return 2 * x" not in "".join(code) and "why it works" not in "".join(c.source for c in st.cells)
    assert all(c.outputs == [] and c.execution_count is None for c in st.cells if c.cell_type == "code")
    compile(code[0], "stub", "exec")
    whole = classroom.student_notebook(_exercise_notebook(with_markers=False))
    assert [c.source for c in whole.cells if c.cell_type == "code"][0] == "# Exercise ex-t: your code here\n"


def test_student_notebook_unbalanced_markers():
    with pytest.raises(ValueError, match="no solution-end"):
        classroom.student_notebook(_exercise_notebook(close=False))
    nb = _exercise_notebook()
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("````{solution-end}\n````"))
    with pytest.raises(ValueError, match="without a solution-start"):
        classroom.student_notebook(nb)


def test_course_notebooks_have_exercises_and_student_versions(tmp_path):
    written = classroom.write_student_versions(NOTEBOOKS, tmp_path)
    assert written
    for path in written:
        original = nbformat.read(NOTEBOOKS / path.name, as_version=4)
        labels = [c.source for c in original.cells if c.cell_type == "markdown" and "{exercise}" in c.source]
        assert len(labels) >= 3, f"{path.name} needs at least three exercises"
        student = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in student.cells)
        assert "BEGIN SOLUTION" not in text and "{solution-start}" not in text
        assert "widgets" not in student.metadata
        assert not any(classroom.is_instructor_cell(c) for c in student.cells)
        for cell in student.cells:
            if cell.cell_type == "code":
                assert cell.outputs == []
                # IPython magics (lines starting with % or !) are not Python; '%' elsewhere is modulo
                code = re.sub(r"(?m)^(\s*)[%!]", r"\1#", cell.source)
                compile(code, path.name, "exec")


def test_classroom_cli(tmp_path, capsys):
    assert classroom.main(["student", str(NOTEBOOKS), str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError):
        classroom.write_student_versions(tmp_path / "missing", tmp_path / "o")
    with pytest.raises(ValueError, match="must differ"):
        classroom.write_student_versions(NOTEBOOKS, NOTEBOOKS)


# ------------------------------------------------- instructor cells, widget state, verdict asserts --

SETUP = ("from mixcon_lite import exercises\n\n"
         "def check_double(f):\n"
         "    value, failed = exercises.call_student(f, 1)\n"
         "    if failed is not None:\n"
         "        return failed\n"
         "    return exercises.CheckResult(value == 2, f'f(1) should be 2, got {value}')\n")
CHECKER = "verdict = check_double(f)\nverdict"


def _convention_notebook(solution="return 2 * x"):
    """One exercise written to the course convention (COMMON.md / book/contributing.md)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"a": {}}}}
    instructor = nbformat.v4.new_code_cell("assert verdict")
    instructor.metadata["tags"] = ["remove-cell", "instructor"]
    nb.cells = [nbformat.v4.new_code_cell(SETUP),
                nbformat.v4.new_markdown_cell("```{exercise}\n:label: ex-t\nWrite `f`.\n```"),
                nbformat.v4.new_markdown_cell("````{solution-start} ex-t\n:class: dropdown\n````"),
                nbformat.v4.new_code_cell(f"def f(x):\n    ### BEGIN SOLUTION\n    {solution}\n"
                                          "    ### END SOLUTION\n"),
                nbformat.v4.new_markdown_cell("````{solution-end}\n````"),
                nbformat.v4.new_code_cell(CHECKER),
                instructor]
    nb.cells[3].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    return nb


def test_student_drops_instructor_cells_and_widget_state():
    nb = _convention_notebook()
    st = classroom.student_notebook(nb)
    assert "widgets" not in st.metadata and "widgets" in nb.metadata       # the original is untouched
    code = [c.source for c in st.cells if c.cell_type == "code"]
    assert code[2] == CHECKER and "assert verdict" not in "\n".join(code)
    assert len(st.cells) == len(nb.cells) - 2          # solution-end merged away, instructor cell dropped
    assert all("execution" not in c.metadata for c in st.cells)


def test_student_drops_verdict_asserts_in_untagged_cells():
    """Older notebooks assert the verdict in the checker cell or an untagged cell: drop those lines
    (and only those), so a student never sees an AssertionError."""
    nb = _convention_notebook()
    nb.cells[5].source = CHECKER + "\nassert verdict\nassert value == 2"
    nb.cells[6].metadata["tags"] = []
    st = classroom.student_notebook(nb)
    code = "\n".join(c.source for c in st.cells if c.cell_type == "code")
    assert "assert verdict" not in code and "assert value == 2" in code
    assert [c.source for c in st.cells].count("") == 0          # the emptied cell is gone, not blank


def _run(nb, tmp_path, name):
    """Execute a notebook in a fresh kernel; return the executed notebook (raises on a cell error)."""
    from nbclient import NotebookClient

    path = tmp_path / name
    nbformat.write(nb, path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(__file__).resolve().parents[1])}}).execute()
    return nb


def test_student_version_shows_not_yet_without_traceback(tmp_path):
    """End to end: the instructor notebook passes; a wrong solution fails its instructor cell; the
    student version runs to the end and shows NOT YET, with no error output anywhere."""
    from nbclient.exceptions import CellExecutionError

    done = _run(_convention_notebook(), tmp_path, "teacher.ipynb")
    assert "PASS" in json.dumps(done.cells[5].outputs)
    with pytest.raises(CellExecutionError, match="AssertionError"):
        _run(_convention_notebook(solution="return x + 2"), tmp_path, "wrong.ipynb")
    student = _run(classroom.student_notebook(_convention_notebook()), tmp_path, "student.ipynb")
    outputs = [o for c in student.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert "NOT YET" in json.dumps(outputs) and "NotImplementedError" in json.dumps(outputs)


def _dirty_notebook(repo):
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    warn = (f"{sys.prefix}/lib/python3.11/site-packages/torch/nn/modules/conv.py:456: UserWarning: x\n"
            f"{repo}/mixcon_lite/train.py:12: UserWarning: y\n")
    cell = nbformat.v4.new_code_cell("train()")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=warn),
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {
            "model_id": "abc", "version_major": 2, "version_minor": 0}, "text/plain": "training: 0%"}),
        nbformat.v4.new_output("stream", name="stdout", text=f"data root: {os.environ['MIXCON_LITE_DATA']}\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo/work/x",
                                                     "text/plain": "<Figure size 640x480>"}),
    ]
    other = nbformat.v4.new_code_cell("print(secret)")
    other.outputs = [nbformat.v4.new_output("stream", name="stdout", text="/work/elsewhere/file.txt\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · Test"), cell, other]
    return nb


def test_clean_notebook_strips_widget_state_and_machine_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXCON_LITE_DATA", str(tmp_path / "mirror"))
    repo = tmp_path / "repo"
    nb = _dirty_notebook(repo)
    problems = classroom.clean_notebook(nb, repo_root=repo)
    assert "widgets" not in nb.metadata
    outs = nb.cells[1].outputs
    assert len(outs) == 3                                    # the widget view (a progress bar) is gone
    assert outs[0].text == ("torch/nn/modules/conv.py:456: UserWarning: x\n"
                            "mixcon_lite/train.py:12: UserWarning: y\n")
    assert outs[1].text == "data root: $MIXCON_LITE_DATA\n"
    assert outs[2].data["image/png"] == "iVBORw0KGgo/work/x"     # images are never rewritten
    assert len(problems) == 1 and problems[0].startswith("cell 2:") and "/work/elsewhere" in problems[0]
    with pytest.raises(ValueError, match="Expected a notebook"):
        classroom.clean_notebook({"cells": None})


def test_clean_cli_in_place(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIXCON_LITE_DATA", str(tmp_path / "mirror"))
    folder = tmp_path / "repo" / "notebooks"
    folder.mkdir(parents=True)
    nb = _dirty_notebook(tmp_path / "repo")
    nb.cells = nb.cells[:2]
    nbformat.write(nb, folder / "99_test.ipynb")
    assert classroom.main(["clean", str(folder)]) == 0
    assert "99_test.ipynb" in capsys.readouterr().out
    text = (folder / "99_test.ipynb").read_text()
    assert not classroom.MACHINE_PATH.search(text.replace("iVBORw0KGgo/work/x", ""))
    assert "widget-state" not in text
    nbformat.validate(nbformat.reads(text, as_version=4))
    assert classroom.main(["clean", str(folder / "99_test.ipynb")]) == 0     # idempotent
    assert "nothing to change" in capsys.readouterr().out
    nbformat.write(_dirty_notebook(tmp_path / "repo"), folder / "98_left.ipynb")
    assert classroom.main(["clean", str(folder)]) == 1                      # a path it cannot fix
    assert "98_left.ipynb cell 2" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="notebooks/"):
        classroom.main(["clean", str(tmp_path / "missing")])


def test_clean_cli_as_module(tmp_path):
    """`python -m mixcon_lite.classroom clean` works from the command line."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), folder / "00_x.ipynb")
    run = subprocess.run([sys.executable, "-m", "mixcon_lite.classroom", "clean", str(folder)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
