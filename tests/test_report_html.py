"""``gamedyn report`` writes report.html: one self-contained page (figures as data URIs) with the
study, the aggregate tables, basin fractions, every figure under figures/, and the failures."""

from __future__ import annotations

import base64
import re

from gamedyn import cli, make_study, orchestrate, run_study
from gamedyn.report_html import REPORT_FILE

from .conftest import explode_on

# a 3 x 3 grid of starts on the double well (four minima, saddles on the axes): several attractors
BASINS = {"name": "tiny_basins", "game": "double_well", "rules": ["simultaneous"],
          "optimizer": {"name": "sgd", "lr": [0.05, 0.2]},
          "init": {"grid": {"gen.x": [-2, 2, 3], "disc.y": [-2, 2, 3]}}, "steps": 60,
          "record_every": 5, "lyapunov": "off", "figures": ["basins", "outcome_frequency"]}


def _self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page


def test_report_writes_one_self_contained_page_with_every_figure(tmp_path, capsys):
    res = run_study(make_study(BASINS), out=tmp_path, progress=False)
    (res.path / "figures").mkdir(exist_ok=True)
    extra = res.path / "figures" / "drawn_by_hand.png"   # any PNG there is the study's figure
    extra.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really an image")
    assert cli.main(["report", str(res.path)]) == 0
    out = capsys.readouterr().out
    assert f"report: {res.path / REPORT_FILE}" in out
    assert "basin fractions" in out and "eq:0" in out          # several attractors: printed

    page = (res.path / REPORT_FILE).read_text(encoding="utf-8")
    _self_contained(page)
    pngs = sorted((res.path / "figures").glob("*.png"))
    assert {p.name for p in pngs} == {"basins.png", "outcome_frequency.png", "drawn_by_hand.png"}
    for png in pngs:
        assert f"figures/{png.name}" in page
        assert f"data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}" in page
    assert page.count("<img ") == len(pngs)
    for heading in ("Outcomes per game and rule", "Per configuration, over seeds",
                    "Basin fractions", "Figures", "Study"):
        assert f"<h2>{heading}</h2>" in page
    assert "Failures" not in page
    assert "name: tiny_basins" in page and "double_well" in page and "eq:0" in page


def test_report_page_lists_the_failures_with_their_tracebacks(tmp_path, monkeypatch, capsys):
    spec = {"name": "tiny", "game": "bilinear", "rules": ["simultaneous", "alternating"],
            "optimizer": {"name": "sgd", "lr": [0.1, 0.2]}, "init": {"dist": "constant", "scale": 1.0},
            "steps": 20, "lyapunov": "off"}
    monkeypatch.setattr(orchestrate, "run_batch", explode_on("alternating", "no {rule} <today>"))
    res = run_study(make_study(spec), out=tmp_path, progress=False)
    assert len(res.failures) == 2
    assert cli.main(["report", str(res.path)]) == 0
    capsys.readouterr()
    page = (res.path / REPORT_FILE).read_text(encoding="utf-8")
    _self_contained(page)
    assert "<h2>Failures</h2>" in page and "Basin fractions" not in page
    assert "2 of 4 runs failed" in page and "ZeroDivisionError" in page
    assert "no alternating &lt;today&gt;" in page and "<today>" not in page   # escaped
    assert page.count("runs and traceback</summary>") == res.failures["batch_id"].nunique()
    assert "Traceback (most recent call last)" in page
    for run_id in res.failures["run_id"]:
        assert run_id in page
    assert "figures/phase_plane.png" in page   # the default figure
