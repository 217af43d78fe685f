"""Sigstore / cosign: signatures and attestations found by tag or referrer, verified offline."""
