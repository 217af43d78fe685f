"""StarlingX application tests: the plugins of python-k8sapp-portieris against the sysinv double.

The double (tests/sysinv_double) provides the `sysinv` package the plugins import; it is put on
sys.path here, before any test module imports the plugins.
"""

from __future__ import annotations

import sys
from pathlib import Path

SYSINV_DOUBLE = Path(__file__).resolve().parents[1] / "sysinv_double"
if str(SYSINV_DOUBLE) not in sys.path:
    sys.path.insert(0, str(SYSINV_DOUBLE))
