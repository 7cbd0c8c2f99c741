"""The Kafka client library logs through the package's logger, never straight to stderr, and the
command line shows each distinct line once."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Consumer

from lakehouse.app.cli.logs import OncePerMessage
from lakehouse.core.kafka import LOGGER, client_config
from lakehouse.core.settings import StreamingSettings
from lakehouse.services.process import free_port


def test_librdkafka_logs_go_to_the_lakehouse_logger(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    streaming = StreamingSettings(bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    caplog.set_level(logging.DEBUG, logger=LOGGER.name)
    consumer = Consumer(client_config(streaming, **{"group.id": "t", "reconnect.backoff.ms": 50}))
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not caplog.records:
            consumer.poll(0.2)  # logs are delivered from poll()
    finally:
        consumer.close()
    refused = [r for r in caplog.records if r.name == LOGGER.name and "Connection refused" in r.getMessage()]
    assert refused, [r.getMessage() for r in caplog.records]
    assert "rdkafka" not in capfd.readouterr().err  # nothing written to stderr by the C library


def test_each_distinct_message_passes_once() -> None:
    once = OncePerMessage()

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord(LOGGER.name, logging.ERROR, __file__, 1, msg, None, None)

    lines = [
        "127.0.0.1:29092/bootstrap: Connect to ipv4#127.0.0.1:29092 failed: Connection refused (after 0ms)",
        "127.0.0.1:29092/bootstrap: Connect to ipv4#127.0.0.1:29092 failed: Connection refused (after 1ms)",
        "127.0.0.1:29092/bootstrap: Connect to ipv4#127.0.0.1:29092 failed: Connection refused (after 0ms)",
        "GroupCoordinator: broker down",
    ]
    assert [once.filter(record(m)) for m in lines] == [True, False, False, True]
