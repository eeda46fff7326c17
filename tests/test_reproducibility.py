"""The reproducibility page and the run-time headers are generated, never typed: these tests check
the generator on a small fake checkout, and that the real page and headers are up to date."""
import json
from pathlib import Path

import pytest

from mixcon_lite import reproducibility as rep

ROOT = Path(__file__).resolve().parents[1]


def _glue_output(name, text):
    # what myst_nb.glue(name, value, display=False) stores
    return {"output_type": "display_data", "data": {"application/papermill.record/text/plain": text},
            "metadata": {"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}}}


def _fake_checkout(tmp_path, header="# Ch\n\n> **Run time:** fast mode, 2-core CPU, **99 s** (budget 180 s)\n", runtime="41.6"):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book" / "results").mkdir(parents=True)
    (tmp_path / "book" / "reproducibility").mkdir()
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": [header]},
                    {"cell_type": "code", "metadata": {}, "source": ["x"], "execution_count": 1,
                     "outputs": [_glue_output("acc", "np.float64(0.8034)"), _glue_output("name", "'LeNet'"),
                                 _glue_output("runtime_s", runtime)]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "notebooks" / "00_demo.ipynb").write_text(json.dumps(nb))
    record = {"results": [{"setting": "vanilla", "net": "default", "test": 86.42},
                          {"setting": "vanilla", "net": "wider", "test": 80.0}], "scores": {"a b": {"ssim": None}}}
    (tmp_path / "book" / "results" / "exp_full.json").write_text(json.dumps(record))
    return tmp_path


def test_glued_values_and_render(tmp_path):
    root = _fake_checkout(tmp_path)
    assert rep.glued_values(root / "notebooks" / "00_demo.ipynb") == {"acc": 0.8034, "name": "LeNet", "runtime_s": 41.6}
    out = rep.render("a {{ nb:00_demo/acc | .2f }} b {{ rec:exp_full/results/[setting=vanilla,net=wider]/test | .1f }}"
                     " c {{rec:exp_full/results/0/test}} d {{ rec:exp_full/scores/a b/ssim | .3f }}", root)
    assert out == "a 0.80 b 80.0 c 86.42 d —"


@pytest.mark.parametrize("bad", ["{{ nb:00_demo/missing }}", "{{ nb:01_none/acc }}", "{{ rec:exp_full/results/[setting=vanilla]/test }}",
                                 "{{ rec:nothing/x }}"])
def test_render_names_what_is_missing(tmp_path, bad):
    root = _fake_checkout(tmp_path)
    with pytest.raises(KeyError):
        rep.render(bad, root)


def test_render_names_a_value_that_cannot_be_formatted(tmp_path):
    root = _fake_checkout(tmp_path)
    with pytest.raises(ValueError, match="nb:00_demo/name"):
        rep.render("{{ nb:00_demo/name | .3f }}", root)


def test_runtime_header_sync(tmp_path):
    root = _fake_checkout(tmp_path)
    assert rep.sync_runtime_headers(root, write=False) == ["00_demo.ipynb"]
    assert rep.sync_runtime_headers(root) == ["00_demo.ipynb"]
    nb = json.loads((root / "notebooks" / "00_demo.ipynb").read_text())
    assert "**42 s**" in "".join(nb["cells"][0]["source"])
    assert rep.sync_runtime_headers(root, write=False) == []


def test_runtime_header_missing_pattern(tmp_path):
    root = _fake_checkout(tmp_path, header="# Ch\n\nno time here\n")
    with pytest.raises(ValueError, match="Run time"):
        rep.sync_runtime_headers(root, write=False)


def test_check_mode_detects_a_stale_page(tmp_path, capsys):
    root = _fake_checkout(tmp_path)
    (root / "book" / "reproducibility" / "ch00.in.md").write_text("acc {{ nb:00_demo/acc | .3f }}\n")
    assert rep.main(["--root", str(root), "--check"]) == 1
    assert rep.main(["--root", str(root)]) == 0
    assert "acc 0.803" in (root / "book" / "reproducibility.md").read_text()
    assert rep.main(["--root", str(root), "--check"]) == 0


def test_the_book_is_up_to_date():
    """Every number on the reproducibility page and every run-time header comes from the stored
    notebooks and records. If this fails: `python -m mixcon_lite.reproducibility`, then commit."""
    assert rep.main(["--root", str(ROOT), "--check"]) == 0
