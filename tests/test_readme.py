"""The README's two commands are the ones that work: CI runs the second one verbatim."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [b.strip() for b in blocks[:2]]


def test_readme_starts_with_install_and_serve_then_install_and_test() -> None:
    serve, test = readme_commands()
    assert "uv sync" in serve and serve.endswith("streamforge serve")
    assert "--extra test" in test and test.endswith("uv run pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    _, test = readme_commands()
    assert test in ci, "the README's test command must stand alone as a line of .ci/run"
