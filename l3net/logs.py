"""One structured (logfmt) line per event: ``ts=… level=… logger=… event=… key=value``."""

from __future__ import annotations

import logging
import sys
import time


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        message = record.getMessage()
        if not message.startswith("event="):
            message = f"msg={message!r}"
        line = f"ts={stamp} level={record.levelname.lower()} logger={record.name} {message}"
        if record.exc_info:
            # Keep the one-line promise: the traceback is folded into one escaped field.
            line += f" exc={self.formatException(record.exc_info)!r}"
        return line


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pynetdicom narrates every PDU at INFO; our handlers log what matters.
    for noisy in ("pynetdicom", "uvicorn.access", "botocore", "boto3", "urllib3", "alembic", "highdicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
