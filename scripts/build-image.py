#!/usr/bin/env python3
"""Build the webhook image as an OCI archive without any container registry.

    python3 scripts/build-image.py [--python VENV_PYTHON] [--output dist/...oci.tar]

Two layers, each cached under ${PORTIERIS_CACHE_DIR:-~/.cache/portieris}/image:
  1. a Debian root filesystem made by mmdebstrap (variant "essential" plus python3,
     gpg and ca-certificates; no documentation, no apt), rebuilt only when the
     package list changes;
  2. the portieris-webhook wheel and its dependencies, installed by pip inside that
     root filesystem (so the interpreter and shebangs are the image's own),
     rebuilt only when the package's sources change.
The image configuration (user, entrypoint, environment, ports, labels) is read from
portieris-webhook/Containerfile, so both builds give the same image. umoci assembles
the OCI layout; the archive is a tar of it (skopeo's and containerd's
``oci-archive`` format). The last line of stdout is ``image=<path> size=<bytes>``.

Only the standard library is used; needs root (mmdebstrap, chroot), mmdebstrap and umoci.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "portieris-webhook"
CONTAINERFILE = PACKAGE_DIR / "Containerfile"
SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "gpg", "ca-certificates")
# Paths dpkg never unpacks: documentation and translations nobody reads in a container.
DPKG_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
)
# Keep the copyright files (licences travel with the binaries).
DPKG_INCLUDES = ("/usr/share/doc/*/copyright",)
# The image is one fixed moment: file times and history never depend on the build time.
EPOCH = 0
TAG = "latest"


def log(message: str) -> None:
    print(f"build-image: {message}", file=sys.stderr, flush=True)


def run(*argv: str | Path, cwd: Path | None = None) -> None:
    log("$ " + shlex.join(str(a) for a in argv))
    subprocess.run([str(a) for a in argv], cwd=cwd, check=True, stdout=sys.stderr)


# --------------------------------------------------------------------------- Containerfile


@dataclass
class ImageConfig:
    """The final stage of the Containerfile, as far as the image's configuration goes."""

    user: str = ""
    entrypoint: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


def containerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line:
            keyword, _, args = line.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def _pairs(args: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(args))


def image_config(text: str) -> ImageConfig:
    """The configuration the Containerfile's last stage gives the image."""
    config = ImageConfig()
    for keyword, args in containerfile_instructions(text):
        if keyword == "FROM":
            config = ImageConfig()
        elif keyword == "USER":
            config.user = args
        elif keyword == "ENTRYPOINT":
            config.entrypoint = json.loads(args)
        elif keyword == "ENV":
            config.env.update(_pairs(args))
        elif keyword == "EXPOSE":
            config.ports.extend(p if "/" in p else f"{p}/tcp" for p in args.split())
        elif keyword == "LABEL":
            config.labels.update(_pairs(args))
    if not config.user or not config.entrypoint:
        raise SystemExit(f"{CONTAINERFILE}: the last stage must set USER and ENTRYPOINT")
    return config


# --------------------------------------------------------------------------- cache keys


def digest_of(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def package_sources() -> list[Path]:
    files = [PACKAGE_DIR / "pyproject.toml", PACKAGE_DIR / "README.md"]
    files += sorted(
        p
        for p in (PACKAGE_DIR / "portieris_webhook").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    return files


def sources_key(constraints: bytes) -> str:
    parts = [constraints, Path(__file__).read_bytes()]
    for path in package_sources():
        parts += [str(path.relative_to(ROOT)).encode(), path.read_bytes()]
    return digest_of(*parts)


def base_key() -> str:
    recipe = json.dumps([SUITE, DEBIAN_PACKAGES, DPKG_EXCLUDES, DPKG_INCLUDES, EPOCH, 3])
    return digest_of(recipe.encode())


# --------------------------------------------------------------------------- layers


def build_base(out: Path) -> None:
    """Layer 1: the Debian root filesystem (a tar made by mmdebstrap)."""
    hooks = [
        # No package manager state or caches in the image; it is never updated in place.
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old '
        '"$1"/var/log/* "$1"/var/lib/dpkg/*-old',
        # The user of the Containerfile (numeric 1000:1000), HOME and TMPDIR on /tmp.
        "echo 'portieris:x:1000:1000:portieris webhook:/tmp:/usr/sbin/nologin' >> \"$1\"/etc/passwd",
        "echo 'portieris:x:1000:' >> \"$1\"/etc/group",
    ]
    argv: list[str | Path] = [
        "mmdebstrap",
        "--variant=essential",
        "--include=" + ",".join(DEBIAN_PACKAGES),
        "--aptopt=Acquire::Languages none",
        # /bin -> usr/bin made by mmdebstrap itself: no usrmerge package, which pulls in perl.
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    ]
    for path in DPKG_EXCLUDES:
        argv.append(f"--dpkgopt=path-exclude={path}")
    for path in DPKG_INCLUDES:
        argv.append(f"--dpkgopt=path-include={path}")
    for hook in hooks:
        argv.append(f"--customize-hook={hook}")
    argv += [SUITE, out]
    env_epoch = {"SOURCE_DATE_EPOCH": str(EPOCH)}
    log("$ " + shlex.join(str(a) for a in argv))
    subprocess.run(
        [str(a) for a in argv], check=True, stdout=sys.stderr, env={**os.environ, **env_epoch}
    )


def build_wheels(python: str, wheel_dir: Path, constraints: Path) -> None:
    """The package's wheel, its dependencies' wheels (versions of ``constraints``) and pip's."""
    run(
        python, "-m", "pip", "wheel", "--quiet", "--wheel-dir", wheel_dir,
        "--constraint", constraints, PACKAGE_DIR,
    )  # fmt: skip
    run(python, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", wheel_dir, "pip")


def build_app_layer(base_tar: Path, wheel_dir: Path, out: Path, work: Path) -> None:
    """Layer 2: pip installs the wheels inside the base root fs; the new files are the layer."""
    rootfs = work / "rootfs"
    rootfs.mkdir()
    run("tar", "-xf", base_tar, "-C", rootfs)
    shutil.copytree(wheel_dir, rootfs / "wheels")
    pip = next((rootfs / "wheels").glob("pip-*.whl")).name
    # pip runs from its own wheel (no pip in the image); everything it installs lands in
    # /usr/local (Debian's scheme for local packages, on the image's sys.path), empty in
    # the base layer, so that tree is the layer. No PIP_* settings of the host leak in.
    # --break-system-packages: the image has no Debian Python packages for pip to break.
    chroot = shutil.which("chroot") or "chroot"
    argv = [
        chroot, rootfs, "/usr/bin/python3", f"/wheels/{pip}/pip", "install", "--quiet",
        "--no-index", "--find-links=/wheels", "--no-cache-dir", "--root-user-action=ignore",
        "--break-system-packages", "--no-compile",
        "--no-warn-script-location", "--disable-pip-version-check", "portieris-webhook",
    ]  # fmt: skip
    # Byte code checked by hash, not by the source's mtime: the layer's files all carry
    # one fixed time, so mtime-stamped .pyc files would look stale and be recompiled on
    # every start (the root fs is read-only). The image never changes: unchecked-hash.
    compile_argv = [
        chroot, rootfs, "/usr/bin/python3", "-m", "compileall", "-q", "-f", "-j", "0",
        "--invalidation-mode", "unchecked-hash", "/usr/local/lib",
    ]  # fmt: skip
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # only compileall writes byte code
    for command in (argv, compile_argv):
        log("$ " + shlex.join(str(a) for a in command))
        subprocess.run([str(a) for a in command], check=True, stdout=sys.stderr, env=env)
    deterministic_tar(rootfs / "usr" / "local", out, prefix="usr/local")


def deterministic_tar(directory: Path, out: Path, prefix: str = "") -> None:
    """A tar of ``directory`` (its entries named ``prefix/...``) that depends only on content."""
    paths = sorted(directory.rglob("*"))
    if prefix:
        paths.insert(0, directory)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            name = (
                str(Path(prefix, path.relative_to(directory)))
                if prefix
                else str(path.relative_to(directory))
            )
            info = tar.gettarinfo(str(path), arcname=name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)


# --------------------------------------------------------------------------- assembly


def assemble(layers: list[Path], config: ImageConfig, version: str, out: Path, work: Path) -> None:
    layout = work / "oci"
    image = f"{layout}:{TAG}"
    created = "1970-01-01T00:00:00Z"
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", image)
    for layer in layers:
        run(
            "umoci", "raw", "add-layer", "--image", image, "--history.created", created,
            "--history.created_by", f"scripts/build-image.py: {layer.name}", layer,
        )  # fmt: skip
    argv: list[str | Path] = [
        "umoci", "config", "--image", image, "--no-history",
        "--created", created, "--config.user", config.user,
        "--config.workingdir", "/", "--architecture", "amd64", "--os", "linux",
    ]  # fmt: skip
    for word in config.entrypoint:
        argv += ["--config.entrypoint", word]
    # What a base image's ENV would give (the Containerfile's base sets PATH the same way).
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **config.env}
    for key, value in env.items():
        argv += ["--config.env", f"{key}={value}"]
    for port in config.ports:
        argv += ["--config.exposedports", port]
    labels = {**config.labels, "org.opencontainers.image.version": version}
    for key, value in labels.items():
        argv += ["--config.label", f"{key}={value}"]
    run(*argv)
    run("umoci", "gc", "--layout", layout)
    deterministic_tar(layout, out)


def package_version() -> str:
    for line in (PACKAGE_DIR / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    raise SystemExit("no version in portieris-webhook/pyproject.toml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="python with pip (a venv)")
    parser.add_argument("--output", type=Path, help="archive path (default dist/...oci.tar)")
    args = parser.parse_args()
    for tool in ("mmdebstrap", "umoci", "chroot"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: run scripts/install-system-deps.sh")
    if os.geteuid() != 0:
        raise SystemExit("building the image needs root (mmdebstrap, chroot)")

    version = package_version()
    out: Path = args.output or ROOT / "dist" / f"portieris-webhook-{version}.oci.tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("PORTIERIS_CACHE_DIR", Path.home() / ".cache" / "portieris"))
    cache = cache / "image"
    cache.mkdir(parents=True, exist_ok=True)
    config = image_config(CONTAINERFILE.read_text())

    freeze = subprocess.run(
        [args.python, "-m", "pip", "freeze", "--exclude-editable", "--all"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    constraints_text = "".join(
        line + "\n" for line in sorted(freeze.splitlines()) if "==" in line and "@" not in line
    ).encode()
    base = cache / f"base-{base_key()}.tar"
    app = cache / f"app-{sources_key(constraints_text)}.tar"
    config_key = digest_of(base.name.encode(), app.name.encode(), CONTAINERFILE.read_bytes())
    archive = cache / f"portieris-webhook-{config_key}.oci.tar"

    # One build at a time per cache (worktrees and test sessions share it).
    lock = (cache / ".lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    with tempfile.TemporaryDirectory(prefix="portieris-image-", dir=cache) as tmp:
        work = Path(tmp)
        if not base.exists():
            log(f"building the Debian root fs ({base.name})")
            build_base(work / "base.tar")
            (work / "base.tar").replace(base)
        if not app.exists():
            log(f"installing the package and its dependencies ({app.name})")
            constraints = work / "constraints.txt"
            constraints.write_bytes(constraints_text)
            wheels = work / "wheels"
            wheels.mkdir()
            build_wheels(args.python, wheels, constraints)
            build_app_layer(base, wheels, work / "app.tar", work)
            (work / "app.tar").replace(app)
        if not archive.exists():
            log("assembling the OCI image")
            assemble([base, app], config, version, work / "image.oci.tar", work)
            (work / "image.oci.tar").replace(archive)
    for stale in cache.glob("*.tar"):
        if stale not in (base, app, archive):
            stale.unlink()  # an older build's layer or archive
    if not out.exists() or out.stat().st_ino != archive.stat().st_ino:
        out.unlink(missing_ok=True)
        try:
            os.link(archive, out)
        except OSError:
            shutil.copyfile(archive, out)
    lock.close()
    size = out.stat().st_size
    unpacked = base.stat().st_size + app.stat().st_size
    print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: "
          f"{size / 1e6:.1f} MB (layers uncompressed {unpacked / 1e6:.1f} MB)")  # fmt: skip
    print(f"image={out} size={size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
