"""``python -m llm_memo``: the ``llm-memo`` command (see :mod:`llm_memo.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
