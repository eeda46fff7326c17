"""The teacher's guide is generated from the chapters' headers and exercises: these tests check the
reader on a small fake checkout, and that the real guide's times are the headers'."""
import json
import re
from pathlib import Path

import pytest

from mixcon_lite import teaching

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("# 00 · A chapter\n\n> **Run time:** fast mode on a 2-core CPU, **{run} s** (budget 180 s)"
          " · **Study time:** about {study} min\n> **Prerequisites:** none\n")
EXERCISE = ("```{{exercise}}\n:label: ex-{n}-a\n\n**Do the thing.** Check it with "
            "`exercises.check_thing(f)`.\n```\n")


def _checkout(tmp_path, chapters):
    (tmp_path / "notebooks").mkdir()
    for n, run, study in chapters:
        cells = [{"cell_type": "markdown", "metadata": {},
                  "source": [HEADER.format(run=run, study=study).replace("00", n, 1)]},
                 {"cell_type": "markdown", "metadata": {}, "source": [EXERCISE.format(n=n)]},
                 {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                  "source": ["verdict = exercises.check_other(g)"]}]
        nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        (tmp_path / "notebooks" / f"{n}_ch.ipynb").write_text(json.dumps(nb))
    return tmp_path


def test_facts_and_sums(tmp_path):
    root = _checkout(tmp_path, [("00", 21, 45), ("01", 58, 75)])
    facts = teaching.chapter_facts(root)
    assert [(f["number"], f["run_s"], f["study_min"]) for f in facts] == [("00", 21, 45),
                                                                       ("01", 58, 75)]
    assert facts[0]["exercises"] == [{"label": "ex-00-a", "title": "Do the thing",
                                      "checkers": ["check_thing", "check_other"]}]
    out = teaching.render_guide("{{ teaching:study:00,01 }} / {{ teaching:run:1 }}", facts)
    assert out == "120 / 58"
    table = teaching.render_guide("{{ teaching:chapters }}", facts)
    assert "| 79 s | about 120 min |" in table and "{doc}`00 · A chapter <../notebooks/00_ch>`" in table
    assert "{ref}`ex-01-a`" in teaching.render_guide("{{ teaching:exercises }}", facts)


@pytest.mark.parametrize("bad", ["{{ teaching:study:07 }}", "{{ teaching:nothing }}",
                                 "{{ teaching:run }}"])
def test_bad_placeholders_say_what_is_expected(tmp_path, bad):
    facts = teaching.chapter_facts(_checkout(tmp_path, [("00", 21, 45)]))
    with pytest.raises(KeyError, match="teaching"):
        teaching.render_guide(bad, facts)


def test_a_header_without_study_time_is_named(tmp_path):
    root = _checkout(tmp_path, [("00", 21, 45)])
    p = root / "notebooks" / "00_ch.ipynb"
    nb = json.loads(p.read_text())
    nb["cells"][0]["source"] = ["# 00 · A chapter\n\n> **Run time:** **21 s**\n"]
    p.write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="00_ch.ipynb.*Study time"):
        teaching.chapter_facts(root)


def test_the_real_guide_states_each_chapters_header_times():
    guide = (ROOT / teaching.GUIDE).read_text()
    assert guide == teaching.guide(ROOT), "stale: run `python -m mixcon_lite.reproducibility`"
    for f in teaching.chapter_facts(ROOT):
        row = next(line for line in guide.splitlines() if f"notebooks/{f['name']}>" in line)
        nb = json.loads((ROOT / "notebooks" / f"{f['name']}.ipynb").read_text())
        header = "".join(nb["cells"][0]["source"])
        run = re.search(r"\*\*(\d+) s\*\*", header).group(1)
        study = re.search(r"about (\d+) min", header).group(1)
        assert f"| {run} s | about {study} min |" in row, (f["name"], row)
