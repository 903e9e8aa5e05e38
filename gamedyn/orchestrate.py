"""Run a study: pack runs into batches, execute them with joblib, write each batch atomically.

A batch whose part files exist is not recomputed, so an interrupted study resumes where it stopped
(``gamedyn run`` again). Results do not depend on the number of workers: each run's trajectory is a
function of its own configuration and seed only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from joblib import Parallel, delayed
from tqdm import tqdm

from .batch import batch_id, run_batch
from .results import Results, ResultsFolder, load
from .study import Study


def run_study(study: Study, out: str | Path = "results", jobs: int = 1, fresh: bool = False,
              progress: bool = True) -> Results:
    """Execute every batch of ``study`` not already on disk under ``out/<name>`` and assemble the
    results; returns them as :class:`Results`."""
    folder = ResultsFolder(out, study.name)
    source = Path(study.source).read_text() if study.source else None
    folder.claim(study.hash, study.spec, source, fresh)
    batches = study.batches()
    ids = [batch_id(b) for b in batches]
    todo = [b for b, i in zip(batches, ids) if not folder.has(i)]
    thresholds = study.thresholds
    threads = 1 if jobs != 1 else None
    bar = tqdm(total=len(study.runs), initial=len(study.runs) - sum(map(len, todo)), unit="run",
               desc=study.name, disable=not progress, file=sys.stderr, mininterval=0.5)
    with bar:
        if todo:
            tasks = (delayed(run_batch)(b, thresholds, threads) for b in todo)
            for result in Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks):
                folder.write_part(result.batch_id, result.runs, result.trajectories)
                bar.update(len(result.runs))
    folder.assemble(ids, [r.run_id for r in study.runs])
    return load(folder.path)
