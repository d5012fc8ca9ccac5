"""Rewrite backends (registry kind ``rewrite_backend``): something that turns prompts into completions.

A backend has ``name`` (safe to log), ``batch_size`` and ``complete(prompts, seed) -> list[str | Exception]`` (one
entry per prompt; an exception marks a failed row, which the job counts and retries on its next run). It may have
a ``tokenizer`` (used for the length histogram).

* :func:`transformers_causal` — a local causal LM (``AutoModelForCausalLM``) with its chat template, or the plain
  prompt when the tokenizer has none; batched, left-padded generation.
* :func:`openai_http` — any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, SGLang, TGI, llama.cpp,
  hosted APIs) over ``urllib`` with retries; ``batch_size`` requests run concurrently. The API key is read from
  the environment variable named by ``api_key_env`` at request time and only ever placed in the
  ``Authorization`` header: it is not stored on the object, logged, or written anywhere, and any error text that
  would contain it is scrubbed.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RewriteBackendError", "TransformersCausal", "OpenAIHTTP", "transformers_causal", "openai_http"]


class RewriteBackendError(RuntimeError):
    """A backend failed to produce a completion for one prompt (after its retries)."""


# --- local transformers model -----------------------------------------------------------------------------------


@dataclass
class TransformersCausal:
    """A local ``AutoModelForCausalLM`` used as the rewriter (see :func:`transformers_causal`)."""

    path: str
    max_new_tokens: int = 1024
    temperature: float = 0.7
    batch_size: int = 4
    trust_remote_code: bool = False
    device: str = "auto"
    dtype: str = "auto"
    _model: Any = field(default=None, init=False, repr=False)
    _tokenizer: Any = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return f"transformers_causal:{self.path}"

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from igpo_kit.models.hf import _load, resolve_dtype

        binding = "rewrite_backend.transformers_causal"
        tok = _load(AutoTokenizer, self.path, binding, trust_remote_code=self.trust_remote_code)
        model = _load(AutoModelForCausalLM, self.path, binding, trust_remote_code=self.trust_remote_code,
                      dtype=resolve_dtype(self.dtype))
        import torch

        dev = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self._tokenizer = tok
        self._model = model.to(dev).eval()

    @property
    def tokenizer(self):
        self._load()
        return self._tokenizer

    def _render(self, prompt: str) -> tuple[str, bool]:
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           tokenize=False)
            return text, False  # the template already holds the special tokens it wants
        return prompt, True

    def complete(self, prompts: list[str], seed: int = 0) -> list[str | Exception]:
        """Generate one completion per prompt (sampling at ``temperature``; greedy when it is 0).

        ``generate`` samples from the global torch RNG, so it runs inside ``torch.random.fork_rng`` seeded with
        ``seed``: the caller's RNG state is restored afterwards and the output depends only on ``seed`` and the batch.
        """
        import torch

        self._load()
        tok, model = self._tokenizer, self._model
        rendered = [self._render(p) for p in prompts]
        add_special = rendered[0][1] if rendered else True
        enc = tok([r[0] for r in rendered], return_tensors="pt", padding=True, add_special_tokens=add_special)
        enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "pad_token_id": tok.pad_token_id}
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature)
        else:
            kwargs.update(do_sample=False)
        devices = [model.device.index or 0] if model.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(int(seed) % (2**63))
                out = model.generate(**enc, **kwargs)
        except Exception as exc:  # one failure fails the whole batch; the job retries those rows next run
            return [RewriteBackendError(f"{self.name}: generation failed: {exc}") for _ in prompts]
        new = out[:, enc["input_ids"].shape[1]:]
        return [tok.decode(row, skip_special_tokens=True) for row in new]


def transformers_causal(
    path: str,
    max_new_tokens: int = 1024,
    temperature: float = 0.7,
    batch_size: int = 4,
    trust_remote_code: bool = False,
) -> TransformersCausal:
    """A local causal LM (hub id or directory) as the trace rewriter; loaded on first use.

    Args:
        path: ``from_pretrained`` path of the model and its tokenizer.
        max_new_tokens: completion budget per row.
        temperature: sampling temperature (0 = greedy).
        batch_size: prompts per ``generate`` call (left-padded).
        trust_remote_code: only for checkpoints you trust.
    """
    if batch_size < 1:
        from igpo_kit.errors import ConfigError

        raise ConfigError(f"rewrite_backend.transformers_causal: batch_size must be >= 1, got {batch_size}")
    return TransformersCausal(path=path, max_new_tokens=max_new_tokens, temperature=temperature,
                              batch_size=batch_size, trust_remote_code=trust_remote_code)


# --- OpenAI-compatible HTTP -------------------------------------------------------------------------------------

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


@dataclass
class OpenAIHTTP:
    """An OpenAI-compatible chat-completions endpoint (see :func:`openai_http`). Holds no secret."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 2
    batch_size: int = 8
    temperature: float = 0.7
    max_tokens: int | None = None
    retry_backoff_s: float = 1.0

    @property
    def name(self) -> str:
        return f"openai_http:{self.model}@{self.base_url}"

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        if not base.endswith("/v1"):
            base += "/v1"
        return base + "/chat/completions"

    def _request_once(self, body: bytes, key: str | None) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            payload = json.loads(resp.read().decode("utf-8"))
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise RewriteBackendError(f"{self.name}: unexpected response shape: {str(payload)[:200]}") from None
        if not isinstance(content, str):
            raise RewriteBackendError(f"{self.name}: response content is not text")
        return content

    def _one(self, prompt: str, seed: int) -> str | Exception:
        key = os.environ.get(self.api_key_env) or None
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature,
            "seed": int(seed) % (2**31),
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        data = json.dumps(body).encode("utf-8")
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                return self._request_once(data, key)
            except urllib.error.HTTPError as exc:
                detail = ""
                try:
                    detail = exc.read().decode("utf-8", "replace")[:200]
                except Exception:
                    pass
                last = f"HTTP {exc.code}: {detail}"
                if exc.code not in _RETRY_STATUS:
                    break
                ra = exc.headers.get("Retry-After") if exc.headers else None
                if ra and ra.strip().isdigit():
                    retry_after = min(float(ra), 30.0)
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
                last = f"connection error: {getattr(exc, 'reason', exc)}"
            except json.JSONDecodeError:
                last = "response is not JSON"
            except RewriteBackendError as exc:
                return RewriteBackendError(_scrub(str(exc), key))
            if attempt < self.max_retries:
                time.sleep(retry_after if retry_after is not None else self.retry_backoff_s * (2**attempt))
        return RewriteBackendError(_scrub(f"{self.name}: {last}", key))

    def complete(self, prompts: list[str], seed: int = 0) -> list[str | Exception]:
        """One chat completion per prompt, ``batch_size`` requests in flight; failures come back as exceptions."""
        if not prompts:
            return []
        seeds = [int(seed) + i for i in range(len(prompts))]
        with ThreadPoolExecutor(max_workers=min(self.batch_size, len(prompts))) as pool:
            return list(pool.map(self._one, prompts, seeds))


def openai_http(
    base_url: str,
    model: str,
    api_key_env: str = "OPENAI_API_KEY",
    timeout_s: float = 60,
    max_retries: int = 2,
    batch_size: int = 8,
    temperature: float = 0.7,
    max_tokens: int | None = None,
    retry_backoff_s: float = 1.0,
) -> OpenAIHTTP:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint as the trace rewriter.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` or ``https://api.example.com`` (``/v1`` is appended when
            missing; a URL ending in ``/chat/completions`` is used as is).
        model: the served model name (paper: Llama-4-Maverick).
        api_key_env: name of the environment variable holding the key (unset or empty: no ``Authorization``
            header, as local servers expect). Never pass the key itself.
        timeout_s: per-request timeout.
        max_retries: retries on connection errors, timeouts, 408/409/425/429/5xx (exponential backoff from
            ``retry_backoff_s``, or the server's ``Retry-After``).
        batch_size: concurrent requests.
        temperature: sampling temperature; max_tokens: completion budget (server default when None).
    """
    from igpo_kit.errors import ConfigError

    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"rewrite_backend.openai_http: base_url must start with http:// or https://, got {base_url!r}")
    if batch_size < 1 or max_retries < 0:
        raise ConfigError("rewrite_backend.openai_http: batch_size must be >= 1 and max_retries >= 0")
    if api_key_env.startswith(("sk-", "Bearer ")):
        raise ConfigError("rewrite_backend.openai_http: api_key_env is the NAME of an environment variable, not the key")
    return OpenAIHTTP(base_url=base_url, model=model, api_key_env=api_key_env, timeout_s=float(timeout_s),
                      max_retries=max_retries, batch_size=batch_size, temperature=temperature, max_tokens=max_tokens,
                      retry_backoff_s=retry_backoff_s)
