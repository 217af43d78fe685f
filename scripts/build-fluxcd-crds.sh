#!/usr/bin/env bash
# Generate (once, cached) FluxCD's real HelmRelease and HelmRepository CRDs, with
# their OpenAPI schemas, the way FluxCD generates them: controller-gen run on the
# API Go modules github.com/fluxcd/helm-controller/api and
# github.com/fluxcd/source-controller/api, at the versions pinned by
# tests/app/fluxcd-crds/go.mod. Only the Go module proxy is needed.
#
# Output: ${PORTIERIS_CACHE_DIR:-$HOME/.cache/portieris}/
#   bin/controller-gen-vX.Y.Z                                (cached)
#   fluxcd-crds/helm-api-vA.B.C_source-api-vD.E.F/*.yaml     (cached)
# stdout: "fluxcd-crds=<that directory>" (machine-readable); progress on stderr.
# A warm run does no Go work.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODDIR="$ROOT/tests/app/fluxcd-crds"
CACHE_DIR="${PORTIERIS_CACHE_DIR:-$HOME/.cache/portieris}"
BIN="$CACHE_DIR/bin"
CONTROLLER_GEN_VERSION=v0.17.2

log() { echo "build-fluxcd-crds: $*" >&2; }

modver() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$MODDIR/go.mod"; }
HELM_API="$(modver github.com/fluxcd/helm-controller/api)"
SOURCE_API="$(modver github.com/fluxcd/source-controller/api)"
[[ -n "$HELM_API" && -n "$SOURCE_API" ]] || { log "cannot read versions from $MODDIR/go.mod"; exit 1; }

OUT="$CACHE_DIR/fluxcd-crds/helm-api-${HELM_API}_source-api-${SOURCE_API}"
CONTROLLER_GEN="$BIN/controller-gen-$CONTROLLER_GEN_VERSION"
WANTED=(helm.toolkit.fluxcd.io_helmreleases.yaml source.toolkit.fluxcd.io_helmrepositories.yaml)

generated() {
    local name
    for name in "${WANTED[@]}"; do [[ -s "$OUT/$name" ]] || return 1; done
}

if generated; then
    echo "fluxcd-crds=$OUT"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null 2>&1 || { log "go not found (looked in PATH and /usr/local/go/bin)"; exit 1; }

mkdir -p "$BIN" "$(dirname "$OUT")"
# Serialise concurrent runs on one lock file.
exec 9>"$CACHE_DIR/fluxcd-crds/.build.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
    if generated; then
        echo "fluxcd-crds=$OUT"
        exit 0
    fi
fi

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
# Never fetch a different Go toolchain: use the one installed.
export GOTOOLCHAIN=local

tmp="$(mktemp -d "$CACHE_DIR/fluxcd-crds/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

if [[ ! -x "$CONTROLLER_GEN" ]]; then
    log "building controller-gen $CONTROLLER_GEN_VERSION (about a minute)"
    GOBIN="$tmp/bin" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_GEN_VERSION" >&2
    mv -f "$tmp/bin/controller-gen" "$CONTROLLER_GEN"
fi

log "generating CRDs from helm-controller/api $HELM_API and source-controller/api $SOURCE_API"
(
    cd "$MODDIR"
    go mod download github.com/fluxcd/helm-controller/api github.com/fluxcd/source-controller/api >&2
    helm_dir="$(go list -m -f '{{.Dir}}' github.com/fluxcd/helm-controller/api)"
    source_dir="$(go list -m -f '{{.Dir}}' github.com/fluxcd/source-controller/api)"
    "$CONTROLLER_GEN" crd \
        "paths=$helm_dir/v2/..." \
        "paths=$source_dir/v1/..." \
        "output:crd:dir=$tmp/crds" >&2
)
for name in "${WANTED[@]}"; do
    [[ -s "$tmp/crds/$name" ]] || { log "controller-gen did not write $name"; exit 1; }
done
rm -rf "$OUT"
mv "$tmp/crds" "$OUT"
echo "fluxcd-crds=$OUT"
