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
        for cell in student.cells:
            if cell.cell_type == "code":
                assert cell.outputs == []
                compile(cell.source.replace("%", "#"), path.name, "exec")


def test_classroom_cli(tmp_path, capsys):
    assert classroom.main(["student", str(NOTEBOOKS), str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError):
        classroom.write_student_versions(tmp_path / "missing", tmp_path / "o")
    with pytest.raises(ValueError, match="must differ"):
        classroom.write_student_versions(NOTEBOOKS, NOTEBOOKS)


# ---------------------------------------------------------------- chapters 01-04 checkers ----------
