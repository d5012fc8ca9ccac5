"""Checkpoints whose modelling code ships inside the checkpoint (``trust_remote_code``), under transformers 4 and 5.

The kit runs LLaDA and Dream through its own native classes (:mod:`igpo_kit.models.llada`,
:mod:`igpo_kit.models.dream`); this module is the path for checkpoints with no native class (LLaDA-1.5, LLaDA-MoE,
forks) and the reference the native classes are tested against. Code written for transformers 4.4x breaks on
transformers 5 in five known ways; :func:`load_remote` repairs them **in this process only**, on the classes
transformers has imported (the user's files are never edited):

1. ``__init__`` never calls ``post_init()`` (``'LLaDAModelLM' object has no attribute 'all_tied_weights_keys'``):
   the model class's ``__init__`` is wrapped to call it when it was skipped;
2. ``tie_weights(self)`` without the ``missing_keys`` / ``recompute_mapping`` keywords: extra keywords are dropped;
   ``_tied_weights_keys`` as a list (``save_pretrained`` fails): turned into ``{tied: input embedding}``;
3. ``config.use_cache`` missing (``PretrainedConfig`` no longer keeps it): set to the value in ``config.json``;
4. rope type ``'default'`` missing from ``ROPE_INIT_FUNCTIONS`` (``KeyError: 'default'``): the plain rotary
   frequencies ``theta^(-2i/d)`` are registered under that name;
5. ``GenerationConfig.validate()`` overridden without ``user_set_attributes``: extra keywords are dropped;
6. non-persistent rotary buffers (``inv_freq``) come out of loading uninitialised (transformers 5 builds the model
   on the meta device and only re-initialises what ``_init_weights`` knows): they are recomputed after loading.

Each repair is a no-op where the code already fits (transformers 4.x, or the hub's updated files).
"""

from __future__ import annotations

import functools
import inspect
import json
import shutil
import sys
from pathlib import Path

import torch

_PATCHED = "_igpo_kit_compat"


def default_rope_parameters(config, device=None, seq_len=None, **kwargs) -> tuple[torch.Tensor, float]:
    """The unscaled rotary frequencies ``inv_freq[i] = theta^(-2i/d)`` (transformers 4's rope type ``'default'``).

    Returns:
        ``inv_freq`` ``[d/2]`` float32 and the attention scaling 1.0.
    """
    base = kwargs.get("base") or getattr(config, "rope_theta", None)
    if base is None:
        base = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    dim = kwargs.get("dim")
    if dim is None:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        dim = int(head_dim * getattr(config, "partial_rotary_factor", 1.0))
    exponent = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (base**exponent), 1.0


def _install_rope_default() -> None:
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    ROPE_INIT_FUNCTIONS.setdefault("default", default_rope_parameters)


def _accepts(fn, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _tied_keys_as_dict(model, keys) -> dict[str, str] | None:
    """transformers 4's ``_tied_weights_keys`` list -> transformers 5's ``{tied: source}`` (the input embedding)."""
    emb = model.get_input_embeddings()
    source = next((n for n, p in model.named_parameters() if p is getattr(emb, "weight", None)), None)
    return None if source is None else {k: source for k in keys}


def _patch_model_class(cls) -> None:
    """Wrap ``__init__`` (call a skipped ``post_init``) and ``tie_weights`` (drop keywords it does not take)."""
    if cls.__dict__.get(_PATCHED):
        return
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if type(self) is not cls:
            return
        if isinstance(getattr(self, "_tied_weights_keys", None), (list, tuple)):
            self._tied_weights_keys = _tied_keys_as_dict(self, self._tied_weights_keys)
        if not hasattr(self, "all_tied_weights_keys") and hasattr(self, "post_init"):
            self.post_init()

    cls.__init__ = __init__
    tie = cls.__dict__.get("tie_weights")
    if tie is not None and not _accepts(tie, "recompute_mapping"):
        cls.tie_weights = functools.wraps(tie)(lambda self, *a, **k: tie(self))
    setattr(cls, _PATCHED, True)


def _patch_generation_configs(module) -> None:
    from transformers import GenerationConfig

    for value in list(vars(module).values()):
        if not (isinstance(value, type) and issubclass(value, GenerationConfig) and value is not GenerationConfig):
            continue
        validate = value.__dict__.get("validate")
        if validate is None or value.__dict__.get(_PATCHED) or _accepts(validate, "user_set_attributes"):
            continue
        value.validate = functools.wraps(validate)(lambda self, *a, _v=validate, **k: _v(self, *a[:1]))
        setattr(value, _PATCHED, True)


def _patch_module_tree(cls) -> None:
    """Repair the model class and every PreTrainedModel / GenerationConfig class of the modules it imported."""
    from transformers import PreTrainedModel

    module = sys.modules[cls.__module__]
    package = cls.__module__.rsplit(".", 1)[0]
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name == cls.__module__ or name.startswith(package + ".")):
            continue
        _patch_generation_configs(mod)
        for value in list(vars(mod).values()):
            if isinstance(value, type) and issubclass(value, PreTrainedModel) and value.__module__ == mod.__name__:
                _patch_model_class(value)
    _patch_generation_configs(module)


@torch.no_grad()
def reset_rope_buffers(model) -> None:
    """Recompute every rotary module's ``inv_freq`` buffer from its config (repair 6)."""
    for module in model.modules():
        init_fn, inv_freq = getattr(module, "rope_init_fn", None), getattr(module, "inv_freq", None)
        if init_fn is None or not isinstance(inv_freq, torch.Tensor):
            continue
        fresh, _ = init_fn(module.config, inv_freq.device, **getattr(module, "rope_kwargs", {}))
        module.inv_freq = fresh.to(inv_freq.dtype)  # a registered buffer: assignment keeps it one
        if hasattr(module, "original_inv_freq"):
            module.original_inv_freq = module.inv_freq


def remote_config(path: str, **kwargs):
    """``AutoConfig`` with the checkpoint's own code, ``use_cache`` restored from ``config.json`` (repair 3)."""
    from transformers import AutoConfig
    from transformers.utils import cached_file

    _install_rope_default()
    config = AutoConfig.from_pretrained(path, trust_remote_code=True, **kwargs)
    if not hasattr(config, "use_cache"):
        raw = json.loads(Path(cached_file(path, "config.json")).read_text())
        config.use_cache = bool(raw.get("use_cache", False))
    return config


def remote_model_class(path: str, config, auto_name: str = "AutoModel"):
    """The checkpoint's model class for ``auto_name`` (``auto_map``), repaired for this transformers."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    auto_map = getattr(config, "auto_map", None) or {}
    ref = auto_map.get(auto_name) or auto_map.get("AutoModel")
    if ref is None:
        raise ValueError(f"{path}: config.json has no auto_map entry for {auto_name}")
    cls = get_class_from_dynamic_module(ref, path)
    _patch_module_tree(cls)
    cls.register_for_auto_class(auto_name)  # save_pretrained then writes its modelling .py beside the weights
    return cls


def load_remote(path: str, dtype: torch.dtype | None = None, auto_name: str = "AutoModel", **kwargs):
    """Load ``path`` with its own modelling code (``trust_remote_code=True``), repaired for transformers 5.

    Args:
        path: hub id or local checkpoint folder (``config.json`` with ``auto_map``, the ``.py`` files, weights).
        dtype: parameter dtype, or None for the checkpoint's.
        auto_name: which ``auto_map`` entry to load (``AutoModel``).
    Returns:
        the model (``save_pretrained`` writes the ``.py`` files beside the weights, see :func:`save_remote`).
    """
    config = remote_config(path)
    cls = remote_model_class(path, config, auto_name)
    extra = {} if dtype is None else {"dtype": dtype}
    model = cls.from_pretrained(path, config=config, trust_remote_code=True, **extra, **kwargs)
    reset_rope_buffers(model)
    model._igpo_kit_code_dir = code_dir(path, config)
    return model


def code_files(config) -> list[str]:
    """The ``.py`` files named by ``config.auto_map`` (``configuration_x.py``, ``modeling_x.py``...)."""
    auto_map = getattr(config, "auto_map", None) or {}
    refs = [r for v in auto_map.values() for r in (v if isinstance(v, (list, tuple)) else [v]) if r]
    return sorted({r.split("--")[-1].rsplit(".", 1)[0] + ".py" for r in refs})


def code_dir(path: str, config) -> Path | None:
    """The folder holding the checkpoint's ``.py`` files (a local checkpoint, or its hub snapshot), else None."""
    from transformers.utils import cached_file

    files = code_files(config)
    if not files:
        return None
    try:
        first = cached_file(path, files[0], _raise_exceptions_for_missing_entries=False)
    except OSError:
        return None
    return None if first is None else Path(first).parent


def copy_code(source: Path | None, config, target: Path) -> list[str]:
    """Copy the ``.py`` files of ``config.auto_map`` (and the modules they import) from ``source`` into ``target``.

    Returns:
        the names copied (empty when ``source`` is None or holds none of them).
    """
    if source is None:
        return []
    wanted = set(code_files(config)) | {p.name for p in source.glob("*.py")}
    copied = []
    for name in sorted(wanted):
        src = source / name
        if src.is_file() and src.resolve() != (target / name).resolve():
            shutil.copyfile(src, target / name)
            copied.append(name)
    return copied


def save_remote(model, path: str | Path) -> Path:
    """``save_pretrained`` plus the checkpoint's ``.py`` files beside the weights (the folder reloads anywhere)."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(p)
    copy_code(getattr(model, "_igpo_kit_code_dir", None), model.config, p)
    return p
