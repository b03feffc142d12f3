"""The planner through the OpenAI-compatible provider: structured output off by default, on by setting."""

from __future__ import annotations

import json
from pathlib import Path

from streamforge.config import Settings
from streamforge.planner.factory import build_planner_service
from tests.fakes.bedrock import text
from tests.fakes.openai import FakeOpenAI

PLAN = json.dumps({"components": [{"type": "SimpleComponent", "data": {"title": "Users", "value": 3}}]})


def settings_for(fake: FakeOpenAI, data_dir: Path, structured: bool) -> Settings:
    return Settings(
        provider="openai",
        openai_base_url=fake.base_url,
        openai_structured=structured,
        llm_data=False,
        llm_stream=False,
        offline_last_resort=False,
        data_dir=data_dir,
        _env_file=None,
    )  # type: ignore[call-arg]


async def test_structured_output_follows_the_setting(fake_openai: FakeOpenAI, data_dir: Path) -> None:
    for structured in (False, True):
        fake_openai.push(text(PLAN))
        service = await build_planner_service(settings_for(fake_openai, data_dir, structured))
        try:
            result = await service.generate_layout(f"how many users ({structured})")
        finally:
            await service.aclose()
        assert result.provider == "openai" and result.components[0]["data"]["value"] == 3
        sent = fake_openai.last.response_format
        if structured:
            assert sent is not None and sent["type"] == "json_schema"
            assert "components" in sent["json_schema"]["schema"]["properties"]
        else:
            assert sent is None
