import nbformat
import pytest

from mixcon_lite import chapters


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_run_notebook_sets_the_seed_and_threads(tmp_path):
    nb = _notebook(tmp_path / "00_ok.ipynb",
                   "import os, mixcon_lite",
                   "assert mixcon_lite.get_seed() == 3, mixcon_lite.get_seed()\n"
                   "assert os.environ['OMP_NUM_THREADS'] == '1'")
    r = chapters.run_notebook(nb, seed=3, threads=1, timeout=120)
    assert r["ok"] and r["error"] is None and r["seed"] == 3 and r["seconds"] > 0
    assert nbformat.read(nb, as_version=4).cells[0].outputs == []   # nothing written back


def test_run_notebook_reports_the_failing_cell(tmp_path):
    nb = _notebook(tmp_path / "01_bad.ipynb", "x = 1", "assert x == 2, 'a claim that flips'")
    r = chapters.run_notebook(nb, seed=1, timeout=120, out_dir=tmp_path / "out")
    assert not r["ok"] and r["error"].startswith("cell 1:") and "a claim that flips" in r["error"]
    kept = nbformat.read(tmp_path / "out" / "01_bad.seed1.ipynb", as_version=4)
    assert kept.cells[1].outputs[0]["output_type"] == "error"


def test_main_exit_code_and_closing_line(tmp_path, capsys):
    good = _notebook(tmp_path / "00_good.ipynb", "pass")
    bad = _notebook(tmp_path / "01_bad.ipynb", "raise ValueError('boom')")
    assert chapters.main([str(good), "--seed", "2"]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
    assert chapters.main([str(good), str(bad), "--jobs", "2"]) == 1
    out = capsys.readouterr().out
    assert "1 passed, 1 failed" in out and "boom" in out


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="not a notebook"):
        chapters.run_notebook(tmp_path / "missing.ipynb")
    with pytest.raises(SystemExit):
        chapters.main([str(tmp_path / "missing.ipynb")])
