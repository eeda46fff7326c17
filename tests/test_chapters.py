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


def test_record_keeps_glued_values_and_their_spread(tmp_path):
    nb = _notebook(tmp_path / "02_glue.ipynb",
                   "import os\nfrom myst_nb import glue\n"
                   "s, t = int(os.environ['MIXCON_LITE_SEED']), int(os.environ['OMP_NUM_THREADS'])\n"
                   "glue('x', s + 0.25 * t, display=False)\n"
                   "glue('label', 'text', display=False)\n"
                   "glue('runtime_s', 99.0, display=False)")
    out = tmp_path / "rec" / "spread.json"
    assert chapters.main([str(nb), "--seed", "0", "--seed", "2", "--threads", "1",
                          "--threads", "2", "--record", str(out)]) == 0
    import json
    rec = json.loads(out.read_text())
    assert rec["settings"]["seeds"] == [0, 2] and rec["settings"]["threads"] == [1, 2]
    assert len(rec["runs"]) == 4 and {r["values"]["label"] for r in rec["runs"]} == {"text"}
    sp = rec["spread"]["02_glue.ipynb"]
    assert set(sp["numbers"]) == {"x"}                 # text and the timing are left out
    assert sp["numbers"]["x"] == {"min": 0.25, "max": 2.5, "range": 2.25}
    assert sp["threads"] == {"0": {"max_abs_change": 0.25, "name": "x"},
                             "2": {"max_abs_change": 0.25, "name": "x"}}
    assert "hardware" in rec and rec["command"].startswith("python -m mixcon_lite.chapters")


def test_spread_without_a_second_thread_count_compares_nothing():
    runs = [{"notebook": "a.ipynb", "seed": 0, "threads": 1, "values": {"x": 1.0}},
            {"notebook": "a.ipynb", "seed": 1, "threads": 1,
             "values": {"x": 3.0, "y": True, "full_auc": 0.6, "runtime_s": 90.0}}]
    sp = chapters.spread(runs)["a.ipynb"]
    # booleans, timings and values read from a full-mode record (full_*) are not spread
    assert sp["threads"] == {} and sp["numbers"] == {"x": {"min": 1.0, "max": 3.0, "range": 2.0}}
