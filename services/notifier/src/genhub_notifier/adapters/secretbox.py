"""Encryption of signing secrets at rest (Fernet, keyed by NOTIFIER_ENCRYPTION_KEY)."""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr


class ConfigError(RuntimeError):
    """The service cannot start with this configuration."""


class SecretBox:
    """Encrypts with the first key, decrypts with any (so keys can be rotated)."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ConfigError("no encryption key")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    @classmethod
    def from_setting(cls, value: SecretStr | None) -> "SecretBox":
        raw = value.get_secret_value() if value is not None else ""
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        if not keys:
            raise ConfigError(
                "NOTIFIER_ENCRYPTION_KEY is not set. The notifier encrypts webhook signing "
                "secrets with it and never derives one. Generate a key with "
                "`uv run genhub-notifier gen-key` and export NOTIFIER_ENCRYPTION_KEY."
            )
        try:
            return cls(keys)
        except (ValueError, TypeError) as exc:
            # Do not echo the value: it is a secret even when malformed.
            raise ConfigError(
                "NOTIFIER_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64 bytes); "
                "generate one with `uv run genhub-notifier gen-key`."
            ) from exc

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "a signing secret cannot be decrypted with the configured keys"
            ) from exc
