#!/usr/bin/env bash
# Install the Debian packages the tests and the demo need, only when missing (idempotent).
set -euo pipefail

declare -A BINARY_OF=(
  [notary]=/usr/bin/notary
  [docker-registry]=/usr/bin/docker-registry
  [skopeo]=/usr/bin/skopeo
  [etcd-server]=/usr/bin/etcd
  [gnupg]=/usr/bin/gpg
  [curl]=/usr/bin/curl
  [openssl]=/usr/bin/openssl
)

missing=()
for package in "${!BINARY_OF[@]}"; do
  [ -x "${BINARY_OF[$package]}" ] || missing+=("$package")
done
# notary ships both the CLI and notary-server.
[ -x /usr/bin/notary-server ] || missing+=(notary)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
