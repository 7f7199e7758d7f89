"""Start-up configuration: the encryption key is mandatory and never derived."""

import pytest
from cryptography.fernet import Fernet
from genhub_notifier import cli
from genhub_notifier.adapters.secretbox import ConfigError, SecretBox
from genhub_notifier.config import Settings
from genhub_notifier.main import create_app, dispatch_config
from pydantic import SecretStr, ValidationError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFIER_ENCRYPTION_KEY", "NOTIFIER_RETRY_SCHEDULE_S", "GENHUB_ENV"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("env", ["local", "test", "production"])
def test_create_app_refuses_to_start_without_a_key(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.setenv("GENHUB_ENV", env)
    with pytest.raises(ConfigError, match="NOTIFIER_ENCRYPTION_KEY is not set"):
        create_app()


def test_serve_exits_with_a_clear_message_without_a_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["serve"]) == 2
    assert "NOTIFIER_ENCRYPTION_KEY is not set" in capsys.readouterr().err


def test_a_malformed_key_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFIER_ENCRYPTION_KEY", "hunter2-not-a-fernet-key")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "not a valid Fernet key" in err and "hunter2" not in err


def test_gen_key_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gen-key"]) == 0
    key = capsys.readouterr().out.strip()
    Fernet(key.encode())  # valid
    box = SecretBox.from_setting(SecretStr(key))
    assert box.decrypt(box.encrypt("whsec_abc")) == "whsec_abc"


def test_keys_rotate_first_encrypts_any_decrypts() -> None:
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    token = SecretBox.from_setting(SecretStr(old)).encrypt("whsec_x")
    rotated = SecretBox.from_setting(SecretStr(f"{new},{old}"))
    assert rotated.decrypt(token) == "whsec_x"
    with pytest.raises(ConfigError):
        SecretBox.from_setting(SecretStr(new)).decrypt(token)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_RETRY_SCHEDULE", "0,1,2")
    monkeypatch.setenv("NOTIFIER_RETRY_JITTER", "0.1")
    monkeypatch.setenv("NOTIFIER_SECRET_ROTATION_GRACE_S", "60")
    monkeypatch.setenv("NOTIFIER_ALLOW_PRIVATE_WEBHOOKS", "true")
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", "postgresql://u:p@h:5432/n")
    settings = Settings()
    assert settings.service_name == "notifier" and settings.http_port == 8084
    assert settings.allow_private_webhooks is True
    assert settings.async_database_url == "postgresql+asyncpg://u:p@h:5432/n"
    config = dispatch_config(settings)
    assert config.schedule.delays_s == (1, 2) and config.schedule.max_attempts == 3
    assert config.schedule.jitter == 0.1
    assert settings.secret_rotation_grace_s == 60
    assert not settings.require_https  # local profile: plain http allowed
    monkeypatch.setenv("GENHUB_ENV", "production")
    assert Settings().require_https


def test_a_bad_retry_schedule_fails_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_RETRY_SCHEDULE", "5,soon")
    with pytest.raises(ValidationError):
        Settings()


def test_production_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "NOTIFIER_RETRY_SCHEDULE",
        "NOTIFIER_RETRY_JITTER",
        "NOTIFIER_WEBHOOK_TIMEOUT_S",
        "NOTIFIER_SECRET_ROTATION_GRACE_S",
        "NOTIFIER_ENDPOINT_DISABLE_AFTER_S",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GENHUB_ENV", "test")
    settings = Settings()
    config = dispatch_config(settings)
    # immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    assert config.schedule.initial_delay_s == 0
    assert config.schedule.delays_s == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert config.schedule.max_attempts == 8 and config.schedule.jitter == 0.2
    assert settings.webhook_timeout_s == 15
    assert config.disable_after.total_seconds() == 5 * 86400
    assert settings.secret_rotation_grace_s == 86400
    assert settings.require_https  # https required outside the local profile
