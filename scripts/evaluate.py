"""Evaluate fakewatch on labelled clips (formats.md sections 2 and 4).

python scripts/evaluate.py --clips DIR --gallery GALLERY_OR_INDEX --out OUT
python scripts/evaluate.py --clips DIR --alerts FILE --out OUT   # score another system's alerts
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
