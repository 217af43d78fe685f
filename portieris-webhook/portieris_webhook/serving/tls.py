"""Serving TLS with certificate rotation.

cert-manager rewrites the mounted certificate files in place. The serving
context's SNI callback hands each new handshake the newest context, so a
rotated certificate is used without a restart and open connections are untouched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl

from portieris_webhook.errors import ConfigurationError

LOG = logging.getLogger(__name__)


def _server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load TLS certificate {cert_file} with key {key_file}: {exc}"
        ) from exc
    return context


class ReloadingTLS:
    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self._stamp = self._file_stamp()
        self._current = _server_context(cert_file, key_file)
        self.context = _server_context(cert_file, key_file)
        self.context.sni_callback = self._pick_context
        self.reloads = 0

    def _pick_context(self, sslobj: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        sslobj.context = self._current

    def _file_stamp(self) -> tuple[float, ...]:
        try:
            return tuple(
                value
                for path in (self.cert_file, self.key_file)
                for value in (os.stat(path).st_mtime_ns, os.stat(path).st_size)
            )
        except OSError:
            return ()

    def reload_if_changed(self) -> bool:
        """Load the files again if they changed; keep the old certificate if the new one is unusable."""
        stamp = self._file_stamp()
        if not stamp or stamp == self._stamp:
            return False
        try:
            fresh = _server_context(self.cert_file, self.key_file)
        except ConfigurationError as exc:
            LOG.warning(
                "certificate files changed but cannot be used yet, keeping the old ones: %s", exc
            )
            return False
        self._current, self._stamp = fresh, stamp
        self.reloads += 1
        LOG.info("reloaded TLS certificate from %s", self.cert_file)
        return True

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
