#!/usr/bin/env bash
# Build (once, cached) the real Kubernetes binaries the e2e tests use:
# kube-apiserver, kubectl and the node's kube-controller-manager, kube-scheduler,
# kubelet and kube-proxy from k8s.io/kubernetes, helm from helm.sh/helm/v3, all
# pinned by tests/e2e/controlplane/go.mod. etcd comes from Debian (etcd-server,
# 3.4), installed only when missing. Only the binaries not yet cached are built.
#
# Output: ${PORTIERIS_CACHE_DIR:-$HOME/.cache/portieris}/bin/
#   <name>-vX.Y.Z for each binary (versioned, cached)
#   <name> and etcd (stable symlinks)
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

# name -> Go package; each is cached as $BIN/<name>-<version>.
declare -A PACKAGE_OF=(
    [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
    [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
    [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
    [kubelet]=k8s.io/kubernetes/cmd/kubelet
    [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
    [helm]=helm.sh/helm/v3/cmd/helm
)
NAMES=(kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy helm)
versioned() {
    if [[ "$1" == helm ]]; then echo "$BIN/helm-$HELM_VERSION"; else echo "$BIN/$1-$KUBE_VERSION"; fi
}
APISERVER="$(versioned kube-apiserver)"

find_etcd() {
    if [[ -x /usr/bin/etcd ]]; then echo /usr/bin/etcd; return 0; fi
    command -v etcd 2>/dev/null || return 1
}

link_and_print() {
    local etcd name path
    etcd="$(find_etcd)"
    for name in "${NAMES[@]}"; do
        path="$(versioned "$name")"
        ln -sfn "$(basename "$path")" "$BIN/$name"
        echo "$name=$path"
    done
    ln -sfn "$etcd" "$BIN/etcd"
    echo "etcd=$etcd"
}

missing_names() {
    local name path
    for name in "${NAMES[@]}"; do
        path="$(versioned "$name")"
        [[ -s "$path" && -x "$path" ]] || echo "$name"
    done
}

all_built() { [[ -z "$(missing_names)" ]]; }

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
mapfile -t to_build < <(missing_names)
packages=()
for name in "${to_build[@]}"; do packages+=("${PACKAGE_OF[$name]}"); done
log "building ${to_build[*]} (kubernetes $KUBE_VERSION, helm $HELM_VERSION; cold build: tens of minutes on 2 cores)"
start=$(date +%s)
(
    cd "$MODDIR"
    go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${packages[@]}"
) >&2
end=$(date +%s)

for name in "${to_build[@]}"; do
    mv -f "$tmp/$name" "$(versioned "$name")"
done
log "build time: $((end - start)) s"
"$APISERVER" --version >&2
link_and_print
