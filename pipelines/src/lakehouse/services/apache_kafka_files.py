"""The files the local Apache Kafka broker reads (server.properties, log4j2.properties), and the
telling line of its log when it fails."""

from __future__ import annotations

import re
from pathlib import Path

from lakehouse.services.base import LOOPBACK

SCRAM_MECHANISM = "SCRAM-SHA-512"

LOG4J2 = """\
# Written by lakehouse.services.apache_kafka at every start: everything to stdout (broker.log).
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
# the full configuration dump at every start is noise in a local log
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def server_properties(
    *,
    port: int,
    controller_port: int,
    sasl_port: int | None,
    data_dir: Path,
    partitions: int,
    keystore: Path | None,
    extra: dict[str, str],
) -> str:
    """server.properties of a one-node KRaft broker with every listener on loopback."""
    listeners = [f"PLAINTEXT://{LOOPBACK}:{port}", f"CONTROLLER://{LOOPBACK}:{controller_port}"]
    advertised = [f"PLAINTEXT://{LOOPBACK}:{port}"]
    if sasl_port is not None:
        listeners.append(f"SASL_SSL://{LOOPBACK}:{sasl_port}")
        advertised.append(f"SASL_SSL://{LOOPBACK}:{sasl_port}")
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOOPBACK}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(advertised),
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
        "log.dirs": str(data_dir),
        "num.partitions": str(partitions),
        # one node: every internal topic has one replica
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # two cores on the machines this runs on
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "log.cleaner.threads": "1",
    }
    if sasl_port is not None and keystore is not None:
        props.update(
            {
                "sasl.enabled.mechanisms": SCRAM_MECHANISM,
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                ),
                "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
                "listener.name.sasl_ssl.ssl.keystore.location": str(keystore),
            }
        )
    props.update(extra)
    body = "".join(f"{key}={properties_value(value)}\n" for key, value in props.items())
    return "# Written by lakehouse.services.apache_kafka at every start.\n" + body


def failure_line(log: Path) -> str:
    """The most telling line of the broker's last run, for a one-line error: the last ERROR or FATAL
    record with the exception line that follows it, else the last line."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    start = max((i for i, line in enumerate(lines) if line.startswith("=== ")), default=-1)
    run = [line.rstrip() for line in lines[start + 1 :] if line.strip()]
    for i in range(len(run) - 1, -1, -1):
        if re.search(r"\] (ERROR|FATAL) ", run[i]) or run[i].startswith(("ERROR", "Exception")):
            text = re.sub(r"^\[[^\]]*\] ", "", run[i])
            nxt = run[i + 1] if i + 1 < len(run) else ""
            if re.match(r"^[\w.$]+(Exception|Error)\b", nxt):
                text += f": {nxt}"
            return text[:500]
    return run[-1][:500] if run else "no output"


def properties_value(value: str) -> str:
    """A value for a Java .properties file (backslashes, and leading spaces are significant)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")
