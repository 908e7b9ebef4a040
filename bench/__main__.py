"""``make bench``: run every benchmark that needs no argument, one after another."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

SKIP = {"results", "__main__"}


def main() -> None:
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name in SKIP:
            continue
        print(f"== bench.{module.name}", flush=True)
        importlib.import_module(f"bench.{module.name}").main()


if __name__ == "__main__":
    main()
