"""The results folder: atomic part files per batch, assembled tables, and ``gamedyn.load``."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .errors import StudyError

STUDY_FILE = "study.yaml"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ResultsFolder:
    """``<out>/<study name>/``: ``study.yaml``, ``parts/``, ``runs.parquet``, ``trajectories.parquet``,
    ``figures/``. It belongs to one study (by the resolved study's hash): a folder holding another
    study is refused rather than mixed or overwritten, unless ``fresh`` asks to replace it."""

    def __init__(self, root: str | Path, name: str) -> None:
        self.path = Path(root) / name
        self.parts = self.path / "parts"

    def claim(self, study_hash: str, spec: dict[str, Any], source_text: str | None,
              fresh: bool) -> None:
        """Make the folder this study's, refusing one that holds something else."""
        meta = self.path / STUDY_FILE
        if self.path.exists():
            if meta.exists():
                try:
                    old = yaml.safe_load(meta.read_text()) or {}
                except yaml.YAMLError:
                    old = {}
                if old.get("hash") != study_hash and not fresh:
                    raise StudyError("name", (
                        f"{self.path} holds results of a different study named "
                        f"{spec['name']!r} (hash {old.get('hash')} here, {study_hash} now): "
                        f"the study file changed; rerun with --fresh to replace those results, "
                        f"or give the study another name"))
                if old.get("hash") != study_hash:
                    shutil.rmtree(self.path)
            elif any(self.path.iterdir()):
                raise StudyError("name", f"{self.path} exists and is not a gamedyn results folder "
                                         f"(no {STUDY_FILE}); choose another name or --out")
        self.parts.mkdir(parents=True, exist_ok=True)
        doc = {"hash": study_hash, "study": spec, "source": source_text}
        atomic_write(meta, lambda p: p.write_text(yaml.safe_dump(doc, sort_keys=False)))

    def part(self, batch_id: str, table: str) -> Path:
        return self.parts / f"{batch_id}.{table}.parquet"

    def has(self, batch_id: str) -> bool:
        return self.part(batch_id, "runs").exists() and self.part(batch_id, "trajectories").exists()

    def write_part(self, batch_id: str, runs: pd.DataFrame, trajectories: pd.DataFrame) -> None:
        """Trajectories first, runs last: a batch counts as done only when its runs part exists."""
        atomic_write(self.part(batch_id, "trajectories"), lambda p: trajectories.to_parquet(p))
        atomic_write(self.part(batch_id, "runs"), lambda p: runs.to_parquet(p))

    def assemble(self, batch_ids: list[str], order: list[str]) -> None:
        """``runs.parquet`` and ``trajectories.parquet`` from the parts, runs in study order."""
        runs = pd.concat([pd.read_parquet(self.part(b, "runs")) for b in batch_ids],
                         ignore_index=True)
        rank = {rid: i for i, rid in enumerate(order)}
        runs = runs.iloc[runs["run_id"].map(rank).argsort()].reset_index(drop=True)
        trajs = [pd.read_parquet(self.part(b, "trajectories")) for b in batch_ids]
        for t in trajs:
            t["run_id"] = t["run_id"].astype(str)
        traj = pd.concat(trajs, ignore_index=True)
        traj["run_id"] = pd.Categorical(traj["run_id"], categories=runs["run_id"])
        traj["variable"] = traj["variable"].astype("category")
        traj = traj.sort_values(["run_id", "step"], kind="stable").reset_index(drop=True)
        atomic_write(self.path / "runs.parquet", lambda p: runs.to_parquet(p))
        atomic_write(self.path / "trajectories.parquet", lambda p: traj.to_parquet(p))


@dataclasses.dataclass
class Results:
    """A study's results: ``runs`` (one row per run), ``trajectories`` (long format:
    run_id, step, variable, value), the resolved ``study`` spec, and the folder ``path``."""

    path: Path
    study: dict[str, Any]
    runs: pd.DataFrame
    _trajectories: pd.DataFrame | None = dataclasses.field(default=None, repr=False)

    @property
    def trajectories(self) -> pd.DataFrame:
        if self._trajectories is None:
            self._trajectories = pd.read_parquet(self.path / "trajectories.parquet")
        return self._trajectories

    def wide(self, variables: list[str] | None = None) -> pd.DataFrame:
        """Trajectories pivoted to one row per (run, step), one column per variable, joined with
        the runs' config columns — handy for phase-plane plots."""
        t = self.trajectories
        if variables is not None:
            t = t[t["variable"].isin(variables)]
        w = t.pivot_table(index=["run_id", "step"], columns="variable", values="value",
                          observed=True).reset_index()
        w.columns.name = None
        w["run_id"] = w["run_id"].astype(str)
        return w.merge(self.runs, on="run_id", how="left")


def load(path: str | Path) -> Results:
    """Load ``results/<study>``: ``.runs`` and ``.trajectories`` DataFrames and the ``.study`` spec."""
    path = Path(path)
    meta = path / STUDY_FILE
    if not meta.exists():
        raise StudyError("", f"{path} is not a gamedyn results folder (no {STUDY_FILE})")
    if not (path / "runs.parquet").exists():
        raise StudyError("", f"{path} holds an unfinished study (no runs.parquet yet): "
                             f"run it again with `gamedyn run` to finish it")
    doc = yaml.safe_load(meta.read_text())
    return Results(path, doc["study"], pd.read_parquet(path / "runs.parquet"))
