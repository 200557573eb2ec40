"""Settings: environment variables prefixed ``SOVEREIGN_`` (nested with ``__``), an optional
``sovereign.toml`` in the working directory, and ``.env``. Secrets come only from the
environment or ``.env`` and are ``SecretStr`` so they never print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSettings(_Section):
    universe: str = "sp500"
    start: str | None = None  # ISO date; None = the first date that leaves the warm-up
    days: Annotated[int, Field(gt=0)] | None = None
    seed: int = 42
    cash: Annotated[float, Field(gt=0)] = 1_000_000.0
    speed: Annotated[float, Field(ge=0)] = 0.0  # simulated seconds per wall second; 0 = fast
    improvement_every_days: Annotated[int, Field(ge=0)] = 61  # 0 = no improvement cycles


class LlmSettings(_Section):
    """An OpenAI-compatible endpoint. ``model`` unset means no LLM: the offline heuristic
    proposer runs. ``base_url`` / ``api_key`` default to ``OPENAI_BASE_URL`` /
    ``OPENAI_API_KEY``; a local server (Ollama, vLLM, llama.cpp) needs only the URL."""

    model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2


class TelegramSettings(_Section):
    token: SecretStr | None = None
    allowed_user_ids: str = ""
    base_url: str | None = None


class AlpacaSettings(_Section):
    """Alpaca: paper by default. Keys only from ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``.
    ``base_url`` / ``data_url`` override the trading and market-data endpoints."""

    base_url: str | None = None
    data_url: str | None = None
    paper: bool = True


class IbkrSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 7497
    client_id: int = 1


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SOVEREIGN_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        toml_file="sovereign.toml",
        extra="forbid",
    )

    data_dir: Path = Path("var")
    database_url: str | None = None  # default: sqlite:///<data_dir>/sovereign.db
    constitution_path: Path | None = None  # default: the bundled constitution.toml
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    run: RunSettings = RunSettings()
    llm: LlmSettings = LlmSettings()
    telegram: TelegramSettings = TelegramSettings()
    alpaca: AlpacaSettings = AlpacaSettings()
    ibkr: IbkrSettings = IbkrSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls),
        )

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sovereign.db'}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"
