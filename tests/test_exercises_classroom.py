from pathlib import Path

import nbformat
import pytest
import torch

from mixcon_lite import classroom, exercises
from mixcon_lite.attacks.features import total_variation
from mixcon_lite.metrics import psnr

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_check_result_behaviour():
    ok, bad = exercises.CheckResult(True, "fine"), exercises.CheckResult(False, "expected 1")
    assert ok and not bad
    assert repr(ok) == "PASS: fine" and repr(bad).startswith("NOT YET")
    assert "NOT YET" in bad._repr_html_()


def test_check_total_variation():
    assert exercises.check_total_variation(total_variation)
    summed = lambda x: (x[:, :, 1:] - x[:, :, :-1]).abs().flatten(1).sum(1) + (x[..., 1:] - x[..., :-1]).abs().flatten(1).sum(1)  # noqa: E731
    verdict = exercises.check_total_variation(summed)
    assert not verdict and "expected" in verdict.message
    only_h = lambda x: (x[..., 1:] - x[..., :-1]).abs().flatten(1).mean(1)  # noqa: E731
    assert not exercises.check_total_variation(only_h)
    assert not exercises.check_total_variation(lambda x: x.sum())            # wrong shape
    raising = exercises.check_total_variation(lambda x: 1 / 0)
    assert not raising and "ZeroDivisionError" in raising.message
    assert not exercises.check_total_variation("not a function")


def test_check_psnr():
    assert exercises.check_psnr(lambda x, y: torch.from_numpy(psnr(x, y)))
    wrong = exercises.check_psnr(lambda x, y: 20 * torch.log10(1 / (x - y).pow(2).flatten(1).mean(1)))
    assert not wrong and "10 log10" in wrong.message
    finite = lambda x, y: 10 * torch.log10(1 / ((x - y).pow(2).flatten(1).mean(1) + 1e-12))  # noqa: E731
    assert not exercises.check_psnr(finite)


@pytest.mark.parametrize("s1,s2,passed", [(0.8, 0.2, True), (0.2, 0.8, False), (0.5, 0.5, False),
                                          (3.0, 0.1, False), ("x", 0.1, False)])
def test_check_deeper_cut(s1, s2, passed):
    assert bool(exercises.check_deeper_cut(s1, s2)) is passed


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
def test_check_delta():
    from mixcon_lite.separability import min_pairwise_distance as delta

    assert exercises.check_delta(delta)
    squared = exercises.check_delta(lambda h: delta(h) ** 2)
    assert not squared and "square root" in squared.message
    with_diagonal = exercises.check_delta(lambda h: torch.cdist(h, h).min().item())
    assert not with_diagonal and "i == j" in with_diagonal.message
    assert not exercises.check_delta(lambda h: torch.zeros(3))


def test_check_linear_delta_bound_and_unfittable():
    from mixcon_lite.separability import min_pairwise_distance as delta

    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(5, 4, generator=g), torch.randn(30, 4, generator=g)
    right = torch.linalg.matrix_norm(w, ord=2).item() * delta(x)
    assert exercises.check_linear_delta_bound(w, x, right)
    frob = exercises.check_linear_delta_bound(w, x, w.norm().item() * delta(x))
    assert not frob and "Frobenius" in frob.message
    assert exercises.check_unfittable(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    assert not exercises.check_unfittable(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([1, 1]))
    assert not exercises.check_unfittable(torch.tensor([[0.0, 1.0], [0.0, 2.0]]), torch.tensor([0, 1]))


def test_check_clause_gadget():
    def right(clause, n):
        w = torch.zeros(n)
        for lit in clause:
            w[abs(lit) - 1] += -1.0 if lit > 0 else 1.0
        return w, -(len(clause) - 1)

    assert exercises.check_clause_gadget(right)
    wrong_bias = exercises.check_clause_gadget(lambda c, n: (right(c, n)[0], -2.0))   # only right for 3 literals
    assert not wrong_bias and "expected" in wrong_bias.message
    assert not exercises.check_clause_gadget(lambda c, n: (torch.zeros(n + 1), 0.0))


def test_check_soundness_counterexample_and_restarts():
    from mixcon_lite import sat

    cnf = sat.CNF(3, [[1, 2, 3], [-1, 2, 3]])
    x = torch.tensor([-2 / 3, -2 / 3, -2 / 3])            # violates clause 0 after rounding, its unit is off
    assert exercises.check_soundness_counterexample(cnf, x, copies=1)
    assert not exercises.check_soundness_counterexample(cnf, torch.tensor([-1.0, -1.0, -1.0]), copies=1)
    assert not exercises.check_soundness_counterexample(cnf, torch.zeros(2))
    assert exercises.check_restarts_needed(0.5, 4)          # 1 - 0.5^4 = 0.94 >= 0.9 > 1 - 0.5^3
    assert not exercises.check_restarts_needed(0.5, 3)
    assert not exercises.check_restarts_needed(1.5, 3)


def test_chapter03_checkers():
    from mixcon_lite import mixcon

    assert exercises.check_consistency_loss(mixcon.consistency_loss)
    mean = exercises.check_consistency_loss(lambda h, y, l, b, e: mixcon.consistency_loss(h, y, l, b, e, "mean"))
    assert not mean and "mean over pairs" in mean.message
    assert exercises.check_optimal_distance(0.1, 0.01, 0.05, 0.1 ** 0.5 - 0.05)
    assert not exercises.check_optimal_distance(0.1, 0.01, 0.05, 0.1 ** 0.5)
    assert exercises.check_collapse(0.9, 0.0)
    assert not exercises.check_collapse(0.9, 0.5)
    assert not exercises.check_collapse(0.0, 0.0)


def test_chapter04_checkers():
    from mixcon_lite.attacks.features import rmle_objective, total_variation
    from mixcon_lite.models import LeNet5

    assert exercises.check_rmle_objective(rmle_objective)
    summed = exercises.check_rmle_objective(
        lambda m, c, x, h, tv: (m.forward_to(x, c) - h).pow(2).flatten(1).sum(1) + tv * total_variation(x))
    assert not summed and "Average" in summed.message
    good = {"block1": 0.8, "block2": 0.3, "fc1": 0.1, "fc2": 0.05, "logits": 0.01}
    assert exercises.check_safest_cut(good)
    assert not exercises.check_safest_cut({**good, "block2": 0.9})
    assert not exercises.check_safest_cut({"block1": 0.8})
    torch.manual_seed(0)
    model = LeNet5().eval()
    images, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    assert exercises.check_noise_defence(model, 50.0, images, labels)
    assert not exercises.check_noise_defence(model, -1.0, images, labels)
