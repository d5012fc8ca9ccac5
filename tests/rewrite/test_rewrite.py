"""Trace rewriting: checks, prompt, the OpenAI-compatible backend against a local server, a tiny local causal LM."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from igpo_kit.data.examples import Example
from igpo_kit.rewrite.backends import openai_http, transformers_causal
from igpo_kit.rewrite.job import answers_match, check_format, rewrite_traces, sidecar_paths
from igpo_kit.rewrite.prompt import REWRITE_TEMPLATE, rewrite_prompt, target_words

SECRET = "sk-test-SECRET-0123456789"
GOOD = "<reasoning>\nWe add {a} and {b} to get {c}.\n</reasoning>\n\n<answer>\n\\boxed{{{c}}}\n</answer>"


# --- pure helpers -----------------------------------------------------------------------------------------------


def test_check_format():
    ok = "<reasoning>\nx\n</reasoning>\n<answer>\n\\boxed{14}\n</answer>"
    assert check_format(ok) == (ok, "")
    assert check_format("```\n" + ok + "\n```")[0] == ok
    assert check_format("  " + ok + "\n")[0] == ok
    bad = [
        "<reasoning>x</reasoning>",  # no answer
        "Sure! " + ok,  # text outside the tags
        ok + ok,  # duplicated tags
        "<answer>\\boxed{1}</answer><reasoning>x</reasoning>",  # order
        "<reasoning> </reasoning><answer>\\boxed{1}</answer>",  # empty reasoning
        "<reasoning>x</reasoning><answer>14</answer>",  # not boxed
        "<reasoning>x</reasoning><answer>\\boxed{14</answer>",  # unbalanced
    ]
    for text in bad:
        assert check_format(text)[0] is None, text


def test_answers_match():
    assert answers_match("14", "14")
    assert answers_match("14.0", "14")
    assert answers_match("1,000", "1000")
    assert answers_match("\\dfrac{1}{2}", "\\frac{1}{2}")
    assert answers_match("\\frac{1}{2}", "0.5")
    assert answers_match("x = 3", "3") or answers_match("3", "3")
    assert answers_match("\\boxed{7}", "7")
    assert not answers_match("15", "14")
    assert not answers_match("", "14")


def test_prompt_and_targets():
    t = [target_words(3, f"id{i}") for i in range(200)]
    assert all(100 <= x <= 1000 for x in t) and len(set(t)) > 50
    assert t == [target_words(3, f"id{i}") for i in range(200)]
    assert t != [target_words(4, f"id{i}") for i in range(200)]
    p = rewrite_prompt("Some {weird} solution.", target=321)
    assert "about 321 words" in p and "Original solution: Some {weird} solution.." in p
    assert p.startswith("Please rewrite the original solution") and p.endswith("Your response:")
    assert "\\boxed{14}" in p
    assert "random length between 100 and 1000 words" in rewrite_prompt("s")
    assert "{length_sentence}" in REWRITE_TEMPLATE


# --- OpenAI-compatible backend ----------------------------------------------------------------------------------


class _Server:
    """A canned OpenAI-style server: the reply depends on the CASE marker in the original solution."""

    def __init__(self):
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.hits: dict[str, int] = {}
        self.fail_case_e = True
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                outer.auth.append(self.headers.get("Authorization"))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "not found"})
                content = body["messages"][0]["content"]
                case = re.search(r"CASE:(\w+)", content).group(1)
                outer.hits[case] = outer.hits.get(case, 0) + 1
                nums = [int(x) for x in re.findall(r"NUMS:(\d+),(\d+)", content)[0]]
                good = GOOD.format(a=nums[0], b=nums[1], c=sum(nums))
                if case == "wrong":
                    text = GOOD.format(a=nums[0], b=nums[1], c=sum(nums) + 1)
                elif case == "badformat":
                    text = "Here is the rewrite: " + good
                elif case == "error" and outer.fail_case_e:
                    return self._send(500, {"error": "boom"})
                elif case == "flaky" and outer.hits[case] == 1:
                    return self._send(503, {"error": "busy"})
                else:
                    text = good
                self._send(200, {"id": "x", "object": "chat.completion",
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop"}]})

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _examples():
    def ex(i, case, a, b, trace=True):
        t = f"CASE:{case} NUMS:{a},{b} Long verbose solution: first {a}, then {b}, wait, let me re-check... so {a + b}."
        return Example(id=f"r/{i}", question=f"What is {a}+{b}?", answer=str(a + b), trace=t if trace else None,
                       source="test", meta={"k": i})

    return [ex(0, "good", 1, 2), ex(1, "good", 3, 4), ex(2, "flaky", 5, 6), ex(3, "good", 7, 8),
            ex(4, "wrong", 2, 2), ex(5, "badformat", 3, 3), ex(6, "error", 4, 4), ex(7, "good", 1, 1, trace=False)]


def test_openai_http_job(tmp_path, monkeypatch):
    monkeypatch.setenv("IGPO_TEST_REWRITE_KEY", SECRET)
    out = tmp_path / "rw" / "rewritten.jsonl"
    logs = []
    with _Server() as server:
        backend = openai_http(f"http://127.0.0.1:{server.port}", model="canned", api_key_env="IGPO_TEST_REWRITE_KEY",
                              timeout_s=10, max_retries=1, batch_size=3, retry_backoff_s=0.0)
        rep = rewrite_traces(_examples(), backend, out, seed=7, log=logs.append)
        assert (rep.total, rep.no_trace, rep.attempted) == (8, 1, 7)
        assert (rep.written, rep.dropped_answer, rep.dropped_format, rep.failed) == (4, 1, 1, 1)
        assert server.hits["flaky"] == 2 and server.hits["error"] == 2  # one retry each
        assert set(server.auth) == {f"Bearer {SECRET}"}
        assert all(r["model"] == "canned" and "seed" in r for r in server.requests)
        prompts = [r["messages"][0]["content"] for r in server.requests]
        assert all(p.startswith("Please rewrite the original solution") for p in prompts)

        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert sorted(r["id"] for r in rows) == ["r/0", "r/1", "r/2", "r/3"]
        for r in rows:
            e = Example(**r)
            assert e.trace.startswith("<reasoning>") and e.trace.endswith("</answer>")
            assert 100 <= e.meta["rewrite"]["target_words"] <= 1000 and e.meta["k"] == int(e.id[-1])
            assert e.meta["rewrite"]["length_unit"] == "words"
        side = sidecar_paths(out)
        rejected = {json.loads(line)["id"]: json.loads(line)["reason"] for line in side["rejected"].read_text().splitlines()}
        assert rejected == {"r/4": "answer", "r/5": "format"}
        assert rep.histogram_path == side["histogram"]
        assert side["histogram"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert json.loads(side["report"].read_text())["written"] == 4
        assert rep.before["count"] == 7 and rep.after["count"] == 4

        # resume: done and rejected rows are not sent again; the failed row is retried (and now succeeds)
        server.fail_case_e = False
        n_before = len(server.requests)
        with open(out, "a") as f:
            f.write('{"id": "torn')  # a crash mid-append
        rep2 = rewrite_traces(_examples(), backend, out, seed=7)
        assert len(server.requests) == n_before + 1
        assert (rep2.skipped_existing, rep2.skipped_rejected, rep2.written, rep2.rows_total) == (4, 2, 1, 5)
        assert all(json.loads(line) for line in out.read_text().splitlines())

        # the same targets on resume (seeded by id)
        assert json.loads(out.read_text().splitlines()[0])["meta"]["rewrite"]["target_words"] == target_words(7, "r/0")

    # the key is never written, logged or shown
    blobs = [out.read_bytes(), side["rejected"].read_bytes(), side["report"].read_bytes(),
             side["histogram"].read_bytes(), repr(backend).encode(), json.dumps(logs).encode(),
             json.dumps(rep.as_dict()).encode()]
    assert not any(SECRET.encode() in b for b in blobs)
    assert not any(SECRET in str(v) for v in vars(backend).values())


def test_openai_http_errors_do_not_leak_key(monkeypatch):
    monkeypatch.setenv("IGPO_TEST_REWRITE_KEY", SECRET)
    backend = openai_http("http://127.0.0.1:9", model="m", api_key_env="IGPO_TEST_REWRITE_KEY", timeout_s=2,
                          max_retries=0, retry_backoff_s=0.0)
    (err,) = backend.complete(["hello"])
    assert isinstance(err, Exception) and SECRET not in str(err) and "connection error" in str(err)
    assert openai_http("http://h/v1/", model="m").url == "http://h/v1/chat/completions"
    assert openai_http("http://h", model="m").url == "http://h/v1/chat/completions"
    from igpo_kit.errors import ConfigError

    with pytest.raises(ConfigError):
        openai_http("http://h", model="m", api_key_env=SECRET)
    with pytest.raises(ConfigError):
        openai_http("ftp://h", model="m")


# --- local causal LM backend ------------------------------------------------------------------------------------


def test_transformers_causal_job(tiny_causal_dir, tmp_path):
    import torch

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        backend = transformers_causal(str(tiny_causal_dir), max_new_tokens=6, temperature=0.7, batch_size=2)
        rng = torch.random.get_rng_state()
        a = backend.complete(["Please rewrite: 1+1=2.", "x"], seed=1)
        b = backend.complete(["Please rewrite: 1+1=2.", "x"], seed=1)
        assert torch.equal(torch.random.get_rng_state(), rng)
        assert a == b and all(isinstance(s, str) for s in a)
        exs = [Example(id=f"t/{i}", question="q", answer="2", trace=f"1+1=2 (version {i}).") for i in range(3)]
        out = tmp_path / "local.jsonl"
        rep = rewrite_traces(exs, backend, out, seed=0)
        # a random tiny model cannot follow the format: every row is dropped, nothing crashes
        assert rep.attempted == 3 and rep.written == 0 and rep.dropped_format + rep.dropped_answer == 3
        assert rep.length_unit == "tokens" and rep.before["count"] == 3
        assert sidecar_paths(out)["histogram"].stat().st_size > 0
        rep2 = rewrite_traces(exs, backend, out, seed=0)
        assert rep2.attempted == 0 and rep2.skipped_rejected == 3
    finally:
        torch.set_num_threads(torch_threads)
