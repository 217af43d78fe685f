"""The StarlingX plugins run by the real sysinv (Python 3.9 and 3.13, `make sysinv-real`)."""
