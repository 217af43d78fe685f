"""Notary v1 / Docker Content Trust verification."""
