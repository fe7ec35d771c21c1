"""The docs stay honest: every command, option, params key and model is documented, the Lean/FIX tables equal the
code's, the README's example runs and says what it prints, and the two dependency lists agree."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import click
import pytest
from support import ROOT

from tradeloop.cli import cli
from tradeloop.core.risk import RiskLimits
from tradeloop.venue import providers as prov
from tradeloop.venue.commission import COMMISSION_MODELS
from tradeloop.venue.liquidity import LIQUIDITY_MODELS
from tradeloop.venue.slippage import SLIPPAGE_MODELS
from tradeloop.workflows.params import RunParams

DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
MODEL_REGISTRIES = {"slippage": SLIPPAGE_MODELS, "commission": COMMISSION_MODELS, "liquidity": LIQUIDITY_MODELS}


def _commands(group: click.Group, prefix: str = "tradeloop"):
    """(full name, command) for every command of the group, nested groups included."""
    for name, cmd in sorted(group.commands.items()):
        full = f"{prefix} {name}"
        yield full, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, full)


def _section(text: str, heading: str) -> str:
    """The text under a ``## heading`` line, up to the next heading of the same or a higher level."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    return m.group(1) if m else ""


def _table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in ``text`` (header and rule rows included)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and line.rstrip().endswith("|"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def test_every_cli_command_and_option_is_in_cli_md():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = []
    for full, cmd in _commands(cli):
        section = _section(text, f"`{full}`")
        if not section:
            missing.append(f"command {full!r} (a '## `{full}`' section)")
            continue
        for param in cmd.params:
            names = param.opts + param.secondary_opts if isinstance(param, click.Option) else [param.human_readable_name]
            for name in names:
                if name.startswith("-") and name not in ("-h",) and f"`{name}`" not in section:
                    missing.append(f"{full} {name}")
                elif not name.startswith("-") and f"`{name}`" not in section:
                    missing.append(f"{full} argument {name}")
    assert not missing, f"missing from docs/cli.md: {missing}"


def test_readme_table_has_one_line_per_command():
    rows = {r[0].strip("`") for r in _table_rows(_section(README, "Command line")) if r and r[0].startswith("`")}
    assert rows == set(cli.commands), f"README command table differs: {sorted(rows ^ set(cli.commands))}"


def test_every_params_key_and_model_is_in_params_md():
    text = (DOCS / "params.md").read_text(encoding="utf-8")
    first_cells = " ".join(r[0] for r in _table_rows(text) if r)
    keys = [f.name for f in fields(RunParams) if f.name != "risk"] + [f"risk.{f.name}" for f in fields(RiskLimits)]
    missing = [k for k in keys if f"`{k}`" not in first_cells]
    model_rows = {(r[0].strip("`"), r[1].strip("`")): r[2] for r in _table_rows(text) if len(r) >= 3}
    for kind, registry in MODEL_REGISTRIES.items():
        for name, cls in registry.builtins.items():
            row = model_rows.get((kind, name))
            if row is None:
                missing.append(f"{kind} model {name}")
                continue
            missing += [f"{name}.{f.name}" for f in fields(cls) if f"`{f.name}`" not in row]
    assert not missing, f"missing from docs/params.md: {missing}"


def test_params_md_example_is_valid_params():
    text = (DOCS / "params.md").read_text(encoding="utf-8")
    example = re.search(r"```json\n(.*?)```", text, re.S).group(1)
    assert RunParams.from_dict(json.loads(example)).steps == json.loads(example)["steps"]


def _code_cell(cell: str) -> str:
    return cell.strip("`")


def test_lean_fix_mapping_in_providers_md_is_the_code_tables():
    text = (DOCS / "providers.md").read_text(encoding="utf-8")
    out = [r for r in _table_rows(_section_sub(text, "Order status, outbound")) if r[0].startswith("`")]
    assert {_code_cell(r[0]): _code_cell(r[1]) for r in out} == prov.LEAN_ORDER_STATUS
    assert {_code_cell(r[0]): (_code_cell(r[2]), r[3]) for r in out} == prov.FIX_ORD_STATUS

    def inbound(heading: str, value_col: int) -> dict:
        rows = [r for r in _table_rows(_section_sub(text, heading)) if r[0].startswith("`")]
        return {_code_cell(r[0]): (None if r[value_col].startswith("transient") else _code_cell(r[value_col]))
                for r in rows}

    assert inbound("Order status, inbound from Lean", 1) == prov.LEAN_TO_TRADELOOP
    assert inbound("Order status, inbound from FIX", 2) == prov.FIX_TO_TRADELOOP
    field_rows = [r for r in _table_rows(_section_sub(text, "Fields")) if r[0].startswith("`")]
    assert {_code_cell(r[0]): (r[1], r[2]) for r in field_rows} == prov.LEAN_ORDER_FIELDS


def _section_sub(text: str, heading: str) -> str:
    m = re.search(rf"^### {re.escape(heading)}\s*$(.*?)(?=^##|\Z)", text, re.M | re.S)
    assert m, f"docs/providers.md has no '### {heading}' section"
    return m.group(1)


def test_concepts_md_names_every_risk_rule_and_reject_reason():
    from tradeloop.core.codes import REJECT_REASON, RISK_RULE, names

    text = (DOCS / "concepts.md").read_text(encoding="utf-8")
    missing = [n for n in (*names(RISK_RULE), *names(REJECT_REASON)) if n != "risk" and f"`{n}`" not in text]
    assert not missing, f"missing from docs/concepts.md: {missing}"


def _requirement(spec: str) -> tuple[str, str]:
    """``name>=1.0`` (pip or conda spelling) -> ``("name", ">=1.0")``, names normalized to pip's."""
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$", spec)
    name = m.group(1).lower().replace("_", "-")
    return {"python-duckdb": "duckdb"}.get(name, name), m.group(2).replace(" ", "")


def test_environment_yml_and_pyproject_list_the_same_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {_requirement(s) for s in project["dependencies"] + project["optional-dependencies"]["dev"]}
    wanted.add(("python", project["requires-python"]))
    text = (ROOT / "environment.yml").read_text(encoding="utf-8").split("\ndependencies:\n", 1)[1]
    # the conda packages: "  - name>=x" lines (pip's own list is indented deeper; "pip" itself is the installer)
    conda = {_requirement(m) for m in re.findall(r"^  - ([^\s#:]+)\s*$", text, re.M) if m != "pip"}
    assert conda == wanted, f"only in environment.yml: {sorted(conda - wanted)}; only in pyproject: {sorted(wanted - conda)}"


def _five_lines() -> str:
    block = re.search(r"^## In five lines\s*```python\n(.*?)```", README, re.M | re.S)
    assert block, "README has no '## In five lines' python block"
    return block.group(1)


def test_readme_example_is_five_lines_and_its_comment_is_what_it_prints(tmp_path):
    code = _five_lines()
    assert len(code.strip().splitlines()) == 5
    comment = code.strip().splitlines()[-1].split("#", 1)[1].strip()
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pattern = ".*".join(re.escape(part.strip()) for part in comment.split("..."))
    assert re.search(pattern, proc.stdout), f"printed {proc.stdout!r}, the comment says {comment!r}"
    assert (tmp_path / "research.duckdb").is_file()


@pytest.mark.parametrize("command", ["make demo", "make test"])
def test_readme_setup_commands_are_short_and_in_the_makefile(command):
    setup = _section(README, "Set-up: two commands")
    line = next(li for li in setup.splitlines() if li.startswith(command))
    assert len(line) <= 100
    target = command.split()[1]
    assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)


def test_ci_runs_exactly_the_readme_test_command():
    ci = [li.strip() for li in (ROOT / ".ci/run").read_text(encoding="utf-8").splitlines()]
    assert "make test" in ci
    assert [li for li in ci if li and not li.startswith("#") and li.startswith(("make", "python", ".venv"))][-1] == "make test"


def test_readme_is_short_and_its_links_exist():
    assert len(README.encode("utf-8")) <= 12 * 1024
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    for doc in DOCS.glob("*.md"):
        links += [str(Path("docs") / t) for t in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text("utf-8"))]
    missing = [link for link in links if not (ROOT / link).resolve().exists()]
    assert not missing, f"broken links: {missing}"
