"""Data: the :class:`Example` record, located file/Hub readers, benchmark dataset factories and prompt templates.

Cheap to import: ``datasets`` is imported only when a Hub id or a parquet file is read. Public API::

    from igpo_kit.data import Example, DataError, read_rows, datasets, prompts
    examples = datasets.gsm8k(path="gsm8k_test.jsonl")      # or the registry: igpo_kit.components.dataset.gsm8k(...)
    messages = prompts.llada_reasoning().messages(examples[0])
"""

from igpo_kit.data import datasets, prompts
from igpo_kit.data.examples import Example
from igpo_kit.data.io import DataError, read_rows
from igpo_kit.data.prompts import Prompt

__all__ = ["Example", "DataError", "read_rows", "datasets", "prompts", "Prompt"]
