#!/usr/bin/env bash
# Build the StarlingX application tarball dist/portieris-<app version>.tgz:
#   - the chart helm-charts/portieris, packaged with the real helm (built by
#     scripts/build-controlplane.sh);
#   - the sysinv plugin wheel of python-k8sapp-portieris (Debian's setuptools and wheel,
#     as StarlingX's Debian build makes it);
#   - stx-manifests/ (metadata.yaml, fluxcd-manifests/), assembled with
#     stx-manifests/assemble-app.sh, the same script the stx-portieris-helm package runs.
# The application version is the one the stx-portieris-helm package gives it:
# <release>-<revision> from debian/stx-portieris-helm/debian/meta_data.yaml.
# stdout: the tarball's path. Idempotent: a rerun replaces the tarball (older versions'
# tarballs in dist/ are removed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="${DIST_DIR:-$ROOT/dist}"
PYTHON="${DEB_PYTHON:-/usr/bin/python3}"

log() { echo "build-stx-app: $*" >&2; }

app_version() {
    local meta="$ROOT/debian/stx-portieris-helm/debian/meta_data.yaml" debver patch
    debver="$(awk '$1 == "debver:" { print $2; exit }' "$meta")"
    patch="$(awk '$1 == "stx_patch:" { print $2; exit }' "$meta")"
    [[ -n "$debver" && -n "$patch" ]] || { log "no debver/stx_patch in $meta"; exit 1; }
    echo "${debver%%-*}-$patch"
}

if [[ "${1:-}" == "--print-version" ]]; then
    app_version
    exit 0
fi

helm="$(bash "$ROOT/scripts/build-controlplane.sh" | awk -F= '$1 == "helm" { print $2 }')"
[[ -x "$helm" ]] || { log "no helm from scripts/build-controlplane.sh"; exit 1; }
version="$(app_version)"

# Timestamps inside the wheel and the tarball: the last commit's, not the build's.
SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)"
export SOURCE_DATE_EPOCH

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/charts" "$work/plugins"

log "packaging helm-charts/portieris"
"$helm" package "$ROOT/helm-charts/portieris" --destination "$work/charts" >&2

log "building the plugin wheel"
# Build from a copy, so the source tree gets no build/ or *.egg-info.
tar -C "$ROOT/python-k8sapp-portieris" --exclude=build --exclude='*.egg-info' \
    --exclude=__pycache__ -cf - . | (mkdir "$work/plugin-src" && tar -C "$work/plugin-src" -xf -)
(cd "$work/plugin-src" && "$PYTHON" setup.py -q bdist_wheel -d "$work/plugins") >"$work/wheel.log" 2>&1 \
    || { cat "$work/wheel.log" >&2; log "wheel build failed"; exit 1; }

output="$DIST/portieris-$version.tgz"
mkdir -p "$DIST"
find "$DIST" -maxdepth 1 -name 'portieris-*.tgz' ! -name "$(basename "$output")" -delete
bash "$ROOT/stx-manifests/assemble-app.sh" --charts "$work/charts" --plugins "$work/plugins" \
    --version "$version" --output "$output"
