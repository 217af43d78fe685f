# StarlingX's Debian rules call setup.py (install, bdist_wheel); the metadata is in setup.cfg.
import setuptools

setuptools.setup()
