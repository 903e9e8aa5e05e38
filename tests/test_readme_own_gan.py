"""README "Your own GAN on real data": its plugin module and its study, copied out of README.md as
a reader would copy them, run through the command line (shrunk); and the module shown there is the
code of ``studies/plugins/digits_mlp.py``, so that the README stays true."""

from __future__ import annotations

import ast
import re

import pytest
import yaml

import gamedyn
from gamedyn import cli
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")

MODULE_HEADER = "# studies/plugins/digits_mlp.py"
#: The shrunk study: the README's, with fewer steps, seeds and rules (set on the parsed YAML).
SHRINK = {"steps": 4, "record_every": 2, "seeds": 1}
RULES = 2


def readme_blocks() -> tuple[str, str]:
    """The python block that starts with :data:`MODULE_HEADER` and the first yaml block after it."""
    text = (ROOT / "README.md").read_text()
    blocks = [(m.group(1), m.group(2)) for m in
              re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)]
    starts = [i for i, (lang, body) in enumerate(blocks)
              if lang == "python" and body.startswith(MODULE_HEADER)]
    assert len(starts) == 1, f"README.md: expected one python block starting {MODULE_HEADER!r}"
    after = [body for lang, body in blocks[starts[0] + 1:] if lang == "yaml"]
    assert after, "README.md: no yaml block after the plugin module"
    return blocks[starts[0]][1], after[0]


def code(source: str) -> str:
    """The source's syntax tree without docstrings and type annotations (comments and layout are
    not in it): what the code does, not how it is written down."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        if isinstance(node, ast.arg):
            node.annotation = None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.returns = None
    return ast.dump(tree)


def test_the_readme_module_is_the_code_of_the_plugin_file():
    module, _ = readme_blocks()
    assert code(module) == code((ROOT / "studies" / "plugins" / "digits_mlp.py").read_text())


def test_every_key_the_readme_study_sets_is_as_in_studies_digits_gan_yaml():
    _, study = readme_blocks()
    shown = yaml.safe_load(study)
    full = yaml.safe_load((ROOT / "studies" / "digits_gan.yaml").read_text())
    assert {k: full.get(k) for k in shown} == shown


def test_the_readme_gan_runs_from_its_two_blocks_through_the_command_line(tmp_path, capsys):
    module, study = readme_blocks()
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "digits_mlp.py").write_text(module)
    spec = yaml.safe_load(study)
    spec.setdefault("name", "digits_gan")   # the README's block shows no name (a required key)
    spec.update(SHRINK, rules=spec["rules"][:RULES])
    path = tmp_path / "digits_gan.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))

    assert cli.main(["run", str(path), "--out", str(tmp_path / "results"), "--no-figures"]) == 0
    gammas = spec["regularizer"]["gamma"]
    n_runs = RULES * len(gammas) * SHRINK["seeds"]
    assert f"{n_runs} runs: {n_runs} computed, 0 already on disk, 0 failed" in capsys.readouterr().out
    results = gamedyn.load(tmp_path / "results" / spec["name"])
    assert len(results.runs) == n_runs and results.failures.empty
    assert set(results.runs["rule_label"].astype(str)) == set(spec["rules"])
    assert results.runs["steps_done"].eq(SHRINK["steps"]).all()
