#!/usr/bin/env bash
# Install the Debian packages the tests, the demo and the package builds need, only when missing
# (idempotent): each package is installed when the file it is known by is absent.
set -euo pipefail

declare -A BINARY_OF=(
  [notary]=/usr/bin/notary
  [docker-registry]=/usr/bin/docker-registry
  [skopeo]=/usr/bin/skopeo
  [etcd-server]=/usr/bin/etcd
  [gnupg]=/usr/bin/gpg
  [curl]=/usr/bin/curl
  [openssl]=/usr/bin/openssl
  # The HTTP load generator of make bench (bench/bench_admission.py).
  [wrk]=/usr/bin/wrk
  # Building the StarlingX Debian packages (make debs) with dpkg-buildpackage.
  [dpkg-dev]=/usr/bin/dpkg-buildpackage
  [debhelper]=/usr/bin/dh
  [dh-python]=/usr/bin/pybuild
  [python3-all]=/usr/share/doc/python3-all/copyright
  [python3-setuptools]=/usr/lib/python3/dist-packages/setuptools/__init__.py
  [python3-wheel]=/usr/lib/python3/dist-packages/wheel/__init__.py
  # The webhook image (make image): a Debian root fs and an OCI layout, no registry.
  [mmdebstrap]=/usr/bin/mmdebstrap
  [umoci]=/usr/bin/umoci
  # The single-node cluster of the e2e tests: container runtime, pod network, kube-proxy,
  # and the busybox the test images are made of.
  [containerd]=/usr/bin/containerd
  [runc]=/usr/sbin/runc
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [iptables]=/usr/sbin/xtables-nft-multi
  [conntrack]=/usr/sbin/conntrack
  [busybox-static]=/bin/busybox
)

missing=()
for package in "${!BINARY_OF[@]}"; do
  [ -e "${BINARY_OF[$package]}" ] || missing+=("$package")
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
