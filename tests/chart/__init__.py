"""Packaging tests: the helm chart, the container image recipe, the StarlingX app."""
