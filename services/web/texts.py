"""Every text a person reads, from one catalogue per language (catalogue/<lang>.yaml).

Keys are dotted paths; a missing key is an error at start-up for the keys the code names
(`require`), and shows as the key itself otherwise, so a gap is visible rather than silent.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


class Texts:
    def __init__(self, language: str = "sv") -> None:
        raw = resources.files("services.web").joinpath("catalogue", f"{language}.yaml").read_text("utf-8")
        self.language = language
        self._flat: dict[str, str] = {}
        self._flatten("", yaml.safe_load(raw))

    def _flatten(self, prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                self._flatten(f"{prefix}{key}.", value)
        else:
            self._flat[prefix[:-1]] = str(node)

    def __call__(self, key: str, **values: Any) -> str:
        text = self._flat.get(key, key)
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self._flat

    def keys(self, prefix: str) -> list[str]:
        """The last part of every key under `prefix`, in catalogue order."""
        start = f"{prefix}."
        return [k[len(start) :] for k in self._flat if k.startswith(start) and "." not in k[len(start) :]]
