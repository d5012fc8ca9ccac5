"""Credentials never enter a config, a profile or a run record: detection and redaction.

A value *looks like a credential* when it carries a known token prefix (OpenAI ``sk-``, Hugging Face ``hf_``,
GitHub ``ghp_``/``github_pat_``, Slack ``xox?-``, AWS ``AKIA``, Google ``AIza``, ``Bearer <token>``), when it is
assigned to a name whose parts say so (``key``, ``token``, ``secret``, ``password``, ...) and is not itself the
*name* of an environment variable (``api_key_env = 'OPENAI_API_KEY'`` is the way to pass one), or when it is a
long high-entropy string. :func:`describe` says what was found without echoing it; :func:`redact` replaces it.
"""

from __future__ import annotations

import math
import re
from collections import Counter

PREFIXES = (
    ("an OpenAI-style API key (sk-...)", re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}")),
    ("a Hugging Face token (hf_...)", re.compile(r"\bhf_[A-Za-z0-9]{20,}")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),
    ("an AWS access key id", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}")),
    ("a bearer token", re.compile(r"\bBearer\s+[A-Za-z0-9._~+/\-]{8,}=*", re.I)),
)
#: name parts that mark a credential (``api_key``, ``HF_TOKEN``, ``db_password``; not ``tokenizer``, ``max_tokens``).
SECRET_PARTS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "credential", "credentials",
                "auth", "pat"}
_ASSIGN = re.compile(r"(?P<name>[A-Za-z_][\w.\-/]*)\s*[=:]\s*(?P<q>['\"]?)(?P<value>[^'\"\s,)\]]+)(?P=q)")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_WORD = re.compile(r"[A-Za-z0-9_\-+=]{32,}")


def _entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _high_entropy(word: str) -> bool:
    """A random-looking token: an unbroken run of >= 24 characters (between ``-``/``_``) mixing upper case, lower
    case and digits at > 4.2 bits/char. Hex digests (no upper case) and hyphenated names
    (``Llama-4-Maverick-17B-128E-Instruct-FP8``: short runs) are not."""
    return any(len(run) >= 24 and any(c.isupper() for c in run) and any(c.islower() for c in run)
               and any(c.isdigit() for c in run) and _entropy(run) > 4.2 for run in re.split(r"[-_]", word))


def _secret_name(name: str) -> bool:
    parts = re.split(r"[^A-Za-z0-9]+", name.lower().rsplit(".", 1)[-1])
    return any(p in SECRET_PARTS for p in parts) and not parts[-1] in ("env", "var", "file", "path")


def _spans(text: str) -> list[tuple[int, int, str]]:
    out = []
    for what, pattern in PREFIXES:
        out += [(m.start(), m.end(), what) for m in pattern.finditer(text)]
    for m in _ASSIGN.finditer(text):
        value = m.group("value")
        if _secret_name(m.group("name")) and value not in ("None", "True", "False", "''", '""') \
                and not _ENV_NAME.fullmatch(value) and not value.startswith(("@", "%", "$")) \
                and not re.fullmatch(r"[-+]?[\d.]+(?:e[-+]?\d+)?", value, re.I):
            out.append((m.start("value"), m.end("value"), f"a value for {m.group('name')}"))
    out += [(m.start(), m.end(), "a high-entropy string") for m in _WORD.finditer(text) if _high_entropy(m.group())]
    return sorted(out)


def describe(text: str) -> str | None:
    """What in ``text`` looks like a credential (never the value itself), or None."""
    spans = _spans(str(text))
    return spans[0][2] if spans else None


def redact(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``<redacted>``."""
    text = str(text)
    merged: list[list[int]] = []
    for start, end, _ in _spans(text):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        text = text[:start] + "<redacted>" + text[end:]
    return text


ADVICE = ("pass credentials through the environment: export the key in your shell and name the variable "
          "(e.g. rewrite_backend.openai_http.api_key_env = 'OPENAI_API_KEY')")
