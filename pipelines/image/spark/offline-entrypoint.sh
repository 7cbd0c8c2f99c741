#!/bin/bash
# Entry point of the Spark base built offline (base.Containerfile): runs the given command. The
# Spark Operator starts pods with `driver` or `executor`, which only the official image's
# entrypoint implements; refuse those in one line instead of failing somewhere inside Spark.
set -euo pipefail
case "${1:-}" in
  driver | executor)
    echo "this image was built on the offline Spark base, which cannot start a Kubernetes $1; rebuild with make image-spark SPARK_BASE=docker.io/apache/spark:<version>-scala2.13-java17-ubuntu" >&2
    exit 64
    ;;
esac
exec "$@"
