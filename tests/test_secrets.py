"""Credentials: recognised (known prefixes, secret-named values, high-entropy strings), refused before anything is
written and never echoed (bindings, recipe lines, command-line arguments), and redacted from run records."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from igpo_kit.cli.main import app
from igpo_kit.secrets import describe, redact

KEY = "sk-proj-4f9Kq2LmZx8Vb7Nc6Rt5Yw3Ue1Io0Pa"
RANDOM = "6zPSyKB9Th6gFNGlDV6qwsRfdTvJLSVwvUY7WF3r0"  # 41 random base62 characters


@pytest.mark.parametrize("text", [
    KEY, "hf_AbCdEfGhIjKlMnOpQrStUvWx", "ghp_AbCdEfGhIjKlMnOpQrStUvWx12", "Authorization: Bearer abcdefgh12345",
    "api_key = 'hunter2'", "export HF_TOKEN=abc123", "--password=xyz", f"x = '{RANDOM}'", "AKIAABCDEFGHIJKLMNOP",
])
def test_credentials_are_recognised_and_redacted(text):
    assert describe(text)
    secret = text.split("=")[-1].strip("' ").split()[-1]
    assert secret not in redact(text) and "<redacted>" in redact(text)


@pytest.mark.parametrize("text", [
    "api_key_env = 'OPENAI_API_KEY'", "max_tokens = 512", "tokenizer = 'GSAI-ML/LLaDA-8B-Instruct'",
    "REWRITER_MODEL = 'meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8'",
    "commit f4d6d0c148aee8258543b5bb8ae73106eaa540e0", "token_budget = 1024", "hint_ratio_high = 0.6",
])
def test_ordinary_values_are_not_credentials(text):
    assert describe(text) is None and redact(text) == text


def test_binding_with_a_key_is_refused_before_anything_is_written_and_never_echoed(tmp_path):
    r = CliRunner().invoke(app, ["run", "rewrite.gin", "--runs-dir", str(tmp_path),
                                 "-b", f"rewrite_backend.openai_http.api_key_env = '{KEY}'"])
    assert r.exit_code == 2, r.output
    out = r.output.replace("\n", " ")
    assert "binding rewrite_backend.openai_http.api_key_env: looks like a credential" in out
    assert "api_key_env = 'OPENAI_API_KEY'" in out  # the env-var way
    assert KEY not in r.output and KEY[:8] not in r.output
    assert not any(tmp_path.iterdir())


def test_recipe_line_and_cli_argument_are_refused(tmp_path):
    recipe = tmp_path / "leaky.gin"
    recipe.write_text("include 'tiny/eval.gin'\nHEADER = 'Bearer abcdefgh12345678'\n")
    r = CliRunner().invoke(app, ["validate", str(recipe)])
    assert r.exit_code == 2 and f"{recipe}:2: looks like a credential (a bearer token)" in r.output.replace("\n", "")
    assert "abcdefgh12345678" not in r.output
    r = CliRunner().invoke(app, ["run", "tiny/eval.gin", "--runs-dir", str(tmp_path / "runs"), "--name", RANDOM])
    assert r.exit_code == 2 and "--name: looks like a credential" in r.output and RANDOM not in r.output
    assert not (tmp_path / "runs").exists()


def test_run_records_redact_what_a_plugin_lets_through(tmp_path):
    from igpo_kit.runs import start_record

    run = start_record(tmp_path / "run", f"my_plugin.thing.header = 'Bearer {RANDOM}'\n", [f"my_plugin.x = '{KEY}'"],
                       [], "rl", argv=["igpo-kit", "run", "r.gin", "-b", f"my_plugin.x = '{KEY}'"])
    for name in ("config.gin", "bindings.txt", "run.json"):
        text = (run.dir / name).read_text()
        assert KEY not in text and RANDOM not in text and "<redacted>" in text, name
    assert json.loads((run.dir / "run.json").read_text())["command"][-1] == "my_plugin.x = '<redacted>'"
