"""One module per source dataset; importing this package registers every converter.

Find one by name with :func:`rsformat.converters.base.get_converter`.
"""

from __future__ import annotations

import importlib
import pkgutil

from rsformat.converters.base import CONVERTERS, ConversionReport, Converter, get_converter, register

__all__ = ["CONVERTERS", "ConversionReport", "Converter", "get_converter", "register"]

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
