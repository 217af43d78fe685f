#!/usr/bin/env bash
# Build (once, cached) the real Kubernetes control-plane binaries the e2e tests
# use: kube-apiserver and kubectl from k8s.io/kubernetes, helm from
# helm.sh/helm/v3, all pinned by tests/e2e/controlplane/go.mod. etcd comes from
# Debian (etcd-server, 3.4), installed only when missing.
#
# Output: ${PORTIERIS_CACHE_DIR:-$HOME/.cache/portieris}/bin/
#   kube-apiserver-vX.Y.Z, kubectl-vX.Y.Z, helm-vA.B.C  (versioned, cached)
#   kube-apiserver, kubectl, helm, etcd                  (stable symlinks)
# stdout: one "name=path" line per binary (machine-readable); progress on stderr.
# A warm run (everything cached) does no Go work and returns in well under 1 s.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODDIR="$ROOT/tests/e2e/controlplane"
CACHE_DIR="${PORTIERIS_CACHE_DIR:-$HOME/.cache/portieris}"
BIN="$CACHE_DIR/bin"

log() { echo "build-controlplane: $*" >&2; }

# Versions come from the go.mod so there is a single source of truth.
modver() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$MODDIR/go.mod"; }
KUBE_VERSION="$(modver k8s.io/kubernetes)"
HELM_VERSION="$(modver helm.sh/helm/v3)"
[[ -n "$KUBE_VERSION" && -n "$HELM_VERSION" ]] || { log "cannot read versions from $MODDIR/go.mod"; exit 1; }

APISERVER="$BIN/kube-apiserver-$KUBE_VERSION"
KUBECTL="$BIN/kubectl-$KUBE_VERSION"
HELM="$BIN/helm-$HELM_VERSION"

find_etcd() {
    if [[ -x /usr/bin/etcd ]]; then echo /usr/bin/etcd; return 0; fi
    command -v etcd 2>/dev/null || return 1
}

link_and_print() {
    local etcd
    etcd="$(find_etcd)"
    ln -sfn "$(basename "$APISERVER")" "$BIN/kube-apiserver"
    ln -sfn "$(basename "$KUBECTL")" "$BIN/kubectl"
    ln -sfn "$(basename "$HELM")" "$BIN/helm"
    ln -sfn "$etcd" "$BIN/etcd"
    echo "kube-apiserver=$APISERVER"
    echo "kubectl=$KUBECTL"
    echo "helm=$HELM"
    echo "etcd=$etcd"
}

all_built() { [[ -s "$APISERVER" && -x "$APISERVER" && -s "$KUBECTL" && -x "$KUBECTL" && -s "$HELM" && -x "$HELM" ]]; }

# ---- fast path: everything cached ------------------------------------------
if all_built && find_etcd >/dev/null; then
    link_and_print
    exit 0
fi

mkdir -p "$BIN"

# ---- etcd (Debian package) --------------------------------------------------
if ! find_etcd >/dev/null; then
    log "etcd not found: installing Debian package etcd-server"
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y --no-install-recommends etcd-server >&2 \
        || { $SUDO apt-get update >&2 && $SUDO apt-get install -y --no-install-recommends etcd-server >&2; }
    find_etcd >/dev/null || { log "etcd still missing after apt-get install etcd-server"; exit 1; }
fi

if all_built; then
    link_and_print
    exit 0
fi

# ---- Go build ----------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
    export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null 2>&1 || { log "go not found (looked in PATH and /usr/local/go/bin)"; exit 1; }

# Serialise concurrent builds (e.g. parallel test workers) on one lock file.
exec 9>"$BIN/.build.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
    if all_built; then
        link_and_print
        exit 0
    fi
fi

kube_minor="${KUBE_VERSION#v1.}"; kube_minor="${kube_minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# The module proxy does not carry the git commit; allow the caller to give it.
git_commit="${KUBE_GIT_COMMIT:-}"

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION"
    ldflags+=" -X $pkg.gitMajor=1"
    ldflags+=" -X $pkg.gitMinor=$kube_minor"
    ldflags+=" -X $pkg.gitCommit=$git_commit"
    ldflags+=" -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=$build_date"
done
# helm's own version, and the Kubernetes version it assumes for templating/lint
# (what helm's Makefile derives from its client-go version).
ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.metadata="
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
# Never fetch a different Go toolchain: use the one installed.
export GOTOOLCHAIN=local

tmp="$(mktemp -d "$BIN/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

log "go: $(go version)"
log "building kube-apiserver + kubectl $KUBE_VERSION and helm $HELM_VERSION (cold build: tens of minutes on 2 cores)"
start=$(date +%s)
(
    cd "$MODDIR"
    go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kubectl \
        helm.sh/helm/v3/cmd/helm
) >&2
end=$(date +%s)

mv -f "$tmp/kube-apiserver" "$APISERVER"
mv -f "$tmp/kubectl" "$KUBECTL"
mv -f "$tmp/helm" "$HELM"
log "build time: $((end - start)) s"
"$APISERVER" --version >&2
link_and_print
