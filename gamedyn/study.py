"""Study files: validation at the boundary, expansion into runs, and packing into batches.

A study file (YAML) names a game, update rules, optimizers, initial points, seeds and a step
budget. Any list given for a game, rule or optimizer parameter is a grid axis; a list of games, rules
or initialisations is a list of alternatives; the study is the product of all axes × seeds. Every
error names the file, the key path, the bad value and what is accepted (:class:`StudyError`).

Keys::

    name: quickstart                    # required; results go to <out>/<name>
    description: free text              # optional
    game: dirac | {name: dirac, loss: [gan, wgan]} | [bilinear, {name: dirac}]      # required
    rules: [simultaneous, {name: alternating, disc_steps: [1, 5]}]                  # required
    optimizer: {name: sgd, lr: [0.05, 0.1]}        # both players; or per player:
    optimizer: {name: sgd, lr: 0.1, disc: {lr: 0.2}}  # shared keys + per-player overrides
    init: {dist: normal, scale: 1.0}    # or dist: uniform | constant; explicit values per
    init: {gen: {theta: 1.0}, disc: {psi: 1.0}}      # player parameter; a list = alternatives
    init: {grid: {gen.theta: [-2, 2, 101], disc.psi: [-2, 2, 101]}}   # a start per grid point, or
    init: {sobol: {gen.theta: [-2, 2], disc.psi: [-2, 2], n: 1024}}   # per Sobol point (basins)
    seeds: 3 | [0, 1, 2]                # number of seeds (0..n-1) or the seeds themselves
    steps: 500                          # required: steps of the rule (rounds for alternating)
    record_every: 10                    # record every k steps (and step 0)
    diagnose: {growth_factor: 1.25}     # thresholds of gamedyn.diagnose
    regularizer: [none, {name: r1, gamma: [0.1, 1.0]}]   # one per run; a list = alternatives
    figures: [phase_plane]              # figures that `gamedyn run`/`report` draw
    expect: [{where: {rule: extragradient}, dynamics: converged}]   # checked after the run
    plugins: [my_rules.py]              # user modules (or module names) registering components
    dtype: float64                      # or float32
    max_batch: 4096                     # most runs stepped together in one batch
    memory_budget: 2048                 # MiB one batch may use (or '512MiB', '2GiB'); fewer runs
                                        # per batch where max_batch would not fit (gamedyn.memory)
    lyapunov: {every: 5, steps: 20}     # or off; Lyapunov exponents of each run's end (default: on
                                        # for games of <= 100 parameters per run; gamedyn.lyapunov)
    record: [params, distance]          # variables kept in the trajectories table (default: all):
                                        # params, losses, grad_norms, distance, metrics, or names
    trajectory_dtype: float32           # the trajectories table's values (default: float64)
    spectra: {k: 6, update_map: true}   # or on / off (default): each run's final spectra as
                                        # runs columns (gamedyn.spectra.run_columns)
    parts:                              # several setups in one study: each part is the study with
      - {game: tandem, steps: 500}      # some of game, rules, regularizer, optimizer, init, seeds,
      - {game: ipd, steps: 300}         # steps, record_every in place of its own

Players are named as the game names them (:mod:`gamedyn.players`): ``gen``/``disc`` above for GAN
games, the game's own names otherwise (``optimizer: {p1: {lr: 0.2}}``, ``init: {p1: {x: 1.0}}``,
``grid: {p1.x: ...}`` on ``tandem``); any other name is refused with the accepted ones.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import diagnose, expect, lyapunov, memory, regularizers, spectra
from .component import Component, Registry
from .errors import StudyError, unknown
from .games import GAMES
from .init import LAYOUTS, start_points
from .optim import OPTIMIZERS
from .players import accepted as accepted_players
from .players import names as player_names
from .plugins import portable, study_dir
from .plugins import resolve as resolve_plugins
from .regularizers import REGULARIZERS
from .rules import RULES

#: The players of GAN games, as study files name them (other games' names: :mod:`gamedyn.players`).
PLAYERS = ("gen", "disc")
INIT_DISTS = ("normal", "uniform", "constant")
KEYS = {
    "name": "the study's name (letters, digits, - and _)",
    "description": "free text",
    "game": "a game name, a mapping with `name` and its parameters, or a list of these",
    "rules": "a list of rule names or mappings with `name` and parameters",
    "optimizer": "a mapping: `name` and parameters for both players, per-player overrides under "
                 "the players' names (`gen:`/`disc:` for GAN games)",
    "init": "a mapping: `dist`, `scale`, explicit values under the players' names (`gen:`/`disc:` "
            "for GAN games), and/or `grid:`/`sobol:` starts over chosen coordinates; or a list of "
            "these",
    "seeds": "a number of seeds or a list of integer seeds",
    "steps": "an integer >= 1",
    "record_every": "an integer >= 1",
    "regularizer": "a regularizer name or a mapping with `name` and parameters, or a list of these",
    "plugins": "a list of module names or Python files (relative to the study file) to import",
    "figures": "a list of figure names drawn after the run (default: [phase_plane])",
    "expect": "a list of {where: {column: value}, dynamics: label(s)} the study should meet",
    "diagnose": "a mapping of thresholds: " + ", ".join(diagnose.DEFAULTS),
    "dtype": "float64 or float32",
    "max_batch": "an integer >= 1",
    "memory_budget": memory.ACCEPTED,
    "lyapunov": lyapunov.ACCEPTED,
    "spectra": spectra.ACCEPTED,
    "trajectory_dtype": "float64 (the default) or float32: the trajectories table's values",
    "record": "a list of variable groups (params, losses, grad_norms, distance, metrics) and "
              "recorded variables' names, kept in the trajectories table (default: all)",
    "parts": "a list of mappings, each of some of the keys game, rules, regularizer, optimizer, "
             "init, seeds, steps, record_every: one study of several setups, each part the study's "
             "keys with its own in their place",
}
REQUIRED = ("name", "game", "rules", "optimizer", "steps")
#: The keys a part of a study (``parts:``) may set; the others hold for the whole study.
PART_KEYS = ("game", "rules", "regularizer", "optimizer", "init", "seeds", "steps", "record_every")
#: The runs table's configuration columns, as :func:`make_study` builds them: these names, and every
#: column named by a prefix below (a component's parameters, the optimizers', the initialisation's).
CONFIG_COLUMNS = ("study", "game", "rule", "regularizer", "seed", "game_label", "rule_label",
                  "regularizer_label", "steps", "record_every", "dtype")
CONFIG_PREFIXES = ("game.", "rule.", "regularizer.", "optimizer.", "init.")


def config_columns(columns: list[str]) -> list[str]:
    """Those of ``columns`` (a runs table's) that hold a run's configuration, in their order; the
    rest are what the run produced (labels, evidence, costs, timings)."""
    return [c for c in columns if c in CONFIG_COLUMNS or c.startswith(CONFIG_PREFIXES)]


@dataclasses.dataclass(frozen=True)
class Run:
    """One run: a resolved configuration, its stable id, and its columns for ``runs.parquet``."""

    run_id: str
    config: dict[str, Any]
    columns: dict[str, Any]
    plugins: tuple[str, ...] = ()


@dataclasses.dataclass
class Study:
    """A validated study: the spec as given (``spec``) and the runs it expands to."""

    name: str
    spec: dict[str, Any]
    source: str | None
    runs: list[Run]
    #: The files its games name (a network module, a data file), as written → content digest.
    files: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def thresholds(self) -> dict[str, float]:
        return diagnose.validate_thresholds(self.spec.get("diagnose", {}))

    @property
    def hash(self) -> str:
        """Identity of the study's resolved content: its runs and thresholds."""
        return _hash({"runs": [r.run_id for r in self.runs], "diagnose": self.thresholds})

    def batches(self, memory_budget: int | str | None = None) -> list[list[Run]]:
        """Runs that share structure (game, rule, optimizer kinds, budget), in chunks of
        ``max_batch`` runs or fewer, as many as fit ``memory_budget`` MiB (the study's, unless given;
        see :mod:`gamedyn.memory`). Deterministic for a given study and budget; neither ``max_batch``
        nor the budget is part of the study's hash, and a run's results do not depend on its batch."""
        budget = memory.parse_budget(
            self.spec.get("memory_budget", memory.DEFAULT_BUDGET) if memory_budget is None
            else memory_budget, "memory_budget" if memory_budget is None else "--memory-budget")
        groups: dict[str, list[Run]] = {}
        for run in self.runs:
            groups.setdefault(batch_key(run.config), []).append(run)
        max_batch = self.spec.get("max_batch", 4096)
        out = []
        for g in groups.values():
            size = memory.batch_size(g[0].config, max_batch, budget)
            out += [g[i:i + size] for i in range(0, len(g), size)]
        return out


def load_study(path: str | Path) -> Study:
    """Read, validate and expand a study file; every problem is a :class:`StudyError` naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise StudyError("", f"cannot read the study file: {e.strerror}", str(path)) from None
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StudyError("", f"not valid YAML{line}: {getattr(e, 'problem', e)}", str(path)) from None
    try:
        return make_study(spec, source=str(path))
    except StudyError as e:
        raise e.within(source=str(path)) from None


def make_study(spec: Any, source: str | None = None) -> Study:
    """Validate a study given as a mapping (what a YAML file parses to) and expand it."""
    if not isinstance(spec, dict):
        raise StudyError("", f"expected a mapping of keys ({', '.join(KEYS)}), got {spec!r}")
    for key in spec:
        if key not in KEYS:
            raise unknown(str(key), "key", key, KEYS)
    parts = _parts(spec)
    for key in REQUIRED:
        for part, where in parts:
            if key not in part:
                raise StudyError(key, f"missing required key{where and f' (in {where})'}: "
                                      f"expected {KEYS[key]}")
    name = spec["name"]
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name) \
            or name.startswith("."):
        raise StudyError("name", f"{name!r} is not accepted: expected {KEYS['name']}")
    max_batch = _int(spec, "max_batch", 4096)
    memory_budget = memory.parse_budget(spec.get("memory_budget", memory.DEFAULT_BUDGET))
    dtype = _float_type(spec, "dtype")
    diagnose.validate_thresholds(spec.get("diagnose", {}))
    expect.validate(spec.get("expect", []))
    # keys that are part of a run's config (and id) only where the study gives them
    given: dict[str, Any] = {}
    if "lyapunov" in spec:
        given["lyapunov"] = lyapunov.validate(spec["lyapunov"])
    if "spectra" in spec and (setting := spectra.validate(spec["spectra"])) is not None:
        given["spectra"] = setting   # off: nothing in the runs' configs (ids unchanged)
    if "record" in spec:
        record = spec["record"]
        if not (isinstance(record, list) and record and all(isinstance(v, str) for v in record)):
            raise StudyError("record", f"{record!r} is not accepted: expected {KEYS['record']}")
        given["record"] = list(dict.fromkeys(record))
    if "trajectory_dtype" in spec:
        given["trajectory_dtype"] = _float_type(spec, "trajectory_dtype")

    plugins = tuple(resolve_plugins(spec["plugins"], Path(source).parent if source else None)
                    if "plugins" in spec else ())
    figures = spec.get("figures", ["phase_plane"])
    if not isinstance(figures, list):
        raise StudyError("figures", f"{figures!r} is not accepted: expected {KEYS['figures']}")
    from .figures import FIGURES

    for i, fig in enumerate(figures):
        FIGURES.get(fig, f"figures[{i}]")
    points, named, resolved_parts = [], {}, []
    for i, (part, where) in enumerate(parts):
        try:
            found, part_named, seeds, record_every = _part_runs(part, name, source, dtype, given)
        except StudyError as e:
            if not where:
                raise
            if e.key.split(".")[0].split("[")[0] in spec["parts"][i]:  # the part's own key
                raise e.within(prefix=where) from None
            raise StudyError(e.key, f"{e.message} (in {where})") from None
        points += found
        named.update(part_named)
        resolved_parts.append({**part, "seeds": seeds, "record_every": record_every})
    plugins += tuple(dict.fromkeys(  # a game's own module files travel as plugins do
        f for config, _ in points for f in GAMES.get(config["game"]["name"]).plugin_files(
            config["game"]) if f not in plugins))
    uniform = uniform_columns([portable(columns, named)[0] for _, columns in points])
    # ids (and the study's hash) see the files a game names as written, relative to the study file,
    # and their contents: never where the checkout lies (portable, resumable from another clone)
    runs = [Run(_run_id(config, named), config, columns, plugins)
            for (config, _), columns in zip(points, uniform)]
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise StudyError("", "the study lists the same run twice (duplicate alternatives or seeds)")
    if "parts" in spec:
        resolved = {**spec, "parts": [{k: v for k, v in r.items() if k in PART_KEYS}
                                      for r in resolved_parts]}
    else:
        resolved = {**spec, "seeds": resolved_parts[0]["seeds"],
                    "record_every": resolved_parts[0]["record_every"]}
    resolved.update(dtype=dtype, max_batch=max_batch, memory_budget=memory_budget)
    return Study(name, resolved, source, runs, dict(sorted(named.values())))


def _parts(spec: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """The study's parts: (the study's keys with the part's in their place, where it is given),
    or the study itself (where "") when it has no ``parts:``."""
    if "parts" not in spec:
        return [(spec, "")]
    given = spec["parts"]
    if not isinstance(given, list) or not given:
        raise StudyError("parts", f"{given!r} is not accepted: expected {KEYS['parts']}")
    out = []
    for i, part in enumerate(given):
        if not isinstance(part, dict):
            raise StudyError(f"parts[{i}]", f"{part!r} is not accepted: expected a mapping of "
                                            f"some of {', '.join(PART_KEYS)}")
        for key in part:
            if key not in PART_KEYS:
                raise StudyError(f"parts[{i}].{key}", f"not a key a part may set; accepted: "
                                                      f"{', '.join(PART_KEYS)}")
        out.append(({**{k: v for k, v in spec.items() if k != "parts"}, **part}, f"parts[{i}]"))
    return out


def _part_runs(spec: dict[str, Any], name: str, source: str | None, dtype: str,
               given: dict[str, Any]) -> tuple[list, dict, list[int], int]:
    """The runs of one part of a study (``spec``: the study's keys, with the part's): each run's
    (config, columns), the files its games name, and its resolved seeds and record_every."""
    steps = _int(spec, "steps", None)
    record_every = _int(spec, "record_every", 10)
    seeds = _seeds(spec.get("seeds", 1))
    with study_dir(Path(source).parent if source else None) as named:  # files a game names: relative
        games = _alternatives(GAMES, spec["game"], "game", allow_single=True)
    regularizers = _alternatives(REGULARIZERS, spec.get("regularizer", "none"), "regularizer",
                                 allow_single=True)
    rule_keys: dict[int, str] = {}
    rules = _alternatives(RULES, spec["rules"], "rules", allow_single=False, where_of=rule_keys)
    # the study's player entries are each game's names (gen and disc for every GAN game)
    rosters = {id(gcfg): player_names(built_game(gcfg).players) for gcfg, _ in games}
    optimizers, inits = {}, {}
    for gcfg, _ in games:
        roster = rosters[id(gcfg)]
        if roster not in optimizers:
            try:
                optimizers[roster] = _optimizer_grid(spec["optimizer"], roster)
                inits[roster] = _init_alternatives(spec.get("init", {"dist": "normal", "scale": 1.0}),
                                                   roster)
            except StudyError as e:
                if len(games) > 1:   # say which game's players the entry missed
                    raise StudyError(e.key, f"{e.message} (game {_label(GAMES, gcfg)!r})") from None
                raise

    checked = set()
    for gcfg, _ in games:
        for icfg, _, ikey, start in inits[rosters[id(gcfg)]]:
            if start is None or (ikey, id(gcfg)) not in checked:  # a layout's starts share keys
                _check_init(icfg, gcfg, ikey, start)
                checked.add((ikey, id(gcfg)))
    for (gcfg, _), (regcfg, _) in itertools.product(games, regularizers):
        _check_regularizer(regcfg, gcfg)
    for (gcfg, _), (rcfg, _) in itertools.product(games, rules):
        for ocfg, _ in optimizers[rosters[id(gcfg)]]:
            _check_rule(rcfg, ocfg, gcfg, rule_keys[id(rcfg)])
    if "record" in given:
        for gcfg, _ in games:
            _check_record(given["record"], gcfg, inits[rosters[id(gcfg)]][0][0], seeds[0], dtype)
    points = []
    common = {"steps": steps, "record_every": record_every, "dtype": dtype}
    for (gcfg, gcols), (rcfg, rcols), (regcfg, regcols), (ocfg, ocols), (icfg, icols, *_), seed in (
            (g, *rest) for g in games for rest in itertools.product(
                rules, regularizers, optimizers[rosters[id(g[0])]], inits[rosters[id(g[0])]], seeds)):
        config = {"game": gcfg, "rule": rcfg, "regularizer": regcfg, "optimizer": ocfg,
                  "init": icfg, "seed": seed, **common, **given}
        columns = {
            "study": name, "game": gcfg["name"], "rule": rcfg["name"],
            "regularizer": regcfg["name"], "seed": seed,
            "game_label": _label(GAMES, gcfg), "rule_label": _label(RULES, rcfg),
            "regularizer_label": _label(REGULARIZERS, regcfg),
            **gcols, **rcols, **regcols, **ocols, **icols, **common,
        }
        points.append((config, columns))
    return points, named, seeds, record_every


# --- helpers -------------------------------------------------------------------------------

def uniform_column(values: list[Any]) -> list[Any]:
    """One column's values (None: the run has no such parameter) stored one way for every run, so
    that the runs table has one type per column: values that are all numbers, all booleans or all
    strings are kept as they are; otherwise (a list for any run, or kinds that mix) every value but
    None becomes text — a string as it is, anything else as JSON (``0.5`` → ``"0.5"``,
    ``[0.5, 1.0]`` → ``"[0.5, 1.0]"``)."""
    kinds = {_kind(v) for v in values if v is not None}
    if len(kinds) <= 1 and "other" not in kinds:
        return values
    return [v if v is None or isinstance(v, str) else _text(v) for v in values]


def _kind(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return "bool"
    if isinstance(v, numbers.Real):
        return "number"
    return "str" if isinstance(v, str) else "other"


def _text(v: Any) -> str:
    return json.dumps(v.item() if isinstance(v, np.generic) else v, default=str)


def uniform_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs' columns with each column stored one way across all runs (:func:`uniform_column`)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    fixed = {}
    for k in keys:
        values = [row.get(k) for row in rows]
        new = uniform_column(values)
        if new is not values:
            fixed[k] = new
    if not fixed:
        return rows
    return [{k: (fixed[k][i] if k in fixed else v) for k, v in row.items()}
            for i, row in enumerate(rows)]


def _hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _run_id(config: dict[str, Any], named: dict[str, tuple[str, str]]) -> str:
    """A run's id: the hash of its configuration with the files it names as written and their
    contents' digests (:func:`gamedyn.plugins.portable`); a configuration naming no file hashes as
    itself."""
    ident, digests = portable(config, named)
    return _hash({**ident, "files": digests} if digests else ident)


def _int(spec: Mapping, key: str, default: int | None) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StudyError(key, f"{value!r} is not accepted: expected {KEYS[key]}")
    return value


def _float_type(spec: Mapping, key: str) -> str:
    """``spec[key]`` (default float64) when it is float64 or float32, else a StudyError."""
    value = spec.get(key, "float64")
    if value not in ("float64", "float32"):
        raise StudyError(key, f"{value!r} is not accepted: expected {KEYS[key]}")
    return value


def _seeds(value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return list(range(value))
    if isinstance(value, list) and value and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        if len(set(value)) != len(value):
            raise StudyError("seeds", f"{value!r} is not accepted: seeds repeat")
        return list(value)
    raise StudyError("seeds", f"{value!r} is not accepted: expected {KEYS['seeds']} (>= 0)")


def _grid(mapping: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The product of the list-valued entries of a mapping (each list a grid axis)."""
    keys = list(mapping)
    axes = [v if isinstance(v, list) else [v] for v in mapping.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*axes)]


def _component(registry: Registry, spec: Any, key: str) -> tuple[type[Component], dict[str, Any]]:
    """A component given as a name or a mapping with ``name``: its class and its given parameters."""
    if isinstance(spec, str):
        return registry.get(spec, key), {}
    if isinstance(spec, dict):
        if "name" not in spec:
            raise StudyError(key, f"missing `name`: expected a {registry.kind} name, one of "
                                  f"{', '.join(registry.names())}")
        cls = registry.get(spec["name"], f"{key}.name")
        return cls, {k: v for k, v in spec.items() if k != "name"}
    raise StudyError(key, f"{spec!r} is not accepted: expected a {registry.kind} name or a mapping "
                          f"with `name` ({', '.join(registry.names())})")


def _expand(cls: type[Component], given: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """All resolved parameter sets of one component alternative (lists are grid axes)."""
    for k, v in given.items():
        if isinstance(v, list) and not v:
            raise StudyError(f"{key}.{k}", "an empty list is not accepted: expected values to sweep")
    return [cls.resolve(point, key) for point in _grid(given)]


def _alternatives(registry: Registry, spec: Any, key: str, allow_single: bool,
                  where_of: dict[int, str] | None = None
                  ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each grid point of each alternative: (config with ``name``, its columns); ``where_of`` gets
    each config's key path in the study file (``rules[1]``), by ``id`` of the config."""
    if isinstance(spec, list):
        if not spec:
            raise StudyError(key, f"an empty list is not accepted: expected at least one "
                                  f"{registry.kind} ({', '.join(registry.names())})")
        items = [(s, f"{key}[{i}]") for i, s in enumerate(spec)]
    elif allow_single:
        items = [(spec, key)]
    else:
        raise StudyError(key, f"{spec!r} is not accepted: expected a list of {registry.kind} names "
                              f"or mappings ({', '.join(registry.names())})")
    prefix = key.rstrip("s")  # columns: rule.<param>, game.<param>
    out = []
    for item, where in items:
        cls, given = _component(registry, item, where)
        for params in _expand(cls, given, where):
            out.append(({"name": cls.name, **params}, {f"{prefix}.{k}": v for k, v in params.items()}))
            if where_of is not None:
                where_of[id(out[-1][0])] = where
    return out


def _optimizer_grid(spec: Any, players: tuple[str, ...] = PLAYERS
                    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Per-player optimizer configs and their columns, from shared keys plus per-player overrides
    under ``players``' names (a game's, :func:`gamedyn.players.names`: gen and disc for GAN games);
    a mapping under any other key names no player and is refused.

    A parameter appears as ``optimizer.<param>`` when it is shared, and as ``optimizer.gen.<param>`` /
    ``optimizer.disc.<param>`` when the study overrides it for a player (or the players' optimizers
    differ): column names follow the study file, not the values.
    """
    if not isinstance(spec, dict):
        raise StudyError("optimizer", f"{spec!r} is not accepted: expected {KEYS['optimizer']}")
    for k, v in spec.items():
        if isinstance(v, dict) and k not in players:
            raise StudyError(f"optimizer.{k}", f"{k!r} is not a player of the game, so {v!r} "
                                               f"overrides nothing; accepted players: "
                                               f"{accepted_players(players)}")
    shared = {k: v for k, v in spec.items() if k not in players}
    overrides = {}
    for player in players:
        o = spec.get(player, {})
        if not isinstance(o, dict):
            raise StudyError(f"optimizer.{player}", f"{o!r} is not accepted: expected a mapping of "
                                                    f"{player}'s optimizer parameters")
        overrides[player] = o
    flat = {f"shared.{k}": v for k, v in shared.items()}
    flat.update({f"{p}.{k}": v for p, o in overrides.items() for k, v in o.items()})
    for k, v in flat.items():
        if isinstance(v, list) and not v:
            raise StudyError(f"optimizer.{k.removeprefix('shared.')}",
                             "an empty list is not accepted: expected values to sweep")
    per_player_keys = {k for o in overrides.values() for k in o}
    out = []
    for point in _grid(flat):
        sh = {k[7:]: v for k, v in point.items() if k.startswith("shared.")}
        config, where = {}, {}
        for player in players:
            own = {k[len(player) + 1:]: v for k, v in point.items() if k.startswith(player + ".")}
            merged = {"name": "sgd", **sh, **own}
            key = f"optimizer.{player}" if "name" in own else "optimizer"
            cls = OPTIMIZERS.get(merged["name"], f"{key}.name")
            given = {k: v for k, v in merged.items() if k != "name"}
            try:
                config[player] = {"name": cls.name, **cls.resolve(given, "optimizer")}
            except StudyError as e:  # locate the bad key where the study gave it
                param = e.key.split(".")[-1]
                e.key = f"optimizer.{player}.{param}" if param in own else f"optimizer.{param}"
                raise StudyError(e.key, e.message) from None
            where[player] = own
        split = len({config[p]["name"] for p in players}) > 1
        cols = {}
        for player in players:
            for k, v in config[player].items():
                if split or k in per_player_keys:
                    cols[f"optimizer.{player}.{k}"] = v
                else:
                    cols[f"optimizer.{k}"] = v
        out.append((config, cols))
    return out


def _init_alternatives(spec: Any, players: tuple[str, ...] = PLAYERS
                       ) -> list[tuple[dict[str, Any], dict[str, Any], str, Any]]:
    """Each initialisation: (config, columns, key path, start), explicit values under ``players``'
    names (a game's, :func:`gamedyn.players.names`). ``scale`` lists are grid axes; an
    init with ``grid:`` or ``sobol:`` gives one initialisation per start
    (:func:`gamedyn.init.start_points`: the chosen coordinates' values, the start, are explicit
    values; the other parameters come from ``dist``/``scale`` and the explicit values), else start
    is None."""
    items = [(s, f"init[{i}]") for i, s in enumerate(spec)] if isinstance(spec, list) else [(spec, "init")]
    if not items:
        raise StudyError("init", f"an empty list is not accepted: expected {KEYS['init']}")
    out = []
    for item, key in items:
        if not isinstance(item, dict):
            raise StudyError(key, f"{item!r} is not accepted: expected {KEYS['init']}")
        accepted = ("dist", "scale", *players, *LAYOUTS)
        for k in item:
            if k not in accepted:
                raise unknown(f"{key}.{k}", "key", k, accepted,
                              f"dist, scale, {accepted_players(players)} (the game's players), "
                              f"{', '.join(LAYOUTS)}")
        layouts = [k for k in LAYOUTS if k in item]
        if len(layouts) > 1:
            raise StudyError(f"{key}.{layouts[1]}", f"one of {' or '.join(LAYOUTS)} per init, not "
                                                    "both (a list of inits gives alternatives)")
        starts = ([(layouts[0], s) for s in start_points(layouts[0], item[layouts[0]], key, players)]
                  if layouts else [None])
        dist = item.get("dist", "normal")
        if dist not in INIT_DISTS:
            raise StudyError(f"{key}.dist", f"{dist!r} is not accepted: expected one of "
                                            f"{', '.join(INIT_DISTS)}")
        scales = item.get("scale", 1.0)
        for scale in scales if isinstance(scales, list) else [scales]:
            if isinstance(scale, bool) or not isinstance(scale, int | float) or scale < 0:
                raise StudyError(f"{key}.scale", f"{scale!r} is not accepted: expected a number >= 0")
            values = {}
            for player in players:
                given = item.get(player, {})
                if not isinstance(given, dict):
                    raise StudyError(f"{key}.{player}", f"{given!r} is not accepted: expected a "
                                                        f"mapping of parameter name to value")
                for pname, v in given.items():
                    _check_value(v, f"{key}.{player}.{pname}")
                values[player] = dict(given)
            for start in starts:   # one start, or a grid's / Sobol sample's (the chosen coordinates)
                vals = values
                if start is not None:
                    for player in players:
                        for pname in set(start[1][player]) & set(values[player]):
                            raise StudyError(f"{key}.{layouts[0]}.{player}.{pname}",
                                             f"{player}.{pname} is also given explicitly under "
                                             f"{key}.{player}: give it in one place")
                    vals = {p: {**values[p], **start[1][p]} for p in players}
                config = {"dist": dist, "scale": float(scale), **vals}
                cols = {"init.dist": dist, "init.scale": float(scale)}
                cols.update({f"init.{p}.{n}": v for p in players for n, v in vals[p].items()})
                out.append((config, cols, key, start))
    return out


def _check_value(v: Any, key: str) -> None:
    flat = v if isinstance(v, list) else [v]
    while any(isinstance(x, list) for x in flat):
        flat = [y for x in flat for y in (x if isinstance(x, list) else [x])]
    if not flat or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in flat):
        raise StudyError(key, f"{v!r} is not accepted: expected a number or a (nested) list of numbers")


def _check_init(init: dict[str, Any], game: dict[str, Any], key: str,
                start: tuple[str, dict[str, Any]] | None = None) -> None:
    """Explicit initial values must name the game's parameters and fit their shapes; a grid's or a
    Sobol sample's coordinates (``start``: the layout's name and one start) must be parameters of
    one element."""
    shapes = built_game(game).shapes()
    players = player_names(built_game(game).players)
    if start is not None:
        layout, coords = start
        scalars = [f"{p}.{n}" for p, named in shapes.items() for n, s in named.items()
                   if int(np.prod(s, dtype=np.int64)) == 1]
        for player in players:
            for pname in coords[player]:
                shape = shapes.get(player, {}).get(pname)
                if shape is None or int(np.prod(shape, dtype=np.int64)) != 1:
                    what = "no such parameter" if shape is None else f"shape {shape}"
                    raise StudyError(f"{key}.{layout}.{player}.{pname}",
                                     f"{player}.{pname} ({what} in game {_label(GAMES, game)!r}) "
                                     f"is not accepted: a grid or Sobol coordinate is a parameter "
                                     f"of one element; accepted: {', '.join(scalars) or 'none'}")
    for player in players:
        if init[player] and player not in shapes:
            raise StudyError(f"{key}.{player}", f"game {_label(GAMES, game)!r} has no player "
                                                f"{player!r}; its players: {', '.join(shapes)}")
        for pname, value in init[player].items():
            if pname not in shapes[player]:
                raise StudyError(f"{key}.{player}.{pname}",
                                 f"no parameter {pname!r} for {player} in game {game['name']!r}; "
                                 f"accepted: {', '.join(shapes[player])}")
            try:
                np.broadcast_to(np.asarray(value, dtype=float), shapes[player][pname])
            except ValueError:
                raise StudyError(f"{key}.{player}.{pname}",
                                 f"{value!r} does not fit the shape {shapes[player][pname]} of "
                                 f"{player}.{pname} in game {game['name']!r}") from None


def _check_regularizer(reg: dict[str, Any], game: dict[str, Any]) -> None:
    """A regularizer acting on data samples needs a game that has them, and every regularizer but
    ``none`` acts on the discriminator, which the game must have as a player."""
    from .games.base import SampleGame

    cls = REGULARIZERS.get(reg["name"])
    if cls.needs_samples and not issubclass(GAMES.get(game["name"]), SampleGame):
        with_samples = [n for n in GAMES.names() if issubclass(GAMES.get(n), SampleGame)]
        raise StudyError("regularizer", f"{reg['name']!r} acts on data samples, which game "
                                        f"{game['name']!r} does not have; games with samples: "
                                        f"{', '.join(with_samples)}")
    if cls.needs_disc and "disc" not in built_game(game).players:
        raise StudyError("regularizer", f"{reg['name']!r} acts on the discriminator, which game "
                                        f"{_label(GAMES, game)!r} does not have as a player")


def _check_record(record: list[str], game: dict[str, Any], init: dict[str, Any], seed: int,
                  dtype: str) -> None:
    """Every entry of ``record:`` is a group or a variable the game records (found by recording
    step 0 of one run, :func:`gamedyn.memory.variable_names`), and it keeps some variable."""
    from .record import GROUPS, kept

    probe = memory.variable_names({"game": game, "init": init, "seed": seed, "dtype": dtype})
    if probe is None:   # the game raises: its batches will, and say why
        return
    names, n_coords = probe
    for i, entry in enumerate(record):
        if entry not in GROUPS and entry not in names:
            raise StudyError(f"record[{i}]", f"{entry!r} is neither a group nor a variable of game "
                             f"{_label(GAMES, game)!r}; accepted: {', '.join(GROUPS)}, or one of "
                             f"{', '.join(names)}")
    if not kept(names, n_coords, record):
        raise StudyError("record", f"{record!r} keeps none of the variables of game "
                                   f"{_label(GAMES, game)!r} ({', '.join(names)})")


def _check_rule(rule: dict[str, Any], optimizer: dict[str, Any], game: dict[str, Any],
                key: str = "rules") -> None:
    """What a rule declares it needs (players, its optimizers' capabilities: ``Rule.unmet``),
    refused under the rule's own entry ``key`` (``rules[1]``)."""
    players = tuple(built_game(game).players)
    opts = {p: OPTIMIZERS.get(optimizer[p]["name"]) for p in players if p in optimizer}
    problem = RULES.get(rule["name"]).unmet(rule, players, opts)
    if problem:
        raise StudyError(key, f"{problem} (game {_label(GAMES, game)!r})")


@functools.cache
def _built_cached(name: str, frozen: str) -> Any:
    return GAMES.get(name).build([json.loads(frozen)], dtype=_float64())


def built_game(game: dict[str, Any]) -> Any:
    """The game built once per configuration (for checks of its players and shapes)."""
    return _built_cached(game["name"], json.dumps(game, sort_keys=True))


def _float64():
    import torch

    return torch.float64


def _label(registry: Registry, config: dict[str, Any]) -> str:
    """``name`` plus the parameters that differ from their defaults, e.g. ``alternating(disc_steps=5)``."""
    cls = registry.get(config["name"])
    diff = [f"{k}={cls.label_value(k, v)}" for k, v in config.items()
            if k != "name" and v != cls.params[k].default]
    return f"{config['name']}({', '.join(diff)})" if diff else config["name"]


def batch_key(config: dict[str, Any]) -> str:
    """Runs with equal keys can be stepped together: per-run hyperparameters, seeds and initial
    points may differ inside a batch; everything structural must agree."""
    def strip(registry: Registry, c: dict[str, Any]) -> dict[str, Any]:
        return registry.get(c["name"]).structural(c)

    key = {
        "game": strip(GAMES, config["game"]),
        "rule": strip(RULES, config["rule"]),
        "regularizer": regularizers.batch_key(config["regularizer"], GAMES.get(config["game"]["name"])),
        "optimizer": {p: strip(OPTIMIZERS, c) for p, c in config["optimizer"].items()},
        **{k: config[k] for k in ("steps", "record_every", "dtype")},
    }
    return _hash(key)
