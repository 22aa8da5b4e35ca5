"""Structured logs: one JSON object per line, with the user and connection in scope."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime

user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
connection_id_var: ContextVar[str | None] = ContextVar("connection_id", default=None)


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process_name,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        user_id, connection_id = user_id_var.get(), connection_id_var.get()
        if user_id:
            entry["user_id"] = user_id
        if connection_id:
            entry["connection_id"] = connection_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__(f"%(asctime)s {process_name} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        user_id, connection_id = user_id_var.get(), connection_id_var.get()
        if user_id or connection_id:
            line += f" [user={user_id} conn={connection_id}]"
        return line


class Tally:
    """Counts something that may happen thousands of times a second (commands dropped past
    their deadline, shed, timed out) and logs one warning with the count at most every
    ``interval_s``, so overload shows in the logs without flooding them."""

    def __init__(self, logger: logging.Logger, message: str, interval_s: float = 5.0) -> None:
        self.logger = logger
        self.message = message  # with one %d: how many since the last warning
        self.interval_s = interval_s
        self.total = 0
        self._unreported = 0
        self._last = 0.0

    def add(self, count: int = 1) -> None:
        self.total += count
        self._unreported += count
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self.logger.warning(self.message, self._unreported)
            self._unreported, self._last = 0, now


_TOKEN = re.compile(r"(token=)[^ &\"']+")


class RedactTokens(logging.Filter):
    """Keeps bearer tokens of ``/ws?token=…`` out of the logs (uvicorn logs the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = _TOKEN.sub(r"\1***", record.msg)
        return True


# uvicorn logs every WebSocket handshake and close at INFO: at thousands of connections per
# second that is most of the log and several percent of the gateway's CPU. Kept at DEBUG.
_PER_CONNECTION = ('%s - "WebSocket %s" [accepted]', "connection open", "connection closed")


class PerConnectionLines(logging.Filter):
    """Drops uvicorn's per-connection lines unless the level is DEBUG (metrics count them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in _PER_CONNECTION or logging.getLogger().level <= logging.DEBUG


def configure_logging(process_name: str, level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process_name) if as_json else TextFormatter(process_name))
    handler.addFilter(RedactTokens())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # At DEBUG these would log user text: aiosqlite every statement with its parameters
    # (past SQLAlchemy's hide_parameters), uvicorn every WebSocket frame.
    for leaky in ("aiosqlite", "uvicorn.error"):
        logging.getLogger(leaky).setLevel(max(logging.INFO, root.level))
    logging.getLogger("uvicorn.error").addFilter(PerConnectionLines())
