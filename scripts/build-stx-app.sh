#!/usr/bin/env bash
# Build the StarlingX application tarball dist/portieris-<app version>.tgz:
#   - the chart helm-charts/portieris, packaged with the real helm (built by
#     scripts/build-controlplane.sh);
#   - the sysinv plugin wheel of python-k8sapp-portieris (Debian's setuptools and wheel,
#     as StarlingX's Debian build makes it);
#   - stx-manifests/ (metadata.yaml, fluxcd-manifests/), assembled with
#     stx-manifests/assemble-app.sh, the same script the stx-portieris-helm package runs.
#
# Versions, as StarlingX's build and the packages' rules give them:
#   - a package's revision: revision.stx_patch of its meta_data.yaml plus, with GITREVCOUNT,
#     the commits since BASE_SRCREV that changed SRC_DIR (here: this repository since its
#     first commit). Outside a git work tree (or without BASE_SRCREV in a shallow clone) no
#     commits are counted, with a warning. StarlingX's build also counts uncommitted changed
#     files; this does not, so a tree being edited keeps the version of its last commit.
#   - the release: $SW_VERSION, else SW_VERSION of /etc/build.info (a StarlingX build
#     environment), else the StarlingX release this targets (DEFAULT_SW_VERSION).
#   - the application: <release>-<revision of stx-portieris-helm>, e.g. 26.09-194;
#   - the plugin wheel: <release>.<revision of python3-k8sapp-portieris> (PBR_VERSION).
# meta_data.yaml is found where StarlingX's build looks for the Debian codename $DIST
# (default bullseye): <package>/debian/, debian/<codename>/ or debian/all/.
#
# usage: build-stx-app.sh                  build; stdout: the tarball's path
#        build-stx-app.sh --print-version  the application version
#        build-stx-app.sh --print-sw-version
#        build-stx-app.sh --print-revision debian/<package>
# Idempotent: a rerun replaces the tarball (older versions' tarballs in dist/ are removed).
# scripts/build-debs.sh sources this file for the version functions.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${DIST_DIR:-$ROOT/dist}"
PYTHON="${DEB_PYTHON:-/usr/bin/python3}"
# The StarlingX release in development (master) when this was written: stx.13, 26.09.
DEFAULT_SW_VERSION=26.09

log() { echo "build-stx-app: $*" >&2; }
fail() { log "$*"; exit 1; }

# The value of a scalar key (unique in the file) of a meta_data.yaml.
meta_value() { awk -v k="$2:" '$1 == k { print $2; exit }' "$1" | tr -d "\"'"; }

sw_version() {
    local version="${SW_VERSION:-}"
    if [[ -z "$version" && -r /etc/build.info ]]; then
        version="$(sed -n 's/^SW_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/build.info | head -n 1)"
    fi
    version="${version:-$DEFAULT_SW_VERSION}"
    [[ "$version" =~ ^[0-9]+(\.[0-9]+)+$ ]] || fail "SW_VERSION '$version' is not <year>.<month>"
    echo "$version"
}

# The folder of meta_data.yaml and deb_folder/ of a package directory (relative to the
# repository) for the codename $DIST, as build-tools/stx/discovery.py looks for it.
package_folder() {
    local pkg="$ROOT/$1" dist="${DIST:-bullseye}" folder candidates
    if [[ "$dist" == bullseye ]]; then
        candidates=("$pkg/debian" "$pkg/debian/bullseye" "$pkg/debian/all")
    else
        candidates=("$pkg/debian/$dist" "$pkg/debian/all")
    fi
    for folder in "${candidates[@]}"; do
        [[ -f "$folder/meta_data.yaml" ]] && { echo "$folder"; return 0; }
    done
    fail "$1: no meta_data.yaml for $dist in ${candidates[*]}"
}

package_revision() {
    local folder meta patch base src dir count=0
    folder="$(package_folder "$1")"
    meta="$folder/meta_data.yaml"
    patch="$(meta_value "$meta" stx_patch)"
    [[ "$patch" =~ ^[0-9]+$ ]] || fail "$meta: revision.stx_patch must be a number"
    base="$(meta_value "$meta" BASE_SRCREV)"
    if [[ -n "$base" ]]; then
        src="$(meta_value "$meta" SRC_DIR)"
        if [[ -z "$src" ]]; then
            dir="$folder"
        elif [[ "$src" == /* ]]; then
            dir="$src"
        else
            dir="$ROOT/$1/$src"
        fi
        if ! git -C "$dir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
            log "warning: $dir is not in a git work tree: the revision of $1 counts no commits"
        elif ! git -C "$dir" cat-file -e "$base^{commit}" 2>/dev/null; then
            log "warning: BASE_SRCREV $base is not in this clone (shallow?): the revision of $1 counts no commits"
        else
            count="$(cd "$dir" && git rev-list --count "$base..HEAD" -- .)"
        fi
    fi
    echo $((patch + count))
}

app_version() {
    local release revision
    release="$(sw_version)"
    revision="$(package_revision debian/stx-portieris-helm)"
    echo "$release-$revision"
}

wheel_version() {
    local release revision
    release="$(sw_version)"
    revision="$(package_revision debian/python3-k8sapp-portieris)"
    echo "$release.$revision"
}

build() {
    local helm version pbr_version work output
    helm="$(bash "$ROOT/scripts/build-controlplane.sh" | awk -F= '$1 == "helm" { print $2 }')"
    [[ -x "$helm" ]] || fail "no helm from scripts/build-controlplane.sh"
    version="$(app_version)"
    pbr_version="$(wheel_version)"

    # Timestamps inside the wheel and the tarball: the last commit's, not the build's.
    SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)"
    export SOURCE_DATE_EPOCH

    work="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: $work is local
    trap "rm -rf '$work'" EXIT
    mkdir -p "$work/charts" "$work/plugins"

    log "packaging helm-charts/portieris"
    "$helm" package "$ROOT/helm-charts/portieris" --destination "$work/charts" >&2

    log "building the plugin wheel $pbr_version"
    # Build from a copy, so the source tree gets no build/ or *.egg-info.
    tar -C "$ROOT/python-k8sapp-portieris" --exclude=build --exclude='*.egg-info' \
        --exclude=__pycache__ -cf - . | (mkdir "$work/plugin-src" && tar -C "$work/plugin-src" -xf -)
    (cd "$work/plugin-src" && PBR_VERSION="$pbr_version" "$PYTHON" setup.py -q bdist_wheel -d "$work/plugins") \
        >"$work/wheel.log" 2>&1 || { cat "$work/wheel.log" >&2; fail "wheel build failed"; }

    output="$OUT/portieris-$version.tgz"
    mkdir -p "$OUT"
    find "$OUT" -maxdepth 1 -name 'portieris-*.tgz' ! -name "$(basename "$output")" -delete
    bash "$ROOT/stx-manifests/assemble-app.sh" --charts "$work/charts" --plugins "$work/plugins" \
        --version "$version" --output "$output"
}

main() {
    case "${1:-}" in
        --print-version) app_version ;;
        --print-sw-version) sw_version ;;
        --print-revision) package_revision "${2:?usage: $0 --print-revision debian/<package>}" ;;
        "") build ;;
        *) fail "usage: $0 [--print-version | --print-sw-version | --print-revision debian/<package>]" ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
