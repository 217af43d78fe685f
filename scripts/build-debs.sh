#!/usr/bin/env bash
# Build the Debian packages listed in debian_pkg_dirs into dist/, as StarlingX's build
# (build-pkgs / debrepack) does for each package directory:
#   1. read <dir>/debian/meta_data.yaml (debname, debver, src_path, revision);
#   2. copy src_path to <debname>-<upstream version>/ and deb_folder/ to its debian/;
#   3. version the package <debver><dist>.<stx_patch> (dist: $STX_DIST, default .stx);
#   4. dpkg-buildpackage -b -us -uc.
# Packages are built in the listed order. Build dependencies that this repository builds
# itself (helm, portieris-helm, python3-k8sapp-portieris-wheels) are not installed into
# the system: the helm binary comes from scripts/build-controlplane.sh, and the chart
# and wheel from the packages just built, unpacked into a scratch root and passed to the
# rules (HELM, HELM_FOLDER, PLUGINS_FOLDER). Every other build dependency is checked
# with dpkg-checkbuilddeps.
# stdout: the paths of the .deb files. Idempotent: a rerun rebuilds from scratch in
# build/debs/ and replaces the .deb files in dist/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="${DIST_DIR:-$ROOT/dist}"
WORK="$ROOT/build/debs"
PROVIDED_HERE=(helm portieris-helm python3-k8sapp-portieris-wheels)

log() { echo "build-debs: $*" >&2; }
fail() { log "$*"; exit 1; }

meta() { awk -v k="$2:" '$1 == k { print $2; exit }' "$1"; }

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

rm -rf "$WORK"
mkdir -p "$WORK/root" "$DIST"
SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)"
export SOURCE_DATE_EPOCH

built=()
while read -r pkgdir; do
    [[ -z "$pkgdir" || "$pkgdir" == \#* ]] && continue
    metafile="$ROOT/$pkgdir/debian/meta_data.yaml"
    [[ -f "$metafile" ]] || fail "$pkgdir: no debian/meta_data.yaml"
    debname="$(meta "$metafile" debname)"
    debver="$(meta "$metafile" debver)"
    src_path="$(meta "$metafile" src_path)"
    patch="$(meta "$metafile" stx_patch)"
    [[ -n "$debname" && -n "$debver" && -n "$src_path" && -n "$patch" ]] \
        || fail "$metafile: debname, debver, src_path and revision.stx_patch are required"
    version="$debver$dist_suffix.$patch"
    srcdir="$WORK/$debname/$debname-${debver%-*}"
    src="$ROOT/$pkgdir/$src_path"
    [[ -d "$src" ]] || fail "$metafile: src_path $src_path is not a directory"

    log "building $debname $version from $src_path"
    mkdir -p "$srcdir"
    tar -C "$src" --exclude=build --exclude='*.egg-info' --exclude=__pycache__ -cf - . \
        | tar -C "$srcdir" -xf -
    mkdir -p "$srcdir/debian"
    cp -a "$ROOT/$pkgdir/debian/deb_folder/." "$srcdir/debian/"
    sed -i "1s/^$debname ([^)]*)/$debname ($version)/" "$srcdir/debian/changelog"
    [[ "$(cd "$srcdir" && dpkg-parsechangelog -S Version)" == "$version" ]] \
        || fail "$debname: debian/changelog must start with a $debname entry"

    (cd "$srcdir" && PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-checkbuilddeps -d "$(debian_build_deps debian/control)" debian/control) \
        || fail "$debname: missing build dependencies (scripts/install-system-deps.sh installs them)"
    (
        cd "$srcdir"
        # Debian's own tools first, as in a Debian build chroot.
        PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            HELM="$helm" HELM_FOLDER="$WORK/root/usr/lib/helm" PLUGINS_FOLDER="$WORK/root/plugins" \
            dpkg-buildpackage -b -us -uc -d
    ) >"$WORK/$debname.log" 2>&1 || { tail -40 "$WORK/$debname.log" >&2; fail "$debname: dpkg-buildpackage failed (log: $WORK/$debname.log)"; }

    for deb in "$WORK/$debname"/*.deb; do
        # The next packages' build dependencies, as if installed.
        dpkg-deb -x "$deb" "$WORK/root"
        name="$(dpkg-deb -f "$deb" Package)"
        rm -f "$DIST/${name}_"*.deb
        cp "$deb" "$DIST/"
        built+=("$DIST/$(basename "$deb")")
    done
done <"$ROOT/debian_pkg_dirs"

printf '%s\n' "${built[@]}"
