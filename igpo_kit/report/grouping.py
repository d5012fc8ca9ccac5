"""How runs are grouped in reports: which keys only change the seed (averaged over) and the method label.

Sweeps use the same two helpers to label their cells, so a sweep's manifest and its report agree.
"""

from __future__ import annotations

SEED_KEYS = ("SEED",)


def is_seed_key(key: str) -> bool:
    """A key that only changes the random seed (averaged over in reports)."""
    return key in SEED_KEYS or key.rsplit(".", 1)[-1].lower() == "seed"


def method_label(arm: str | None, keys: dict[str, str], short: dict[str, str]) -> str:
    """What a report compares: the arm plus every non-seed axis value (seeds are averaged over)."""
    parts = [arm] if arm else []
    parts += [f"{short.get(k, k)}={v}" for k, v in keys.items() if not is_seed_key(k)]
    return " ".join(parts) or "base"


__all__ = ["SEED_KEYS", "is_seed_key", "method_label"]
