#!/usr/bin/env bash
# Build (once) a Python base image for pipelines/Dockerfile without any container registry:
# debootstrap a minimal Debian (its python3 is the 3.11 the package is locked for) from the apt
# mirror, cache the root filesystem as a tarball outside the repository, and `podman import` it.
# With a registry at hand the Dockerfile's default base (python:3.11-slim-bookworm) does the same.
#
#   pipelines/image/build-base.sh            # build if missing, print the image name
#
# Environment: SUITE (bookworm), MIRROR (http://deb.debian.org/debian),
#              CACHE_DIR (~/.cache/ampere-lakehouse), IMAGE (localhost/ampere-python-base:$SUITE)
set -euo pipefail

SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ampere-lakehouse}"
IMAGE="${IMAGE:-localhost/ampere-python-base:${SUITE}}"
# python3 + venv for the package's virtualenvs, CA certificates for TLS to S3/Kafka/PostgreSQL.
INCLUDE="python3,python3-venv,ca-certificates"
VERSION_TAG="v1-$(printf '%s' "${SUITE}${INCLUDE}" | sha256sum | cut -c1-12)"
TARBALL="${CACHE_DIR}/python-base-${SUITE}-${VERSION_TAG}.tar"

if [[ ! -s "${TARBALL}" ]]; then
  mkdir -p "${CACHE_DIR}"
  rootfs="$(mktemp -d "${CACHE_DIR}/rootfs.XXXXXX")"
  trap 'rm -rf "${rootfs}"' EXIT
  echo "debootstrap ${SUITE} into ${rootfs} (first run only)" >&2
  debootstrap --variant=minbase --include="${INCLUDE}" "${SUITE}" "${rootfs}" "${MIRROR}" >&2
  rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/usr/share/doc/* "${rootfs}"/usr/share/man/*
  tar -C "${rootfs}" --numeric-owner -cf "${TARBALL}.tmp" .
  mv "${TARBALL}.tmp" "${TARBALL}"
fi

current="$(podman image inspect --format '{{ index .Config.Labels "ampere.image.version" }}' "${IMAGE}" 2>/dev/null || true)"
if [[ "${current}" != "${VERSION_TAG}" ]]; then
  podman image rm -f "${IMAGE}" >/dev/null 2>&1 || true
  podman import --change "LABEL ampere.image.version=${VERSION_TAG}" "${TARBALL}" "${IMAGE}" >&2
fi
echo "${IMAGE}"
