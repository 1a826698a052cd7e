"""One line per event, key=value fields, with secrets masked before anything is written."""

import logging
import re
import time

MASK = "***"
# Query-string and form keys whose values are secrets or one-time codes: exact names, and any
# name ending in one of the suffixes (auth_token, client_secret, x-api-key, ...).
_EXACT_KEYS = ("code", "state", "pwd", "tk", "zak", "code_verifier", "key")
_SUFFIXES = ("secret", "token", "password", "signature", "api_key", "apikey")
_QUERY_SECRET = re.compile(
    r"(?P<key>(?<![\w-])(?:" + "|".join(_EXACT_KEYS) + r"|[\w-]*(?:" + "|".join(_SUFFIXES) + r")))"
    r"=(?P<value>[^&\s\"']+)",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(
    r"(?P<key>\b(?:authorization|x-zm-signature|webhook-signature|svix-signature)[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>(?:(?:bearer|basic|token)\s+)?[^\s,\"'}]+)",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    text = _QUERY_SECRET.sub(lambda m: f"{m.group('key')}={MASK}", text)
    return _AUTH_HEADER.sub(lambda m: f"{m.group('key')}{MASK}", text)


class MaskSecretsFilter(logging.Filter):
    """Masks secrets in the rendered message, for Django's, gunicorn's and our own loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        record.msg = mask_secrets(message)
        record.args = None
        for name in ("request_line", "path"):
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, mask_secrets(value))
        return True


_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_SKIP_EXTRA = {"request", "server_time", "status_code"}


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(ch in text for ch in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    """`ts=... level=... logger=... msg="..." key=value` on one line."""

    # staticmethod: a plain function here would read to mypy as a method bound to the formatter.
    converter = staticmethod(time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%SZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in _SKIP_EXTRA and not key.startswith("_"):
                fields[key] = mask_secrets(str(value))
        status_code = getattr(record, "status_code", None)
        if status_code is not None:
            fields["status"] = status_code
        if record.exc_info:
            fields["exc"] = mask_secrets(self.formatException(record.exc_info))
        return " ".join(f"{key}={_quote(value)}" for key, value in fields.items())


def logging_config(level: str) -> dict:
    """The one logging setup, for Django (settings.LOGGING) and gunicorn (logconfig_dict): every
    line key=value on stdout, secrets masked."""
    quiet = {"handlers": ["stdout"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask_secrets": {"()": "brokerproject.logging.MaskSecretsFilter"}},
        "formatters": {"keyvalue": {"()": "brokerproject.logging.KeyValueFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "keyvalue",
                "filters": ["mask_secrets"],
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            name: dict(quiet) for name in ("django", "django.server", "gunicorn.error", "gunicorn.access", "celery")
        },
    }
