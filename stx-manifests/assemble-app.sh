#!/usr/bin/env bash
# Assemble the StarlingX application tarball from this directory (metadata.yaml and
# fluxcd-manifests/), one packaged helm chart and the sysinv plugin wheel(s):
#
#   metadata.yaml            placeholders filled in: name, version, helm repository
#   charts/<chart>-<v>.tgz   the chart; the HelmRelease is set to its version <v>
#   fluxcd-manifests/
#   plugins/*.whl
#   checksum.md5             md5sum of every other file, as sysinv checks it at upload
#
# Used by `make stx-app` (scripts/build-stx-app.sh) and by the stx-portieris-helm
# Debian package. The tarball's entries are sorted, owned by root, and dated
# SOURCE_DATE_EPOCH (0 when unset), so it does not depend on who built it or when.
set -euo pipefail

usage() {
    echo "usage: $0 --charts DIR --plugins DIR --version APP_VERSION --output FILE.tgz" \
        "[--name portieris] [--helm-repo stx-platform]" >&2
    exit 2
}

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
name=portieris
helm_repo=stx-platform
charts="" plugins="" version="" output=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --charts) charts="$2"; shift 2 ;;
        --plugins) plugins="$2"; shift 2 ;;
        --version) version="$2"; shift 2 ;;
        --output) output="$2"; shift 2 ;;
        --name) name="$2"; shift 2 ;;
        --helm-repo) helm_repo="$2"; shift 2 ;;
        *) usage ;;
    esac
done
[[ -n "$charts" && -n "$plugins" && -n "$version" && -n "$output" ]] || usage

fail() { echo "assemble-app: $*" >&2; exit 1; }

# sysinv and the bootstrap playbook take the application name from the tarball name
# <name>-<version>.tgz by dropping the last two '-' fields: the version has exactly one '-'.
[[ "$version" =~ ^[A-Za-z0-9.+~]+-[A-Za-z0-9.+~]+$ ]] \
    || fail "version '$version' must be <release>-<revision> (exactly one '-')"

shopt -s nullglob
chart_files=("$charts"/"$name"-*.tgz)
wheels=("$plugins"/*.whl)
shopt -u nullglob
[[ ${#chart_files[@]} -eq 1 ]] \
    || fail "expected exactly one $name-<version>.tgz chart in $charts, found ${#chart_files[@]}"
[[ ${#wheels[@]} -ge 1 ]] || fail "no plugin wheel (*.whl) in $plugins"

chart="${chart_files[0]}"
chart_version="$(tar -xzOf "$chart" "$name/Chart.yaml" | awk '$1 == "version:" { print $2; exit }' | tr -d "\"'")"
[[ -n "$chart_version" ]] || fail "no version in $name/Chart.yaml of $chart"
[[ "$(basename "$chart")" == "$name-$chart_version.tgz" ]] \
    || fail "$chart holds chart version $chart_version; expected file name $name-$chart_version.tgz"

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

cp "$SRC/metadata.yaml" "$staging/"
cp -R "$SRC/fluxcd-manifests" "$staging/"
mkdir "$staging/charts" "$staging/plugins"
cp "$chart" "$staging/charts/"
cp "${wheels[@]}" "$staging/plugins/"

sed -i -e "s/APP_REPLACE_NAME/$name/" -e "s/APP_REPLACE_VERSION/$version/" \
    -e "s/HELM_REPLACE_REPO/$helm_repo/" "$staging/metadata.yaml"
grep -rl --include=helmrelease.yaml REPLACE_HELM_CHART_VERSION "$staging/fluxcd-manifests" \
    | xargs -r sed -i "s/REPLACE_HELM_CHART_VERSION/$chart_version/"
if grep -rq 'REPLACE' "$staging/metadata.yaml" "$staging/fluxcd-manifests"; then
    fail "placeholders left unfilled: $(grep -rl REPLACE "$staging")"
fi

(cd "$staging" && find . -type f ! -name '*.md5' -print0 | LC_ALL=C sort -z | xargs -0 md5sum > checksum.md5)

epoch="${SOURCE_DATE_EPOCH:-0}"
mkdir -p "$(dirname "$output")"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    --mode='u+rwX,go+rX,go-w' -cf - -C "$staging" . | gzip -n -9 > "$output.tmp"
mv -f "$output.tmp" "$output"
echo "$output"
