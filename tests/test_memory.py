"""Bounded memory: trajectories streamed into ``trajectories.parquet`` part by part, batch sizes
capped by a memory budget, subsets read with filters."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import gamedyn
from gamedyn import StudyError, make_study, memory, run_study, streaming
from gamedyn.batch import batch_id
from gamedyn.results import ResultsFolder

from .conftest import ROOT

# lr before name: the optimizer kinds (separate batches) interleave in study order
SPEC = {"name": "mem", "game": "bilinear", "rules": ["simultaneous", "alternating"],
        "optimizer": {"lr": [0.05, 0.1], "name": ["sgd", "adam"]}, "seeds": 3, "steps": 30,
        "record_every": 3, "max_batch": 2,
        "init": [{"dist": "normal", "scale": 1.0}, {"gen": {"x": float("nan")}}]}  # NaN: no rows


def concat_assembly(folder: ResultsFolder, batch_ids: list[str], order: list[str]) -> pd.DataFrame:
    """The trajectories table as the in-memory assembly built it before streaming."""
    runs = pd.concat([pd.read_parquet(folder.part(b, "runs")) for b in batch_ids], ignore_index=True)
    rank = {rid: i for i, rid in enumerate(order)}
    runs = runs.iloc[runs["run_id"].map(rank).argsort()].reset_index(drop=True)
    trajs = [part_rows(folder.part(b, "trajectories")) for b in batch_ids]
    for t in trajs:
        t["run_id"] = t["run_id"].astype(str)
    traj = pd.concat(trajs, ignore_index=True)
    traj["run_id"] = pd.Categorical(traj["run_id"], categories=runs["run_id"])
    traj["variable"] = traj["variable"].astype("category")
    return traj.sort_values(["run_id", "step"], kind="stable").reset_index(drop=True)


def part_rows(path) -> pd.DataFrame:
    """A trajectories part as a long table: a wide one (a row per run and record, a column per
    variable, named in its metadata) unfolded a row per variable, by hand."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(streaming.PART_KEY.encode())
    if raw is None:
        return table.to_pandas()
    variables, wide = json.loads(raw), table.to_pandas()
    K = len(variables)
    return pd.DataFrame({
        "run_id": np.repeat(wide["run_id"].astype(str).to_numpy(), K),
        "step": np.repeat(wide["step"].to_numpy(), K),
        "variable": pd.Categorical(np.tile(variables, len(wide)), categories=variables),
        "value": wide[[f"v{k}" for k in range(K)]].to_numpy().reshape(-1)})


def roundtrip(df: pd.DataFrame, path) -> pd.DataFrame:
    df.to_parquet(path)
    return pd.read_parquet(path)


@pytest.mark.parametrize("games", [["bilinear"], ["bilinear", {"name": "dirac", "loss": "gan"}]],
                         ids=["same-variables", "different-variables"])
def test_streamed_table_equals_the_in_memory_concat(tmp_path, monkeypatch, games):
    # tiny row groups: runs span part batches and output row groups
    monkeypatch.setattr(streaming, "PART_ROWS", 50)
    monkeypatch.setattr(streaming, "ROW_GROUP_ROWS", 70)
    init = SPEC["init"] if games == ["bilinear"] else SPEC["init"][:1]
    study = make_study({**SPEC, "game": games, "init": init})
    batches = study.batches()
    part_order = [int(np.argmax([r in b for b in batches])) for r in study.runs]
    assert part_order != sorted(part_order), "the study should interleave batches"
    res = run_study(study, out=tmp_path, progress=False)
    file = pd.read_parquet(res.path / "trajectories.parquet")
    expected = concat_assembly(ResultsFolder(tmp_path, "mem"), [batch_id(b) for b in batches],
                               [r.run_id for r in study.runs])
    pd.testing.assert_frame_equal(file, roundtrip(expected, tmp_path / "old.parquet"))
    assert list(file["run_id"].cat.categories) == list(res.runs["run_id"])
    if games == ["bilinear"]:
        assert (file.groupby("run_id", observed=False).size() == 0).any()  # NaN starts: no rows
    assert len(pd.api.types.pandas_dtype(file["variable"].dtype).categories) == (
        7 if games == ["bilinear"] else 9)


def test_subsets_are_read_with_filters(tmp_path):
    res = run_study(make_study({**SPEC, "init": SPEC["init"][:1]}), out=tmp_path, progress=False)
    full = res.trajectories
    fresh = gamedyn.load(res.path)
    ids = list(res.runs["run_id"][[1, 5, 20]])
    want = {"distance", "gen.x[0]"}
    sub = fresh.trajectories_for(run_ids=ids, variables=want, steps=range(0, 31, 6))
    expected = full[full["run_id"].isin(ids) & full["variable"].isin(want)
                    & full["step"].isin(range(0, 31, 6))].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub, expected)
    assert fresh._trajectories is None  # the whole table was not loaded
    pd.testing.assert_frame_equal(res.trajectories_for(ids, want, range(0, 31, 6)), expected)
    pd.testing.assert_frame_equal(fresh.wide(["distance"]), res.wide(["distance"]))
    none = fresh.trajectories_for(run_ids=[])
    assert none.empty and list(none.dtypes) == list(full.dtypes)


def test_a_small_budget_makes_smaller_batches_with_the_same_results(tmp_path):
    spec = {"name": "budget", "game": "bilinear", "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": [0.05, 0.1]}, "seeds": 6, "steps": 400,
            "record_every": 1}
    study = make_study(spec)
    config = study.runs[0].config
    assert memory.records(config) == 401 and memory.variables(config) == 7
    per_run = memory.run_bytes(config)
    assert per_run == 401 * 7 * memory.BYTES_PER_VALUE + memory.BYTES_PER_RUN
    fits = 2 ** 20 // per_run
    assert [len(b) for b in study.batches()] == [12]
    small = study.batches("1MiB")
    assert 1 <= fits < 12 and [len(b) for b in small] == [fits] * (12 // fits) + [12 % fits] * (12 % fits > 0)
    assert small == study.batches(1)  # deterministic
    tight = make_study({**spec, "memory_budget": 1})
    assert tight.hash == study.hash  # an execution setting, like max_batch
    assert [[r.run_id for r in b] for b in tight.batches()] == [[r.run_id for r in b] for b in small]

    one = run_study(study, out=tmp_path / "one", progress=False)
    many = run_study(study, out=tmp_path / "many", progress=False, memory_budget="1MiB")
    assert set(one.runs["batch_size"]) == {12} and max(many.runs["batch_size"]) == fits
    assert many.info["batches"] == len(small)
    cols = ["run_id", "dynamics", "final_distance", "growth_rate", "period"]
    pd.testing.assert_frame_equal(one.runs[cols], many.runs[cols])
    a, b = one.trajectories, many.trajectories
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("value", [0, -3, True, 1.5, None, "lots", "2GB", "0.5MiB", "", [512]])
def test_bad_memory_budget_is_refused_naming_the_key(value):
    spec = {**SPEC, "memory_budget": value}
    with pytest.raises(StudyError) as e:
        make_study(spec)
    assert e.value.key == "memory_budget" and repr(value) in str(e.value) and "GiB" in str(e.value)


@pytest.mark.parametrize("value, mib", [(512, 512), ("512", 512), ("512MiB", 512), ("2GiB", 2048),
                                        ("1.5 GiB", 1536), ("4096KiB", 4), ("1TiB", 2 ** 20)])
def test_memory_budget_units(value, mib):
    assert memory.parse_budget(value) == mib
    assert make_study({**SPEC, "memory_budget": value}).spec["memory_budget"] == mib


def test_cli_refuses_a_bad_memory_budget_in_one_line(tmp_path, cli):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "init": SPEC["init"][:1]}))
    out = cli("run", path, "--out", tmp_path / "res", "--memory-budget", "a lot", "--quiet")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--memory-budget" in lines[0] and "'a lot'" in lines[0]
    assert not (tmp_path / "res").exists()


ASSEMBLE = """
import sys
from gamedyn import streaming
from gamedyn.results import ResultsFolder

def status(field):  # kB
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

streaming.ROW_GROUP_ROWS = 1 << 16
folder = ResultsFolder(sys.argv[1], "big")
ids, order = sys.argv[2].split(","), sys.argv[3].split(",")
folder.assemble(ids[:2], order[:200])  # warm up: lazy imports, pyarrow's memory pool
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident size
before = status("VmRSS:")
folder.assemble(ids, order)
print((status("VmHWM:") - before) / 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_assembly_memory_does_not_grow_with_the_study(tmp_path):
    """Synthetic parts of 8M rows in all (160 MiB as a DataFrame, the least an in-memory assembly
    holds): streaming them into one table adds a small fraction of that to the peak resident
    memory (about 30 MiB, measured: the same for 16 or 96 parts). Rows interleave between two parts
    at a time, as batches of two optimizer kinds do."""
    folder = ResultsFolder(tmp_path, "big")
    folder.parts.mkdir(parents=True)
    n_parts, runs_per_part, T, V = 20, 100, 500, 8
    variables = [f"v{i}" for i in range(V)]
    rng = np.random.default_rng(0)
    ids, order = [], [f"run{i:05d}" for i in range(n_parts * runs_per_part)]
    for p in range(n_parts):  # parts 2k and 2k+1 alternate run by run
        mine = order[(p // 2) * 2 * runs_per_part + p % 2::2][:runs_per_part]
        traj = pd.DataFrame({
            "run_id": pd.Categorical.from_codes(np.repeat(np.arange(runs_per_part), T * V), mine),
            "step": np.tile(np.repeat(np.arange(T, dtype=np.int64), V), runs_per_part),
            "variable": pd.Categorical.from_codes(np.tile(np.arange(V), runs_per_part * T), variables),
            "value": rng.standard_normal(runs_per_part * T * V)})
        ids.append(f"part{p:02d}")
        folder.write_part(ids[-1], pd.DataFrame({"run_id": mine}), traj)
    rows = n_parts * runs_per_part * T * V
    table_mib = rows * 21 / 2 ** 20  # run_id int16, step int64, variable int8, value float64
    out = subprocess.run([sys.executable, "-c", ASSEMBLE, str(tmp_path), ",".join(ids), ",".join(order)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    added = float(out.stdout.split()[-1])
    assert added < 0.35 * table_mib, (added, table_mib)
    t = pd.read_parquet(tmp_path / "big" / "trajectories.parquet", columns=["run_id", "step"])
    assert len(t) == rows and list(t["run_id"].cat.categories) == order
    assert (np.diff(t["run_id"].cat.codes.to_numpy().astype(int)) >= 0).all()


def test_a_few_runs_are_read_from_their_row_groups_only(tmp_path, monkeypatch):
    """trajectories.parquet lists each row group's runs (streaming.RANGES_KEY): a subset of runs is
    read from the row groups that hold them, with the same rows as filtering the whole table, runs
    that span two row groups included."""
    monkeypatch.setattr(streaming, "ROW_GROUP_ROWS", 70)   # many row groups, runs split across them
    res = run_study(make_study({**SPEC, "init": SPEC["init"][:1]}), out=tmp_path, progress=False)
    full = res.trajectories
    fresh = gamedyn.load(res.path)
    table = pq.ParquetFile(res.path / "trajectories.parquet")
    n_groups = table.num_row_groups
    for picks in ([0], [1, 5, 20], [len(res.runs) - 1], list(range(0, len(res.runs), 7))):
        ids = list(res.runs["run_id"].iloc[picks])
        groups = streaming.row_groups_of(table, picks)
        assert groups is not None and 0 < len(groups) < n_groups
        expected = full[full["run_id"].isin(ids)].reset_index(drop=True)
        pd.testing.assert_frame_equal(fresh.trajectories_for(run_ids=ids), expected)
        assert len(expected) > 0
    assert streaming.row_groups_of(table, []) == []


@pytest.mark.parametrize("disorder", ["steps go back", "runs out of order"])
def test_a_part_whose_rows_are_out_of_order_is_refused(tmp_path, monkeypatch, disorder):
    """A part whose rows are not grouped by run in study order with steps ascending (damaged, or
    edited by hand) is refused naming it, also where the disorder straddles two of its record
    batches; a part in order is assembled."""
    monkeypatch.setattr(streaming, "PART_ROWS", 4)
    runs, steps = ["a", "b"], [0, 1, 2, 3]
    rows = pd.DataFrame({"run_id": pd.Categorical(np.repeat(runs, 4), categories=runs),
                         "step": np.tile(steps, 2), "variable": pd.Categorical(["x"] * 8),
                         "value": np.arange(8.0)})
    good = tmp_path / "good.parquet"
    rows.to_parquet(good, row_group_size=4)
    streaming.write_trajectories(tmp_path / "ok.parquet", [good], runs, np.zeros(2, dtype=int))
    assert pd.read_parquet(tmp_path / "ok.parquet")["value"].tolist() == list(np.arange(8.0))
    if disorder == "steps go back":
        bad_rows = rows.assign(step=[0, 1, 2, 3, 0, 1, 3, 2])
    else:  # run b's rows first: its last row in one batch, a's first row in the next
        bad_rows = rows.iloc[[4, 5, 6, 7, 0, 1, 2, 3]].reset_index(drop=True)
    bad = tmp_path / "bad.parquet"
    bad_rows.to_parquet(bad, row_group_size=4)
    with pytest.raises(streaming.DamagedPart, match="bad.parquet.*not grouped by run"):
        streaming.write_trajectories(tmp_path / "t.parquet", [bad], runs, np.zeros(2, dtype=int))


def test_parts_written_wide_or_long_assemble_to_the_same_table(tmp_path, monkeypatch):
    """A batch's part is written wide (a row per run and record); parts written long (a row per
    variable: those of earlier gamedyn versions, which a resumed study still holds) assemble to the
    same table, alone or mixed with wide ones, runs without rows included."""
    from gamedyn.batch import run_batch

    monkeypatch.setattr(streaming, "PART_ROWS", 50)  # runs span record batches
    study = make_study(SPEC)
    results = [run_batch(b, study.thresholds) for b in study.batches()]
    order = [r.run_id for r in study.runs]
    tables = {}
    for how in ("wide", "long", "mixed"):
        folder = ResultsFolder(tmp_path / how, "mem")
        folder.parts.mkdir(parents=True)
        for i, res in enumerate(results):
            long = how == "long" or (how == "mixed" and i % 2)
            folder.write_part(res.batch_id, res.runs, res.trajectories if long else res.records)
        folder.assemble([res.batch_id for res in results], order)
        tables[how] = pd.read_parquet(folder.path / "trajectories.parquet")
    assert (tables["wide"].groupby("run_id", observed=False).size() == 0).any()
    pd.testing.assert_frame_equal(tables["wide"], tables["long"])
    pd.testing.assert_frame_equal(tables["wide"], tables["mixed"])
