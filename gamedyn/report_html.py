"""``report.html``: one self-contained page of a study's results, written by ``gamedyn report``.

The page holds the study file (as written, and the resolved spec), the outcome counts, the seed
aggregates (:meth:`gamedyn.results.Results.aggregate`), the basin fractions when the runs end on
several attractors (:func:`gamedyn.report.basin_fractions`), every figure under ``figures/``
(embedded as base64 PNG data URIs, so the file can be mailed or archived alone: no external asset,
script or font), and the failures with their tracebacks when some batches raised. It is built from
what is on disk and the tables at hand; it draws nothing.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd
import yaml

from .results import STUDY_FILE, Results, atomic_write, read_meta

#: The page's file name in the results folder.
REPORT_FILE = "report.html"

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1280px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
.meta { color: #555; margin-top: 0; }
.note { background: #fff6e0; border-left: 4px solid #e0a800; padding: .4em .8em; }
.bad { background: #fdecec; border-left-color: #c62828; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: .5em 0; }
th, td { padding: .25em .7em; text-align: left; vertical-align: bottom; }
td { white-space: nowrap; font-variant-numeric: tabular-nums; }
th { background: #f2f2f2; border-bottom: 1px solid #bbb; min-width: 3em; }
tr:nth-child(even) td { background: #fafafa; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: 12.5px; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; font-family: monospace; }
details summary { cursor: pointer; margin: .4em 0; }
"""


def _table(df: pd.DataFrame) -> str:
    return ('<div class="scroll">' + df.to_html(index=False, border=0, na_rep="-", escape=True)
            + "</div>")


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}\n"


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def _figure(png: Path, folder: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    name = html.escape(str(png.relative_to(folder)))
    return (f'<figure id="{html.escape(png.stem)}"><img src="data:image/png;base64,{data}" '
            f'alt="{name}"><figcaption>{name}</figcaption></figure>')


def _study(folder: Path, spec: dict) -> str:
    meta = folder / STUDY_FILE
    doc = read_meta(meta) if meta.exists() else {}
    resolved = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
    source = (doc or {}).get("source")
    if not source:
        return _pre(resolved)
    return (_pre(source) + "<details><summary>the resolved study (every default filled in)"
            "</summary>" + _pre(resolved) + "</details>")


def _failures(results: Results) -> str:
    """The failures: the one-line note, a row per failed batch, and per batch its runs and the
    traceback of its first run (a batch's runs fail together)."""
    from .results import failures_note

    f = results.failures
    body = f'<p class="note bad">{html.escape(failures_note(results.path, f, len(results.runs)))}</p>'
    batches = f.groupby("batch_id", sort=False)
    table = batches.agg(game_label=("game_label", "first"), rule_label=("rule_label", "first"),
                        runs=("run_id", "size"), error=("error", "first"),
                        message=("message", "first")).reset_index()
    body += _table(table)
    for batch, rows in batches:
        first = rows.iloc[0]
        body += (f"<details><summary>batch {html.escape(str(batch))}: runs and traceback</summary>"
                 f"<p>runs: {html.escape(', '.join(map(str, rows['run_id'])))}</p>"
                 + _pre(str(first["traceback"])) + "</details>")
    return body


def write_html(results: Results, aggregate: pd.DataFrame | None = None) -> Path:
    """Write ``<results>/report.html`` (see the module docstring) and return its path.
    ``aggregate``: the seed aggregates when the caller has them already (else computed here)."""
    from .aggregate import compact
    from .report import basin_fractions, expectation_note, summary, unmet

    folder = results.path
    name = str(results.study.get("name", folder.name))
    table = results.aggregate() if aggregate is None else aggregate
    n_failed = len(results.failures)
    figures = sorted((folder / "figures").glob("*.png"))

    parts = [f"<h1>{html.escape(name)}</h1>",
             f'<p class="meta">{len(results.runs) + n_failed} runs'
             + (f": {len(results.runs)} finished, {n_failed} failed" if n_failed else "")
             + f" &middot; {html.escape(str(folder))} &middot; "
             + f"gamedyn.load('{html.escape(str(folder))}')</p>"]
    note = expectation_note(results)
    if note:
        bad = "" if unmet(results).empty else " bad"
        parts.append(f'<p class="note{bad}">{html.escape(note)}</p>')
    counts = summary(results).reset_index().rename_axis(columns=None)
    parts.append(_section("Outcomes per game and rule", _table(counts)))
    parts.append(_section("Per configuration, over seeds",
                          "<p>Outcome frequency [Wilson 95% interval]; median (IQR).</p>"
                          + _table(compact(table))))
    basins = basin_fractions(results)
    if basins is not None:
        parts.append(_section("Basin fractions",
                              "<p>The share of each configuration's starts that end on each "
                              "attractor.</p>" + _table(basins)))
    parts.append(_section("Figures", "\n".join(_figure(p, folder) for p in figures)
                          or "<p>No figures: <code>figures/</code> holds no PNG.</p>"))
    if n_failed:
        parts.append(_section("Failures", _failures(results)))
    parts.append(_section("Study", _study(folder, results.study)))

    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(name)}: gamedyn report</title>\n<style>{_CSS}</style>\n"
            "</head>\n<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n")
    out = folder / REPORT_FILE
    atomic_write(out, lambda p: p.write_text(page, encoding="utf-8"))
    return out
