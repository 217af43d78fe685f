#!/usr/bin/env bash
# Build the Debian packages of the application into dist/, as StarlingX's build
# (build-tools/stx: discovery, build-pkgs, debrepack) does for the Debian codename $DIST
# (bullseye, the default, or trixie):
#   1. the package directories listed in debian_<codename>_pkg_dirs_std (for bullseye
#      also the old names debian_pkg_dirs_std, then debian_pkg_dirs), in the listed order;
#   2. each one's meta_data.yaml (debname, debver, src_path, revision) and deb_folder/ in
#      <dir>/debian/<codename>/ or <dir>/debian/all/ (bullseye: first <dir>/debian/);
#   3. src_path (relative to the package directory) copied to <debname>-<upstream version>/,
#      deb_folder/ to its debian/;
#   4. the package versioned <debver><$STX_DIST, default .stx>.<revision>, the revision being
#      stx_patch plus the commits counted by GITREVCOUNT (scripts/build-stx-app.sh);
#   5. dpkg-buildpackage -b -us -uc, with SW_VERSION (scripts/build-stx-app.sh
#      --print-sw-version) in the environment, as /etc/build.info has it in StarlingX's build.
# Build dependencies that this repository builds itself (helm, portieris-helm,
# python3-k8sapp-portieris-wheels) are not installed into the system: the helm binary comes
# from scripts/build-controlplane.sh, and the chart and wheel from the packages just built,
# unpacked into a scratch root and passed to the rules (HELM, HELM_FOLDER, PLUGINS_FOLDER).
# Every other build dependency is checked with dpkg-checkbuilddeps.
# stdout: the paths of the .deb files. Idempotent: a rerun rebuilds from scratch in
# build/debs/ and replaces the .deb files in dist/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The version functions: sw_version, package_folder, package_revision, meta_value.
# shellcheck source=build-stx-app.sh
source "$ROOT/scripts/build-stx-app.sh"
OUT="${DIST_DIR:-$ROOT/dist}"
WORK="$ROOT/build/debs"
CODENAME="${DIST:-bullseye}"
PROVIDED_HERE=(helm portieris-helm python3-k8sapp-portieris-wheels)

log() { echo "build-debs: $*" >&2; }
fail() { log "$*"; exit 1; }

# The package list of the codename, as build-tools/stx/discovery.py chooses it.
pkg_dirs_file() {
    local name candidates=("debian_${CODENAME}_pkg_dirs_std")
    [[ "$CODENAME" == bullseye ]] && candidates=(debian_pkg_dirs_std debian_bullseye_pkg_dirs_std debian_pkg_dirs)
    for name in "${candidates[@]}"; do
        [[ -f "$ROOT/$name" ]] && { echo "$ROOT/$name"; return 0; }
    done
    fail "no package list for $CODENAME (${candidates[*]})"
}

# The Build-Depends of a control file, less the packages built here, as one line.
debian_build_deps() {
    awk '/^Build-Depends:/ { on = 1; sub(/^Build-Depends:/, ""); print; next }
         on && /^[ \t]/ { print; next }
         { on = 0 }' "$1" | tr -d '\n' | tr ',' '\n' | sed 's/^ *//; s/ *$//' \
        | while read -r dep; do
            name="${dep%% *}"
            [[ -z "$name" || " ${PROVIDED_HERE[*]} " == *" $name "* ]] || echo "$dep"
        done | paste -sd, - | sed 's/,/, /g'
}

helm="$(bash "$ROOT/scripts/build-controlplane.sh" | awk -F= '$1 == "helm" { print $2 }')"
[[ -x "$helm" ]] || fail "no helm from scripts/build-controlplane.sh"
dist_suffix="${STX_DIST:-.stx}"
release="$(sw_version)"
pkg_list="$(pkg_dirs_file)"

rm -rf "$WORK"
mkdir -p "$WORK/root" "$OUT"
SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)"
export SOURCE_DATE_EPOCH

built=()
while read -r pkgdir; do
    [[ -z "$pkgdir" || "$pkgdir" == \#* ]] && continue
    folder="$(package_folder "$pkgdir")"
    metafile="$folder/meta_data.yaml"
    debname="$(meta_value "$metafile" debname)"
    debver="$(meta_value "$metafile" debver)"
    src_path="$(meta_value "$metafile" src_path)"
    revision="$(package_revision "$pkgdir")"
    [[ -n "$debname" && -n "$debver" && -n "$src_path" ]] \
        || fail "$metafile: debname, debver and src_path are required"
    version="$debver$dist_suffix.$revision"
    srcdir="$WORK/$debname/$debname-${debver%-*}"
    src="$ROOT/$pkgdir/$src_path"
    [[ -d "$src" ]] || fail "$metafile: src_path $src_path is not a directory"

    log "building $debname $version ($CODENAME) from $src_path"
    mkdir -p "$srcdir"
    tar -C "$src" --exclude=build --exclude='*.egg-info' --exclude=__pycache__ -cf - . \
        | tar -C "$srcdir" -xf -
    mkdir -p "$srcdir/debian"
    cp -a "$folder/deb_folder/." "$srcdir/debian/"
    sed -i "1s/^$debname ([^)]*)/$debname ($version)/" "$srcdir/debian/changelog"
    [[ "$(cd "$srcdir" && dpkg-parsechangelog -S Version)" == "$version" ]] \
        || fail "$debname: debian/changelog must start with a $debname entry"

    (cd "$srcdir" && PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-checkbuilddeps -d "$(debian_build_deps debian/control)" debian/control) \
        || fail "$debname: missing build dependencies (scripts/install-system-deps.sh installs them)"
    (
        cd "$srcdir"
        # Debian's own tools first, as in a Debian build chroot.
        PATH=/usr/sbin:/usr/bin:/sbin:/bin SW_VERSION="$release" \
            HELM="$helm" HELM_FOLDER="$WORK/root/usr/lib/helm" PLUGINS_FOLDER="$WORK/root/plugins" \
            dpkg-buildpackage -b -us -uc -d
    ) >"$WORK/$debname.log" 2>&1 || { tail -40 "$WORK/$debname.log" >&2; fail "$debname: dpkg-buildpackage failed (log: $WORK/$debname.log)"; }

    for deb in "$WORK/$debname"/*.deb; do
        # The next packages' build dependencies, as if installed.
        dpkg-deb -x "$deb" "$WORK/root"
        name="$(dpkg-deb -f "$deb" Package)"
        rm -f "$OUT/${name}_"*.deb
        cp "$deb" "$OUT/"
        built+=("$OUT/$(basename "$deb")")
    done
done <"$pkg_list"

printf '%s\n' "${built[@]}"
