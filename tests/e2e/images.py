"""Tiny images that really run: busybox (Debian's busybox-static) plus a seed file.

``busybox_image_dir`` writes a Docker schema2 image as a skopeo ``dir:`` layout, like
``tests.fixtures.registry.build_image_dir``, but with a layer a container can execute:
``/bin/busybox`` and the applets the tests call. The same seed gives the same digest.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

from tests.fixtures.registry import ImageDir, sha256_hex, write_image_dir

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "sleep", "cat", "echo", "ls", "true")
# The kubelet's pod sandbox ("pause"): it only has to stay alive.
PAUSE_COMMAND = ("/bin/sleep", "2147483647")


def _tar(entries: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def busybox_layer() -> bytes:
    """An uncompressed tar: /bin/busybox, its applets as symlinks, an empty /tmp."""
    if not BUSYBOX.exists():
        raise FileNotFoundError(f"{BUSYBOX} is missing: apt-get install busybox-static")
    binary = BUSYBOX.read_bytes()
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name in ("bin", "tmp"):
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
        entries.append((info, None))
    info = tarfile.TarInfo("bin/busybox")
    info.size, info.mode = len(binary), 0o755
    entries.append((info, binary))
    for applet in APPLETS:
        link = tarfile.TarInfo(f"bin/{applet}")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        entries.append((link, None))
    return _tar(entries)


def seed_layer(seed: str) -> bytes:
    data = f"{seed}\n".encode()
    info = tarfile.TarInfo("etc/portieris-test-seed")
    info.size, info.mode = len(data), 0o644
    directory = tarfile.TarInfo("etc")
    directory.type, directory.mode = tarfile.DIRTYPE, 0o755
    return _tar([(directory, None), (info, data)])


def busybox_image_dir(
    path: Path | str,
    seed: str = "0",
    command: Sequence[str] = ("/bin/sleep", "3600"),
) -> ImageDir:
    """A runnable image (busybox layer + seed layer) as a skopeo ``dir:`` layout."""
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    tars = [busybox_layer(), seed_layer(seed)]
    layers = [gzip.compress(t, mtime=0) for t in tars]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {
                "Entrypoint": list(command),
                "Env": ["PATH=/bin"],
                "Labels": {"io.portieris.test.seed": seed},
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha256_hex(t) for t in tars]},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return write_image_dir(d, config, layers)
