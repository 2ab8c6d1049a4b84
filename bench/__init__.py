"""The benchmark: what the token proxy saves and costs, side by side with the alternatives.

``python -m bench`` (``make bench``) runs six measurements against moto's server and the local
issuer on loopback, prints a table and writes one JSON object with every figure. See
bench/README.md for the model behind each figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SRC_DIR = REPO_ROOT / "src"

# The handler's package sits in src/, as it sits at the root of the Lambda artifact;
# ``python -m bench`` runs from the repository root, where only bench/ and local/ are importable.
if str(SRC_DIR) not in sys.path:
    sys.path.insert(0, str(SRC_DIR))
