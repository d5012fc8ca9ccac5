"""Sweeps: TOML specs (a base recipe and axes over gin bindings), expansion into content-addressed cells,
validation of every cell before anything runs, and running them (in process or as subprocesses).

Library code only (no Typer): the ``igpo-kit sweep`` command lives in :mod:`igpo_kit.cli.experiments`.
"""

from igpo_kit.sweep.run import (MANIFEST, PlannedCell, Sweep, default_sweep_dir, method_label, plan,
                                read_manifest, run_cells, run_status)
from igpo_kit.sweep.spec import (Arm, Axis, Cell, Spec, add_axes, expand, find_spec, gin_literal, inline_spec,
                                 is_seed_key, load_spec, parse_axis, short_keys)

__all__ = ["MANIFEST", "Arm", "Axis", "Cell", "PlannedCell", "Spec", "Sweep", "add_axes", "default_sweep_dir",
           "expand", "find_spec", "gin_literal", "inline_spec", "is_seed_key", "load_spec", "method_label",
           "parse_axis", "plan", "read_manifest", "run_cells", "run_status", "short_keys"]
