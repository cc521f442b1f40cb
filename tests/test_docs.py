"""The documentation promises only what exists: links resolve, every field is listed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.cli import cli
from connector.core.fields import catalogue

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NAMES = [str(page.relative_to(ROOT)) for page in PAGES]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=NAMES)
def test_every_relative_link_resolves(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which is missing"


def test_the_field_reference_lists_every_field_on_both_crms() -> None:
    text = (ROOT / "docs" / "fields.md").read_text()
    for spec in catalogue({}, "salesforce"):
        assert f"`{spec.key}`" in text and spec.salesforce in text and spec.hubspot in text


@pytest.mark.parametrize("page", PAGES, ids=NAMES)
def test_every_command_the_docs_name_exists(page: Path) -> None:
    commands = set(cli.list_commands(None))  # type: ignore[arg-type]
    # In code: `spm-connector x` inline, or a line of a shell example.
    code = r"(?:`|^\s+(?:\$ )?|^\$ |&& )spm-connector (?:--config \S+ )?([a-z]+)\b"
    for name in re.findall(code, page.read_text(), flags=re.MULTILINE):
        assert name in commands, f"{page.name} names `spm-connector {name}`"


def test_the_examples_name_users_of_the_sandboxs_default_seed() -> None:
    """`spm-connector sandbox` with no options holds every member of examples/spm.yaml."""
    from connector.config import load_config
    from crm_sandbox.salesforce.org import Org
    from crm_sandbox.seed import generate

    users = list(Org(generate(seed=7, reps=12, deals=0, year=2026)).rows("User"))
    known = {u["Id"] for u in users} | {u["Email"] for u in users}
    config = load_config(str(ROOT / "examples" / "spm.yaml"))
    members = {member for plan in config.plans for member in plan.members}
    assert members and members <= known
    assert all(len(m) == 18 for m in members if "@" not in m)
    reps = (ROOT / "examples" / "reps.csv").read_text().splitlines()[1:]
    assert {line.split(",")[0] for line in reps} <= known
