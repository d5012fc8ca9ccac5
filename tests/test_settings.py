"""Settings objects: a job decorated with ``flat_settings`` has one keyword per field (type, default, doc line),
packs them back into its settings object, and every settings class of a job documents every field."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import pytest

from igpo_kit.settings import field_docs, flat_settings, undocumented


@dataclass
class Loop:
    """Toy settings.

    Attributes:
        group_size: G, rollouts per prompt.
        betas: AdamW betas, a continued
            line.
        decay_steps: None: max_steps.
    """

    group_size: int = 8
    betas: tuple[float, float] = (0.9, 0.99)
    decay_steps: int | None = None


def test_field_docs_reads_one_entry_per_field_with_continuations():
    assert field_docs(Loop) == {"group_size": "G, rollouts per prompt.", "betas": "AdamW betas, a continued line.",
                                "decay_steps": "None: max_steps."}
    assert undocumented(Loop) == []


def test_flat_job_has_one_keyword_per_field_and_receives_the_object():
    seen = {}

    @flat_settings(settings=Loop)
    def job(model=None, settings: Loop = Loop(), run=None) -> dict:
        """A job.

        Args:
            model: a model.
        """
        seen.update(model=model, settings=settings, run=run)
        return {"ok": True}

    sig = inspect.signature(job)
    assert list(sig.parameters) == ["model", "group_size", "betas", "decay_steps", "run"]
    assert sig.parameters["group_size"].default == 8 and sig.parameters["group_size"].annotation is int
    assert job.__annotations__["decay_steps"] == int | None
    assert job(model="m", group_size=4, betas=[0.9, 0.95], run="r") == {"ok": True}
    assert seen == {"model": "m", "settings": Loop(group_size=4, betas=(0.9, 0.95)), "run": "r"}
    assert isinstance(seen["settings"].betas, tuple)  # gin reads [a, b] as a list
    job()
    assert seen["settings"] == Loop()
    doc = inspect.getdoc(job)
    assert doc.startswith("A job.") and "    group_size: G, rollouts per prompt." in doc
    with pytest.raises(TypeError):
        job(group_siz=2)


def test_a_field_without_its_doc_line_or_a_clash_fails_at_decoration():
    @dataclass
    class Bad:
        """Attributes:
        a: documented.
        """

        a: int = 0
        b: int = 1

    with pytest.raises(TypeError, match=r"Bad.b: no docstring line"):
        flat_settings(settings=Bad)(lambda settings=Bad(): None)
    with pytest.raises(TypeError, match="group_size defined twice"):
        flat_settings(settings=Loop)(lambda group_size=1, settings=Loop(): None)
    with pytest.raises(TypeError, match="no parameter settings"):
        flat_settings(settings=Loop)(lambda run=None: None)


def test_every_job_settings_class_documents_every_field():
    from igpo_kit import entry

    classes = {cls for job in (entry.rl, entry.sft, entry.evaluate) for cls in job.settings_classes.values()}
    assert {c.__name__ for c in classes} == {"RLSettings", "RLSetup", "SFTSettings", "EvalSettings"}
    for cls in classes:
        assert undocumented(cls) == [], cls
        assert len(field_docs(cls)) == len(dataclasses.fields(cls))


def test_the_rl_job_keeps_its_flat_keywords():
    """Recipes, sweep specs and saved run configs bind ``entry.rl.<setting>``: every field is a keyword."""
    from igpo_kit import entry
    from igpo_kit.entry.rl import RLSetup
    from igpo_kit.rl.settings import RLSettings

    params = inspect.signature(entry.rl).parameters
    for cls in (RLSettings, RLSetup):
        for f in dataclasses.fields(cls):
            assert params[f.name].default == (f.default if f.default is not dataclasses.MISSING else None)
