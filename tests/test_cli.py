"""`streamforge plan --jsonl`: exactly one JSON line per input line, in order, errors in place.

Most tests run the real command as a subprocess (as scorers do, reading its standard output); the one
that makes planning raise runs it in-process through typer's CliRunner, so the failure can be injected.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streamforge.cli import app
from streamforge.planner.service import PlannerService

TOO_LONG = "x" * 1001  # the default STREAMFORGE_MAX_MESSAGE_LENGTH is 1000
# Blank lines at the start and in the middle, a whitespace-only one, a too-long one; ends with "\n",
# which does not open another line.
LINES = ["", "revenue by region", "", "  \t ", "list all users", TOO_LONG, "how many users do we have"]
PLANNED = [i for i, line in enumerate(LINES) if line.strip() and line != TOO_LONG]


def run_plan(data_dir: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env["STREAMFORGE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "streamforge", "plan", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every line of standard output, each of which must be a JSON object."""
    lines = stdout.split("\n")
    assert lines[-1] == "", "standard output must end with a newline"
    return [json.loads(line) for line in lines[:-1]]


def signature(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """What a plan shows, without the parts that change between runs (ids, timestamps, timings)."""
    return [(c["type"], c["data"].get("title", "")) for c in plan["components"]]


@pytest.fixture(scope="module")
def mixed(data_dir: Path) -> list[dict[str, Any]]:
    run = run_plan(data_dir, "".join(line + "\n" for line in LINES), "--jsonl")
    assert run.returncode == 0, run.stderr
    return json_lines(run.stdout)


@pytest.fixture(scope="module")
def alone(data_dir: Path) -> list[dict[str, Any]]:
    """The plannable lines planned without the others, to check each answer sits on its own line."""
    run = run_plan(data_dir, "".join(LINES[i] + "\n" for i in PLANNED), "--jsonl")
    assert run.returncode == 0, run.stderr
    return json_lines(run.stdout)


def test_one_output_line_per_input_line(mixed: list[dict[str, Any]]) -> None:
    assert len(mixed) == len(LINES)


def test_blank_line_at_the_start_gets_an_error_object(mixed: list[dict[str, Any]]) -> None:
    assert mixed[0] == {"error": {"code": "empty_message", "message": "line 1 is empty", "line": 1}}


def test_blank_and_whitespace_lines_in_the_middle_get_error_objects(mixed: list[dict[str, Any]]) -> None:
    assert mixed[2]["error"]["code"] == "empty_message" and mixed[2]["error"]["line"] == 3
    assert mixed[3]["error"]["code"] == "empty_message" and mixed[3]["error"]["line"] == 4


def test_too_long_line_gets_an_error_object(mixed: list[dict[str, Any]]) -> None:
    error = mixed[5]["error"]
    assert error["code"] == "message_too_long" and error["line"] == 6
    assert "1001" in error["message"] and "1000" in error["message"]


def test_answers_stay_on_their_questions_lines(
    mixed: list[dict[str, Any]], alone: list[dict[str, Any]]
) -> None:
    assert len(alone) == len(PLANNED)
    for i, reference in zip(PLANNED, alone, strict=True):
        assert "error" not in mixed[i], mixed[i]
        assert mixed[i]["components"] and signature(mixed[i]) == signature(reference)


def test_reproduction_from_the_issue(data_dir: Path) -> None:
    run = run_plan(data_dir, "revenue by region\n\nlist all users\n", "--jsonl")
    assert run.returncode == 0, run.stderr
    assert len(json_lines(run.stdout)) == 3


def test_only_a_newline_at_the_very_end_is_not_a_line(data_dir: Path) -> None:
    # No newline after the last line; CRLF endings; two newlines at the end are one blank line.
    run = run_plan(data_dir, "revenue by region\r\n\r\nlist all users\n\nhow many users", "--jsonl")
    assert run.returncode == 0, run.stderr
    codes = [p.get("error", {}).get("code") for p in json_lines(run.stdout)]
    assert codes == [None, "empty_message", None, "empty_message", None]


def test_single_message_that_is_refused_prints_an_error_object_and_exits_1(data_dir: Path) -> None:
    run = run_plan(data_dir, "", "   ")
    assert run.returncode == 1
    assert json_lines(run.stdout) == [
        {"error": {"code": "empty_message", "message": "line 1 is empty", "line": 1}}
    ]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI points the root logger at the runner's stderr; put back pytest's handlers after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_line_whose_planning_raises_gets_an_error_and_the_run_goes_on(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    original = PlannerService.generate_layout

    async def generate_layout(self: PlannerService, message: str, context: Any = None) -> Any:
        if message == "boom":
            raise RuntimeError("injected failure")
        return await original(self, message, context)

    monkeypatch.setattr(PlannerService, "generate_layout", generate_layout)
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(app, ["plan", "--jsonl"], input="revenue by region\nboom\nlist all users\n")
    assert result.exit_code == 0, result.output
    plans = json_lines(result.stdout)
    assert len(plans) == 3
    assert "components" in plans[0] and "components" in plans[2]
    assert plans[1]["error"]["code"] == "plan_failed" and plans[1]["error"]["line"] == 2
    assert "injected failure" in plans[1]["error"]["message"]
    # The traceback is logged to standard error, never to standard output.
    assert "planning line 2 failed" in result.stderr and "RuntimeError" in result.stderr
    assert "Traceback" not in result.stdout
