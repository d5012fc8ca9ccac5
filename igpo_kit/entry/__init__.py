"""Root injection sites: one plain function per job kind, wired by gin recipes (``entry.evaluate`` ...).

Each takes the whole experiment as arguments (components built from the registry, plain values) plus
``run``, the run directory record, which the runner passes. Importing this module is cheap (no torch).
"""

from igpo_kit.entry.evaluate import evaluate
from igpo_kit.entry.quickstart import quickstart
from igpo_kit.entry.rewrite import rewrite
from igpo_kit.entry.rl import rl
from igpo_kit.entry.sft import sft

JOBS = ("evaluate", "rl", "sft", "rewrite", "quickstart")

__all__ = ["JOBS", "evaluate", "quickstart", "rewrite", "rl", "sft"]
