# StarlingX's Debian rules call setup.py (install, bdist_wheel); the metadata is in setup.cfg.
# The version is the build's: StarlingX's rules export PBR_VERSION=<SW_VERSION>.<revision>
# (so do debian/python3-k8sapp-portieris and scripts/build-stx-app.sh); any other build,
# such as a development install, is 0.0.0.
import os

import setuptools

setuptools.setup(version=os.environ.get("PBR_VERSION") or "0.0.0")
