#!/usr/bin/env bash
# Build (once) the throwaway Debian image the Molecule podman scenarios run on, offline from any
# container registry: debootstrap a minimal Debian from the apt mirror, cache the root
# filesystem as a tarball outside the repository, and `podman import` it.
#
#   tests/ansible/images/build-debian-image.sh            # build if missing, print image name
#   FORCE=1 tests/ansible/images/build-debian-image.sh    # rebuild
#
# Environment: SUITE (bookworm), MIRROR (http://deb.debian.org/debian),
#              CACHE_DIR (~/.cache/ampere-lakehouse), IMAGE (localhost/ampere-molecule-debian:$SUITE)
set -euo pipefail

SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ampere-lakehouse}"
IMAGE="${IMAGE:-localhost/ampere-molecule-debian:${SUITE}}"
# Packages a managed node needs before Ansible can run on it (python3) and to act like a VM
# (systemd as PID 1, sudo, an SSH server to harden, iproute2 for facts).
INCLUDE="python3,python3-apt,systemd,systemd-sysv,dbus,sudo,openssh-server,iproute2,procps,ca-certificates,gnupg,kmod"
VERSION_TAG="v3-$(printf '%s' "${SUITE}${INCLUDE}" | sha256sum | cut -c1-12)"
TARBALL="${CACHE_DIR}/debian-${SUITE}-${VERSION_TAG}.tar"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-${SCRIPT_DIR}/../containers.conf}"

# apt caches the Molecule containers share (lists + .debs), mounted by their molecule.yml at
# ${HOME}/.cache/ampere-lakehouse/apt. An empty list folder gets an old timestamp so that apt
# counts it as stale and the first converge really runs `apt-get update`.
APT_CACHE="${HOME}/.cache/ampere-lakehouse/apt"
mkdir -p "${APT_CACHE}/lists/partial" "${APT_CACHE}/archives/partial"
if ! compgen -G "${APT_CACHE}/lists/*_Packages*" >/dev/null; then
  touch -d "2000-01-01" "${APT_CACHE}/lists"
fi

if [[ "${FORCE:-0}" == "1" ]]; then
  rm -f "${TARBALL}"
  podman image rm -f "${IMAGE}" >/dev/null 2>&1 || true
fi

if [[ ! -s "${TARBALL}" ]]; then
  mkdir -p "${CACHE_DIR}"
  rootfs="$(mktemp -d "${CACHE_DIR}/rootfs.XXXXXX")"
  trap 'rm -rf "${rootfs}"' EXIT
  echo "debootstrap ${SUITE} into ${rootfs} (first run only)" >&2
  debootstrap --variant=minbase --include="${INCLUDE}" "${SUITE}" "${rootfs}" "${MIRROR}" >&2
  # Same apt sources as the host's mirror, and no leftovers that make images differ.
  printf 'deb %s %s main\n' "${MIRROR}" "${SUITE}" > "${rootfs}/etc/apt/sources.list"
  rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/*
  # An old timestamp: apt caches count as stale, so the first `apt update_cache` really updates.
  touch -d "2000-01-01" "${rootfs}/var/lib/apt/lists" "${rootfs}/var/cache/apt"
  rm -f "${rootfs}"/var/cache/apt/*.bin
  # Faster package installs in a throwaway system: no man pages, docs or man-db rebuilds.
  printf '%s\n' 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/doc/*' \
    'path-include=/usr/share/doc/*/copyright' 'path-exclude=/usr/share/info/*' \
    > "${rootfs}/etc/dpkg/dpkg.cfg.d/01-ampere-nodoc"
  echo 'man-db man-db/auto-update boolean false' | chroot "${rootfs}" debconf-set-selections
  # systemd inside a container: no getty on a console that does not exist.
  chroot "${rootfs}" systemctl mask getty@tty1.service serial-getty@console.service >/dev/null 2>&1 || true
  : > "${rootfs}/etc/machine-id"
  tar -C "${rootfs}" --numeric-owner -cf "${TARBALL}.tmp" .
  mv "${TARBALL}.tmp" "${TARBALL}"
fi

current="$(podman image inspect --format '{{ index .Config.Labels "ampere.image.version" }}' "${IMAGE}" 2>/dev/null || true)"
if [[ "${current}" != "${VERSION_TAG}" ]]; then
  podman image rm -f "${IMAGE}" >/dev/null 2>&1 || true
  podman import \
    --change "LABEL ampere.image.version=${VERSION_TAG}" \
    --change 'CMD ["/sbin/init"]' \
    --change 'ENV container=podman' \
    "${TARBALL}" "${IMAGE}" >&2
fi
echo "${IMAGE}"
