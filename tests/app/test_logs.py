"""app/logs.py: a rotating log file under the data dir; settings never print secrets."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import SecretStr

from sovereign.app.logs import setup_logging
from sovereign.settings import Settings, TelegramSettings


def test_logs_go_to_a_rotating_file(tmp_path: Path) -> None:
    path = setup_logging(tmp_path / "logs", "INFO")
    logging.getLogger("sovereign.test").info("hello from the test")
    for handler in logging.getLogger("sovereign").handlers:
        handler.flush()
    assert path == tmp_path / "logs" / "sovereign.log"
    assert "hello from the test" in path.read_text()


def test_secrets_do_not_print(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, telegram=TelegramSettings(token=SecretStr("123:very-secret")))
    assert "very-secret" not in repr(s) and "very-secret" not in s.model_dump_json()
