#!/usr/bin/env bash
# Build (once, cached) the real sigstore tools the cosign tests use as oracles:
#   cosign             github.com/sigstore/cosign/v2/cmd/cosign
#   timestamp-server   github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server
#   referrers-registry our main on go-containerregistry's in-memory registry, with
#                      the OCI 1.1 referrers API (Debian's docker-registry lacks it)
#   policy-tester      github.com/sigstore/policy-controller/cmd/tester
# pinned by tests/fixtures/sigstore_tools/go.mod (the first three) and
# tests/fixtures/sigstore_tools/policy-tester/go.mod (a wrapper module: `go install`
# refuses policy-controller because of its replace directives, and its Kubernetes pins
# must not move cosign's). Both keep a complete go.sum, so no checksum-database look-up
# is needed. Only the binaries not yet cached are built.
#
# Output: ${PORTIERIS_CACHE_DIR:-$HOME/.cache/portieris}/bin/
#   <name>-<version> for each binary (versioned, cached; referrers-registry's version
#   also carries a hash of its source) and <name> (stable symlinks)
# stdout: one "name=path" line per binary (machine-readable); progress on stderr.
# A warm run (everything cached) does no Go work and returns in well under 1 s.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODDIR="$ROOT/tests/fixtures/sigstore_tools"
PT_MODDIR="$MODDIR/policy-tester"
CACHE_DIR="${PORTIERIS_CACHE_DIR:-$HOME/.cache/portieris}"
BIN="$CACHE_DIR/bin"

log() { echo "build-sigstore-tools: $*" >&2; }

# Versions come from the go.mod files so there is a single source of truth.
# A require line in a block, or a one-line `require path version`.
modver() {
    awk -v m="$2" '$1 == "require" { $1 = ""; $0 = $0 }
        $1 == m && $2 ~ /^v/ { print $2; exit }' "$1/go.mod"
}
COSIGN_VERSION="$(modver "$MODDIR" github.com/sigstore/cosign/v2)"
TSA_VERSION="$(modver "$MODDIR" github.com/sigstore/timestamp-authority/v2)"
GGCR_VERSION="$(modver "$MODDIR" github.com/google/go-containerregistry)"
PC_VERSION="$(modver "$PT_MODDIR" github.com/sigstore/policy-controller)"
for v in COSIGN_VERSION TSA_VERSION GGCR_VERSION PC_VERSION; do
    [[ -n "${!v}" ]] || { log "cannot read $v from the go.mod files under $MODDIR"; exit 1; }
done
# Our own main changes without a version bump: its hash is part of its cache key.
REGISTRY_SRC="$MODDIR/referrers-registry/main.go"
REGISTRY_VERSION="$GGCR_VERSION-$(sha256sum "$REGISTRY_SRC" | cut -c1-12)"
# The timestamp authority is built with one file replaced (its metrics listener, fixed at
# :2112 upstream, takes a free loopback port; see tsa_patched_modfile): the replacement's
# hash is in its cache key.
TSA_OVERLAY_SRC="$MODDIR/testdata/tsa-prometheus.go"  # testdata/: no package of this module
TSA_VERSION="$TSA_VERSION-$(sha256sum "$TSA_OVERLAY_SRC" | cut -c1-12)"

NAMES=(referrers-registry timestamp-server cosign policy-tester)
declare -A PACKAGE_OF=(
    [cosign]=github.com/sigstore/cosign/v2/cmd/cosign
    [timestamp-server]=github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server
    [referrers-registry]=./referrers-registry
    [policy-tester]=github.com/sigstore/policy-controller/cmd/tester
)
declare -A VERSION_OF=(
    [cosign]="$COSIGN_VERSION"
    [timestamp-server]="$TSA_VERSION"
    [referrers-registry]="$REGISTRY_VERSION"
    [policy-tester]="$PC_VERSION"
)
declare -A MODDIR_OF=(
    [cosign]="$MODDIR"
    [timestamp-server]="$MODDIR"
    [referrers-registry]="$MODDIR"
    [policy-tester]="$PT_MODDIR"
)
versioned() { echo "$BIN/$1-${VERSION_OF[$1]}"; }

link_and_print() {
    local name path
    for name in "${NAMES[@]}"; do
        path="$(versioned "$name")"
        ln -sfn "$(basename "$path")" "$BIN/$name"
        echo "$name=$path"
    done
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
if all_built; then
    link_and_print
    exit 0
fi

mkdir -p "$BIN"

# ---- Go build ----------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
    export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null 2>&1 || { log "go not found (looked in PATH and /usr/local/go/bin)"; exit 1; }

# Serialise concurrent builds on the lock build-controlplane.sh uses too: two Go builds at
# once only slow each other down on a small machine.
exec 9>"$BIN/.build.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
    if all_built; then
        link_and_print
        exit 0
    fi
fi

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
# Never fetch a different Go toolchain: use the one installed.
export GOTOOLCHAIN=local

tmp="$(mktemp -d "$BIN/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The sigstore commands report their version through sigs.k8s.io/release-utils (what
# their own Makefiles set); the module proxy does not carry the git commit.
ldflags_for() {
    local pkg=sigs.k8s.io/release-utils/version
    echo "-s -w -X $pkg.gitVersion=${VERSION_OF[$1]} -X $pkg.gitTreeState=clean" \
        "-X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

# The timestamp authority's module with its metrics server replaced: a writable copy of
# the module beside a copy of our go.mod that points at it (the module cache is read-only
# and `go build -overlay` may not replace files in it). Prints the -modfile to build with.
tsa_patched_modfile() {
    local module_dir copy="$1/timestamp-authority"
    module_dir="$(cd "$MODDIR" && go mod download -json github.com/sigstore/timestamp-authority/v2 \
        | awk -F'"' '/"Dir":/ { print $4 }')"
    [[ -d "$module_dir" ]] || { log "cannot find the timestamp-authority module"; exit 1; }
    cp -r "$module_dir" "$copy"
    chmod -R u+w "$copy"
    cp "$TSA_OVERLAY_SRC" "$copy/pkg/server/prometheus.go"
    cp "$MODDIR/go.mod" "$1/go.mod"
    cp "$MODDIR/go.sum" "$1/go.sum"
    (cd "$MODDIR" && go mod edit -modfile="$1/go.mod" \
        -replace=github.com/sigstore/timestamp-authority/v2="$copy")
    echo "$1/go.mod"
}

log "go: $(go version)"
mapfile -t to_build < <(missing_names)
log "building ${to_build[*]} (cold: minutes each on 2 cores)"
# One `go build` per binary: each gets its own version in the shared release-utils variable.
for name in "${to_build[@]}"; do
    start=$(date +%s)
    patched=()
    if [[ "$name" == timestamp-server ]]; then
        patched=("-modfile=$(tsa_patched_modfile "$tmp")")
    fi
    (
        cd "${MODDIR_OF[$name]}"
        go build -trimpath "${patched[@]}" -ldflags "$(ldflags_for "$name")" \
            -o "$tmp/$name" "${PACKAGE_OF[$name]}"
    ) >&2
    mv -f "$tmp/$name" "$(versioned "$name")"
    log "$name ${VERSION_OF[$name]}: $(($(date +%s) - start)) s"
done
link_and_print
