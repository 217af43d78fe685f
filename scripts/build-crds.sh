#!/usr/bin/env bash
# Generate (once, cached) the real CRDs, with their OpenAPI schemas, of the platform
# components the StarlingX application's apply test needs in its kube-apiserver:
#   - FluxCD's HelmRelease and HelmRepository (what the application's manifests are),
#     generated as FluxCD generates them: controller-gen run on the API Go modules
#     github.com/fluxcd/helm-controller/api and github.com/fluxcd/source-controller/api;
#   - cert-manager's Certificate, Issuer and ClusterIssuer (what the chart creates when it
#     uses cert-manager, as it does on StarlingX), rendered as cert-manager's release does:
#     its CRD templates (deploy/crds of the Go module github.com/cert-manager/cert-manager)
#     through `helm template` with its chart's helpers and values. (Its Go types carry no
#     kubebuilder markers: controller-gen would make ClusterIssuer namespaced.)
# Versions are pinned by tests/app/crds/go.mod. Only the Go module proxy is needed; helm
# comes from scripts/build-controlplane.sh.
#
# Output: ${PORTIERIS_CACHE_DIR:-$HOME/.cache/portieris}/
#   bin/controller-gen-vX.Y.Z        (cached)
#   crds/<versions>/*.yaml           (cached)
# stdout: "crds=<that directory>" (machine-readable); progress on stderr.
# A warm run does no Go work.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODDIR="$ROOT/tests/app/crds"
CACHE_DIR="${PORTIERIS_CACHE_DIR:-$HOME/.cache/portieris}"
BIN="$CACHE_DIR/bin"
CONTROLLER_GEN_VERSION=v0.17.2

log() { echo "build-crds: $*" >&2; }

# module -> the API packages of it that controller-gen reads
declare -A API_PATHS=(
    [github.com/fluxcd/helm-controller/api]=v2
    [github.com/fluxcd/source-controller/api]=v1
)
CERT_MANAGER=github.com/cert-manager/cert-manager
CERT_MANAGER_CRDS=(certificates issuers clusterissuers)
WANTED=(
    helm.toolkit.fluxcd.io_helmreleases.yaml
    source.toolkit.fluxcd.io_helmrepositories.yaml
    cert-manager.io_certificates.yaml
    cert-manager.io_issuers.yaml
    cert-manager.io_clusterissuers.yaml
)

modver() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$MODDIR/go.mod"; }
key=""
for module in $(printf '%s\n' "${!API_PATHS[@]}" "$CERT_MANAGER" | sort); do
    version="$(modver "$module")"
    [[ -n "$version" ]] || { log "no version of $module in $MODDIR/go.mod"; exit 1; }
    key+="${key:+_}$(basename "${module%/api}")-$version"
done
OUT="$CACHE_DIR/crds/$key"
CONTROLLER_GEN="$BIN/controller-gen-$CONTROLLER_GEN_VERSION"

generated() {
    local name
    for name in "${WANTED[@]}"; do [[ -s "$OUT/$name" ]] || return 1; done
}

if generated; then
    echo "crds=$OUT"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null 2>&1 || { log "go not found (looked in PATH and /usr/local/go/bin)"; exit 1; }

mkdir -p "$BIN" "$CACHE_DIR/crds"
# Serialise concurrent runs on one lock file.
exec 9>"$CACHE_DIR/crds/.build.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
    if generated; then
        echo "crds=$OUT"
        exit 0
    fi
fi

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
# Never fetch a different Go toolchain: use the one installed.
export GOTOOLCHAIN=local

tmp="$(mktemp -d "$CACHE_DIR/crds/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

if [[ ! -x "$CONTROLLER_GEN" ]]; then
    log "building controller-gen $CONTROLLER_GEN_VERSION (about a minute)"
    GOBIN="$tmp/bin" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_GEN_VERSION" >&2
    mv -f "$tmp/bin/controller-gen" "$CONTROLLER_GEN"
fi

helm="$(bash "$ROOT/scripts/build-controlplane.sh" | awk -F= '$1 == "helm" { print $2 }')"
[[ -x "$helm" ]] || { log "no helm from scripts/build-controlplane.sh"; exit 1; }

log "generating CRDs ($key)"
(
    cd "$MODDIR"
    go mod download "${!API_PATHS[@]}" "$CERT_MANAGER" >&2
    args=()
    for module in "${!API_PATHS[@]}"; do
        args+=("paths=$(go list -m -f '{{.Dir}}' "$module")/${API_PATHS[$module]}/...")
    done
    "$CONTROLLER_GEN" crd "${args[@]}" "output:crd:dir=$tmp/crds" >&2

    source_dir="$(go list -m -f '{{.Dir}}' "$CERT_MANAGER")"
    chart="$tmp/cert-manager-chart"
    mkdir -p "$chart/templates"
    printf 'apiVersion: v2\nname: cert-manager\nversion: %s\nappVersion: %s\n' \
        "$(modver "$CERT_MANAGER" | sed 's/^v//')" "$(modver "$CERT_MANAGER")" >"$chart/Chart.yaml"
    cp "$source_dir/deploy/charts/cert-manager/values.yaml" "$chart/"
    cp "$source_dir/deploy/charts/cert-manager/templates/_helpers.tpl" "$chart/templates/"
    for crd in "${CERT_MANAGER_CRDS[@]}"; do
        cp "$source_dir/deploy/crds/crd-$crd.yaml" "$chart/templates/"
        "$helm" template cert-manager "$chart" --set crds.enabled=true \
            --show-only "templates/crd-$crd.yaml" >"$tmp/crds/cert-manager.io_$crd.yaml"
    done
)
for name in "${WANTED[@]}"; do
    [[ -s "$tmp/crds/$name" ]] || { log "controller-gen did not write $name"; exit 1; }
done
rm -rf "$OUT"
mv "$tmp/crds" "$OUT"
echo "crds=$OUT"
