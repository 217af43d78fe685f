#!/usr/bin/env bash
# A cached virtualenv in which StarlingX's real sysinv imports and runs, for tests/sysinv_real.
#
#   scripts/sysinv-venv.sh 3.9|3.13      (prints the venv's path on stdout, progress on stderr)
#
# The interpreter is pyenv's (PYENV_ROOT, `pyenv root` or ~/.pyenv). The venv holds the package
# set of <starlingx>/requirements-py<ver>.txt, pytest, and the pieces that stand in for what a
# controller has at the boundary (see <starlingx>/SOURCES.md): the six source folders on the path
# (a .pth), a no-op `fm_core` module (fault management's C extension) and a sysinv-1.0.dist-info
# carrying sysinv's own entry points. Nothing inside sysinv is replaced.
# <starlingx> is $PORTIERIS_STARLINGX_DIR, else ../shared/starlingx beside the repository.
# The venv lives in ${PORTIERIS_CACHE_DIR:-~/.cache/portieris}/sysinv-venv-<ver>-<hash>; the hash
# covers the requirements, this script and the sources' location, so a change builds a new one.
set -euo pipefail

say() { echo "sysinv-venv: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ $# -eq 1 ] || die "usage: $0 3.9|3.13"
ver=$1
case $ver in 3.9 | 3.13) ;; *) die "unsupported Python $ver (3.9 or 3.13)" ;; esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
stx=${PORTIERIS_STARLINGX_DIR:-$repo/../shared/starlingx}
[ -d "$stx" ] || die "no StarlingX sources at $stx (set PORTIERIS_STARLINGX_DIR)"
stx=$(cd "$stx" && pwd)
requirements=$stx/requirements-py$ver.txt
[ -f "$requirements" ] || die "missing $requirements"

# The folders that hold the importable packages sysinv needs (see SOURCES.md).
sources=(
	config/sysinv/sysinv/sysinv
	config/tsconfig/tsconfig
	fault/fm-api/source
	fault/python-fmclient/fmclient
	utilities/ceph/python-cephclient/python-cephclient
	utilities/utilities/platform-util/platform-util
)
for s in "${sources[@]}"; do [ -d "$stx/$s" ] || die "missing source folder $stx/$s"; done

hash=$({ cat "$requirements" "${BASH_SOURCE[0]}"; echo "$stx"; } | sha256sum | cut -c1-12)
cache=${PORTIERIS_CACHE_DIR:-$HOME/.cache/portieris}
venv=$cache/sysinv-venv-$ver-$hash

if [ -f "$venv/.complete" ]; then
	say "using $venv"
	echo "$venv"
	exit 0
fi

find_python() {
	local roots=() root candidate
	[ -n "${PYENV_ROOT:-}" ] && roots+=("$PYENV_ROOT")
	command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root)")
	roots+=("$HOME/.pyenv")
	for root in "${roots[@]}"; do
		# The newest installed patch release of $ver.
		candidate=$(ls -d "$root"/versions/"$ver".*/bin/python"$ver" 2>/dev/null | sort -V | tail -n1)
		if [ -n "$candidate" ] && [ -x "$candidate" ]; then
			echo "$candidate"
			return 0
		fi
	done
	return 1
}
python=$(find_python) ||
	die "no pyenv Python $ver (looked in \$PYENV_ROOT, \`pyenv root\`, ~/.pyenv): install it with \`pyenv install $ver\`"

mkdir -p "$cache"
exec 9>"$venv.lock"
flock 9 # one builder at a time; a waiting one finds the venv complete
if [ -f "$venv/.complete" ]; then
	say "using $venv (built meanwhile)"
	echo "$venv"
	exit 0
fi

say "building $venv with $python"
rm -rf "$venv"
"$python" -m venv "$venv"
say "installing $(grep -c . "$requirements") pinned packages from $requirements and pytest"
# pytest is pinned in the 3.9 set; the 3.13 set has none of it.
pytest_pin=$(grep -i '^pytest==' "$requirements" || echo 'pytest==8.4.2')
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q -r "$requirements" "$pytest_pin"

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

say "adding the StarlingX source folders to the path ($site/starlingx-sources.pth)"
for s in "${sources[@]}"; do echo "$stx/$s"; done >"$site/starlingx-sources.pth"

say "adding fm_core, a no-op stand-in for fault management's C extension"
cat >"$site/fm_core.py" <<'PY'
"""Stand-in for fm-common's C extension (not on PyPI): every call does nothing."""


def set(*args, **kwargs):
    return None


def clear(*args, **kwargs):
    return None


def clear_all(*args, **kwargs):
    return None


def get(*args, **kwargs):
    return None


def get_by_aid(*args, **kwargs):
    return None


def get_by_eid(*args, **kwargs):
    return None


def get_by_aid_eid(*args, **kwargs):
    return None
PY

say "adding sysinv-1.0.dist-info with sysinv's own entry points (from its setup.cfg)"
dist=$site/sysinv-1.0.dist-info
mkdir -p "$dist"
printf 'Metadata-Version: 2.1\nName: sysinv\nVersion: 1.0\n' >"$dist/METADATA"
# The plugin groups sysinv's PluginManager reads, as an installed sysinv declares them.
awk '
	/^\[/ { keep = 0 }
	/^systemconfig\.(fluxcd\.kustomize_ops|app_lifecycle) *=/ { keep = 1; sub(/ *=.*/, ""); print "[" $0 "]"; next }
	keep && /^[ \t]+[^ \t]/ { sub(/^[ \t]+/, ""); print; next }
	keep && /^[^ \t]/ { keep = 0 }
' "$stx/config/sysinv/sysinv/sysinv/setup.cfg" >"$dist/entry_points.txt"
grep -q '^generic = sysinv.helm.lifecycle_generic:' "$dist/entry_points.txt" ||
	die "sysinv's setup.cfg has no systemconfig.app_lifecycle generic entry point"
printf 'sysinv\n' >"$dist/top_level.txt"
: >"$dist/RECORD"

say "checking that sysinv's conductor imports (with the sysinv user looked up as the tests do)"
locks=$(mktemp -d)
trap 'rm -rf "$locks"' EXIT
PBR_VERSION=1.0.0 TOX_WORK_DIR=$locks "$venv/bin/python" - >&2 <<'PY' || die "sysinv does not import in $venv"
import grp
import pwd
from unittest import mock

# A controller has a sysinv user and group; sysinv looks them up when it is imported.
real_getpwnam = pwd.getpwnam
mock.patch("pwd.getpwnam", lambda n: real_getpwnam("root" if n == "sysinv" else n)).start()
mock.patch("grp.getgrnam", return_value=mock.Mock(gr_gid=0)).start()
import sysinv.conductor.manager  # noqa: E402,F401
import sysinv.helm.helm  # noqa: E402,F401
PY

touch "$venv/.complete"
say "ready: $venv"
echo "$venv"
