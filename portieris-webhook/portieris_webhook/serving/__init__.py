"""Serving admissions: the aiohttp routes, connection phases and limits, TLS, metrics."""
