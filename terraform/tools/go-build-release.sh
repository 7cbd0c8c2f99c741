#!/usr/bin/env bash
# Builds one Go program at a pinned release from the Go module proxy, reproducibly.
#
#   go-build-release.sh MODULE VERSION SUM PACKAGE OUTPUT [LDFLAGS]
#
# MODULE@VERSION is downloaded through the Go module proxy (checked against the Go checksum
# database by `go mod download`) and its h1: hash must equal SUM, the value pinned in
# terraform/terraform.mk. The module is built as the main module of a private copy of its
# source, because `go install MODULE@VERSION` refuses modules with replace directives (both
# OpenTofu and the libvirt provider have some); every dependency is then verified against
# that module's own go.sum (-mod=readonly). CGO is off and paths are trimmed, so the same
# toolchain gives the same bytes on every machine (the provider's lock-file hash relies on it).
#
# The caller sets GOTOOLCHAIN; Go's module and build caches are the user's shared ones, so a
# second build of the same pin compiles nothing.
set -euo pipefail

if [ "$#" -lt 5 ]; then
  echo "usage: $0 MODULE VERSION SUM PACKAGE OUTPUT [LDFLAGS]" >&2
  exit 2
fi
module=$1 version=$2 want_sum=$3 package=$4 output=$5 ldflags=${6:-}

command -v go >/dev/null || { echo "go-build-release: no go command on PATH (Go 1.26 is part of the machine)" >&2; exit 1; }

export GOFLAGS="-mod=readonly -modcacherw" CGO_ENABLED=0 GOWORK=off
info=$(go mod download -json "${module}@${version}") || {
  printf '%s\n' "$info" >&2   # with -json, go reports the cause in the record on stdout
  echo "go-build-release: cannot download ${module}@${version} from the Go module proxy" >&2
  exit 1
}
# go prints the module record as JSON; read it with a JSON parser, not by pattern.
read -r dir got_sum < <(printf '%s' "$info" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["Dir"], m["Sum"])')
if [ "$got_sum" != "$want_sum" ]; then
  echo "go-build-release: ${module}@${version} has hash ${got_sum}, expected ${want_sum} (pinned in terraform/terraform.mk)" >&2
  exit 1
fi

mkdir -p "$(dirname "$output")"
work=$(mktemp -d "${output}.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$dir/." "$work/"
chmod -R u+w "$work"
(cd "$work" && go build -trimpath -buildvcs=false -ldflags "-s -w ${ldflags}" -o "$work/out" "$package")
mv "$work/out" "$output"
echo "go-build-release: built $(basename "$output") from ${module}@${version} with $(go env GOVERSION)"
