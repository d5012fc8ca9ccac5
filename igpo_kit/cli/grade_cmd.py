"""``igpo-kit grade FILE``: re-score saved generations with one grader, or compare several.

Registered on the main Typer app (``from igpo_kit.cli import grade_cmd`` at the bottom of main.py). The grading
itself lives in :mod:`igpo_kit.grading.compare`; this module parses options and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from igpo_kit.cli.app import PLUGIN, app, handle_errors, out

GRADE_EPILOG = """[bold]Examples[/bold]

  igpo-kit grade runs/eval/generations/gsm8k.jsonl
  igpo-kit grade answers.jsonl --grader math,math_verify,d1 --out verdicts.jsonl
  igpo-kit grade answers.jsonl --grader math --grader-arg reduced_fractions=true --json
"""


@app.command(epilog=GRADE_EPILOG)
@handle_errors
def grade(
    file: Path = typer.Argument(..., help="JSONL of saved generations"),
    grader: str = typer.Option("math", help="registered grader, or several comma-separated to compare them"),
    grader_arg: Optional[List[str]] = typer.Option(
        None, "--grader-arg", help="grader option KEY=VALUE (all listed graders having KEY) or GRADER.KEY=VALUE; repeatable"),
    completion_field: str = typer.Option("completion", help="field holding the model's completion"),
    gold_field: str = typer.Option("gold", help="field holding the gold answer"),
    label_field: str = typer.Option("label", help="optional field with the true verdict; if every row has it, "
                                                  "each grader's agreement with it is reported"),
    timeout: float = typer.Option(5.0, help="seconds per answer; a timed-out answer scores 0"),
    workers: int = typer.Option(2, help="grading processes"),
    out_file: Optional[Path] = typer.Option(None, "--out", help="write per-item verdicts (JSONL) here"),
    show: int = typer.Option(10, help="disagreeing items to print when comparing graders"),
    plugin: Optional[List[str]] = PLUGIN,
    as_json: bool = typer.Option(False, "--json"),
):
    """Re-score saved generations with a grader (accuracy), or compare graders (agreement, disagreeing items)."""
    from igpo_kit.data.io import read_rows
    from igpo_kit.errors import ConfigError
    from igpo_kit.grading.compare import build_graders, compare, extracted_answer
    from igpo_kit.runner import load_plugins

    load_plugins(plugin or [])
    if not timeout > 0:
        raise ConfigError(f"--timeout must be > 0 seconds, got {timeout:g}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if not file.exists():
        raise ConfigError(f"file not found: {file}")
    names = [n.strip() for n in grader.split(",") if n.strip()]
    graders = build_graders(names, grader_arg or [])
    rows = read_rows(str(file))
    if not rows:
        raise ConfigError(f"{file}: no rows to grade (the file is empty)")
    for i, row in enumerate(rows, 1):
        for f in (completion_field, gold_field):
            if f not in row:
                raise ConfigError(f"{file}:{i}: no field {f!r} (fields: {', '.join(row)}); "
                                  f"use --completion-field/--gold-field")
    completions = [str(r[completion_field]) for r in rows]
    golds = [str(r[gold_field]) for r in rows]
    labels = [r[label_field] for r in rows] if all(label_field in r for r in rows) else None

    cmp = compare(graders, completions, golds, timeout_s=timeout, workers=workers, progress=not as_json)
    n = len(rows)
    per = []
    label_acc = cmp.label_agreement(labels) if labels is not None else {}
    for name in names:
        rep = cmp.reports[name]
        correct = sum(cmp.verdicts[name])
        entry = {"grader": name, "n": n, "correct": correct, "accuracy": correct / n, "timeouts": rep.timeouts,
                 "errors": rep.errors, "answers_per_s": round(n / max(rep.seconds, 1e-9), 1)}
        if labels is not None:
            entry["label_agreement"] = label_acc[name]
        per.append(entry)

    if out_file is not None:
        _write_verdicts(out_file, rows, names, graders, cmp, completions, golds, extracted_answer)

    if as_json:
        if len(names) == 1:
            result = {"file": str(file), **per[0]}
        else:
            result = {"file": str(file), "n": n, "graders": per,
                      "agreement": {a: {b: cmp.agreement[(a, b)] for b in names} for a in names},
                      "disagreements": cmp.disagreements}
        if out_file is not None:
            result["out"] = str(out_file)
        out.print_json(json.dumps(result))
        return
    for e in per:
        extra = f", agrees with {label_field!r} on {100 * e['label_agreement']:.1f}%" if labels is not None else ""
        out.print(f"{e['grader']}: {e['correct']}/{n} correct = {100 * e['accuracy']:.1f}% "
                  f"(timeouts {e['timeouts']}, errors {e['errors']}{extra})", highlight=False)
    if len(names) > 1:
        _print_comparison(cmp, names, rows, completions, golds, graders, show, extracted_answer)
    if out_file is not None:
        out.print(f"verdicts: {out_file}", highlight=False)


def _write_verdicts(path, rows, names, graders, cmp, completions, golds, extracted_answer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    timed_out = {name: set(cmp.reports[name].timeout_indices) for name in names}
    with path.open("w") as f:
        for i, row in enumerate(rows):
            rec = {"index": i}
            if "id" in row:
                rec["id"] = row["id"]
            rec["gold"] = golds[i]
            rec["verdicts"] = {
                name: {"correct": cmp.verdicts[name][i], "score": cmp.reports[name].scores[i],
                       "answer": extracted_answer(graders[name], completions[i]),
                       "timeout": i in timed_out[name]}
                for name in names
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def _print_comparison(cmp, names, rows, completions, golds, graders, show, extracted_answer) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(title="agreement (share of items with the same verdict)")
    t.add_column("")
    for b in names:
        t.add_column(b, justify="right")
    for a in names:
        t.add_row(a, *(f"{100 * cmp.agreement[(a, b)]:.1f}%" for b in names))
    out.print(t)
    out.print(f"{len(cmp.disagreements)} of {cmp.n} items get different verdicts", highlight=False)
    if not cmp.disagreements or show <= 0:
        return
    d = Table(title=f"disagreeing items (first {min(show, len(cmp.disagreements))})")
    d.add_column("#", justify="right")
    d.add_column("gold")
    for name in names:
        d.add_column(name)
    for i in cmp.disagreements[:show]:
        cells = []
        for name in names:
            ans = extracted_answer(graders[name], completions[i])
            mark = "✓" if cmp.verdicts[name][i] else "✗"
            cells.append(Text(f"{mark} {_short(ans)}"))
        label = str(rows[i].get("id", i))
        d.add_row(Text(label), Text(_short(golds[i])), *cells)
    out.print(d)


def _short(text, width: int = 28) -> str:
    if text is None:
        return "-"
    text = str(text).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
