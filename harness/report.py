"""``harness report``: every run of an output directory (or a study) in ONE self-contained HTML file.

The file opens from disk with a double-click: its styles, its script, its charts (SVG drawn by that
script) and the records it shows are all inside it, and its Content-Security-Policy forbids the
page any request at all. Tabs: the leaderboard (intervals, tokens, wall time, training cost),
comparisons (a study's claims pooled over its training seeds as ``study.json`` holds them, then
``harness.compare``'s paired differences), scaling curves, training curves (each
trained policy's manifest history), win-rates with their judges, and a sample viewer.

The data is embedded as JSON in ``<script type="application/json">`` blocks, never executed and
escaped so that no record can close its block: one block for what every tab shows, and per run a
small index of its examples plus a block of its samples (rendered prompts, every sample's text and
verdicts), which the page parses only when a sample of that run is opened. Model text is untrusted:
the page puts it into the document as text nodes only. Nothing is cut short unless ``max_chars`` is
given, and the page then says so.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.compare import compare_runs
from harness.console import warn
from harness.errors import HarnessError, describe
from harness.policy import list_policies, policies_dir
from harness.record import RunSummary, iter_summaries, read_record, write_atomic
from harness.types import ExampleRecord

STUDY = "study.json"
TRAINING_SKIP = ("step", "epoch")  # logged with every history entry; the x-axis, not a series


def write_report(source: Path, out: Path, max_chars: int | None = None) -> Path:
    """Write the report of the runs under ``source`` (a runs directory, or a study's, with ``study.json``) to
    ``out``, atomically; ``max_chars`` caps each sample text and rendered prompt (the page says where)."""
    if out.is_dir():
        raise HarnessError(f"--out {out} is a directory; name the HTML file to write (e.g. {out / 'report.html'})")
    if max_chars is not None and max_chars < 1:
        raise HarnessError(f"--max-chars must be at least 1, got {max_chars}")
    runs_dir, study = _locate(source)
    found = list(iter_summaries(runs_dir))
    if not found:
        raise HarnessError(f"{runs_dir} holds no runs (no */summary.json); run `harness run --output {runs_dir}` "
                           f"first")
    manifests = dict(list_policies())
    runs, blocks, records = [], [], {}
    for i, (run_dir, summary) in enumerate(found):
        try:
            examples, _ = read_record(run_dir)
            records[run_dir] = examples
            note = None
        except HarnessError as exc:
            warn(f"showing the summary alone: {exc}")
            examples, note = [], str(exc)
        runs.append({"dir": run_dir.name, "summary": _finite(summary.to_json()), "samples_note": note,
                     "options": " ".join(summary.config.options()),
                     "train": _training_cost(manifests.get(summary.policy.name) if summary.policy else None)})
        index, detail = _columns(examples, max_chars)
        blocks += [(f"run-{i}-index", index), (f"run-{i}-samples", detail)]
    summaries = [s for _, s in found]
    data = {
        "title": f"harness report: {study.get('name') if study.get('name') else runs_dir.resolve().name}",
        "source": str(source), "runs_dir": str(runs_dir), "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "harness": _version(), "max_chars": max_chars, "runs": runs,
        "comparisons": _comparisons(found, study),
        "pooled": _pooled(study),
        "study": _study_facts(study),
        "training": _training(summaries, manifests),
        "policies_dir": str(policies_dir()),
        "agreement": _judge_agreement(found, records),
    }
    write_atomic(out, _page(data, blocks))
    umask = os.umask(0)
    os.umask(umask)
    out.chmod(0o666 & ~umask)  # a report is for sharing: the usual permissions, not the temp file's 0600
    return out


# -- where the runs are -----------------------------------------------------------------------------------------


def _locate(source: Path) -> tuple[Path, dict[str, Any]]:
    """The directory holding the run directories, and the study's ``study.json`` (empty when there is none)."""
    if source.is_file() and source.name == STUDY:
        source = source.parent
    if not source.exists():
        raise HarnessError(f"{source} does not exist; pass a runs directory (e.g. runs/) or a study's directory")
    if not source.is_dir():
        raise HarnessError(f"{source} is not a directory; pass a runs directory (e.g. runs/) or a study's directory")
    study: dict[str, Any] = {}
    if (source / STUDY).is_file():
        try:
            loaded = json.loads((source / STUDY).read_text(encoding="utf-8"))
            study = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError) as exc:
            warn(f"ignoring {source / STUDY} ({describe(exc)}); reporting the runs beside it")
    output = study.get("output")
    if not any(source.glob("*/summary.json")) and isinstance(output, str):
        other = Path(output) if Path(output).is_absolute() else source / output
        if other.is_dir():  # a study that put its records elsewhere
            return other, study
    return source, study


def studies_in(source: Path) -> list[Path]:
    """The study folders (``OUTPUT/studies/NAME/``, each with its ``study.json``) inside a runs directory."""
    return sorted(p.parent for p in source.glob(f"studies/*/{STUDY}")) if source.is_dir() else []


def _study_facts(study: dict[str, Any]) -> dict[str, Any] | None:
    """What the page says about a study: its name and how many cells are in each status (when it lists cells)."""
    if not study:
        return None
    cells = study.get("cells")
    status: dict[str, int] = defaultdict(int)
    for cell in cells if isinstance(cells, list) else []:
        status[str(cell.get("status", "unknown")) if isinstance(cell, dict) else "unknown"] += 1
    return {"name": study.get("name"), "cells": len(cells) if isinstance(cells, list) else None,
            "status": dict(status)}


# -- the numbers -------------------------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None: JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _training_cost(manifest: dict | None) -> dict[str, Any] | None:
    """What training the run's policy cost, from its manifest (None for an untrained policy)."""
    if not manifest or "error" in manifest:
        return None
    return _finite({"method": manifest.get("method"), "steps": manifest.get("steps"),
                    "wall_seconds": manifest.get("wall_seconds"), "tokens": manifest.get("tokens")})


def _group(summary: RunSummary) -> tuple:
    """Runs that differ only in policy: the same task (and arguments), split, sampler, N and headline metric."""
    c = summary.config
    return (summary.task, json.dumps(c.task_args, sort_keys=True), c.split, summary.sampler, c.n,
            summary.metric.name)


def _compare(first: Path, second: Path, declared: dict[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"runs": [first.name, second.name], "declared": declared}
    try:
        entry |= _finite(dataclasses.asdict(compare_runs(first, second)))
    except HarnessError as exc:
        entry["note"] = str(exc)
    return entry


def _comparisons(found: list[tuple[Path, RunSummary]], study: dict[str, Any]) -> list[dict[str, Any]]:
    """The study's declared comparisons first (``comparisons`` or ``compare``: ``{a, b, task?, sampler?, n?}``),
    then every pair of runs that differ only in policy, the better-scoring run first; numbers from
    ``harness.compare.compare_runs``."""
    out: list[dict[str, Any]] = []
    done: set[tuple[str, str]] = set()
    declared = study.get("comparisons", study.get("compare"))
    for entry in declared if isinstance(declared, list) else []:
        if not isinstance(entry, dict) or "a" not in entry or "b" not in entry:
            out.append({"runs": [], "declared": {"entry": _finite(entry)},
                        "note": "not a comparison: an entry needs a and b (policy names)"})
            continue
        shown = _finite(entry)
        wanted = {k: entry[k] for k in ("task", "sampler", "n") if k in entry}

        def matches(s: RunSummary, policy: str, wanted: dict = wanted) -> bool:
            facts = {"task": s.task, "sampler": s.sampler, "n": s.config.n}
            return s.policy_name == policy and all(facts[k] == v for k, v in wanted.items())

        pairs = [(da, db) for da, sa in found if matches(sa, entry["a"])
                 for db, sb in found if matches(sb, entry["b"]) and _group(sa) == _group(sb)]
        if not pairs:  # study.json says why where it knows (a seed's pair that did not run: "not run")
            note = "no pair of runs matches this comparison"
            why = entry.get("note")
            out.append({"runs": [], "declared": shown, "note": f"{why}: {note}" if isinstance(why, str) else note})
        for da, db in pairs:
            out.append(_compare(da, db, shown))
            done.add((da.name, db.name))
    groups: dict[tuple, list[tuple[Path, RunSummary]]] = defaultdict(list)
    for run_dir, summary in found:
        groups[_group(summary)].append((run_dir, summary))
    for members in groups.values():
        members.sort(key=lambda m: (-_value(m[1]), m[1].policy_name, m[0].name))
        for i, (da, sa) in enumerate(members):
            for db, sb in members[i + 1:]:
                if sa.policy_name != sb.policy_name and not {(da.name, db.name), (db.name, da.name)} & done:
                    out.append(_compare(da, db, None))
    return out


def _pooled(study: dict[str, Any]) -> list[dict[str, Any]]:
    """The study's claims pooled over its training seeds (``study.json``'s ``pooled``, as ``harness study`` wrote
    them with ``PooledComparison.to_json``, verdict included: the page shows them, it recomputes nothing); an entry
    that was not pooled, or is not a pooled comparison, keeps only what names it and a note."""
    pooled = study.get("pooled")
    out = []
    for entry in pooled if isinstance(pooled, list) else []:
        if not isinstance(entry, dict):
            out.append({"note": "not a pooled comparison: an entry of study.json's pooled must be a mapping"})
            continue
        if "note" not in entry and _pooled_shape(entry):
            out.append(_finite(entry))
            continue
        named = {k: entry[k] for k in ("compare", "a", "b", "task", "sampler", "n")
                 if isinstance(entry.get(k), str | int)}
        seeds = entry.get("seeds")
        if isinstance(seeds, list):
            named["seeds"] = [s for s in seeds if isinstance(s, int)]
        note = entry.get("note")
        if not isinstance(note, str):
            note = ("not a pooled comparison: its numbers are missing or malformed" if "verdict" in entry else
                    "no verdict: study.json is from an earlier harness study; rerun it to pool the claim again")
        out.append({**named, "note": note})
    return out


def _pooled_shape(entry: dict[str, Any]) -> bool:
    """Whether a pooled entry holds what the page reads of it, each of its kind."""

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def two(v: Any, kind: Any = number) -> bool:
        return isinstance(v, list) and len(v) == 2 and all(kind(x) for x in v)

    pairs = entry.get("pairs")
    return (isinstance(entry.get("verdict"), str) and isinstance(entry.get("holds"), bool)
            and number(entry.get("difference")) and two(entry.get("ci95"))
            and (entry.get("t95") is None or two(entry.get("t95"))) and two(entry.get("seeds_better"))
            and two(entry.get("names"), lambda x: isinstance(x, str)) and isinstance(pairs, list) and bool(pairs)
            and all(isinstance(p, dict) and number(p.get("difference")) and two(p.get("ci95")) for p in pairs))


def _value(summary: RunSummary) -> float:
    value = summary.metric.value
    return value if isinstance(value, float | int) and math.isfinite(value) else -math.inf


def _judge_agreement(found: list[tuple[Path, RunSummary]], records: dict[Path, list[ExampleRecord]]) -> list[dict]:
    """Per pair of judged runs of the same samples (same weights, task, sampler, N, seed) under different judges:
    on how many shared examples the two judges gave the same verdict (credit)."""
    groups: dict[tuple, list[tuple[Path, RunSummary]]] = defaultdict(list)
    for run_dir, s in found:
        if s.judge and run_dir in records:
            fingerprint = s.policy.fingerprint if s.policy else None
            groups[(s.policy_name, fingerprint, *_group(s)[:5], s.config.seed)].append((run_dir, s))
    out = []
    for members in groups.values():
        for i, (da, sa) in enumerate(members):
            for db, sb in members[i + 1:]:
                if sa.judge.spec == sb.judge.spec:
                    continue
                a = {r.example.id or r.example.prompt: r.credit for r in records[da]}
                b = {r.example.id or r.example.prompt: r.credit for r in records[db]}
                shared = [k for k in a if k in b]
                same = sum(a[k] == b[k] for k in shared)
                out.append({"runs": [da.name, db.name], "judges": [sa.judge.spec, sb.judge.spec],
                            "policy": sa.policy_name, "task": sa.task, "shared": len(shared), "agree": same})
    return out


def _training(summaries: list[RunSummary], manifests: dict[str, dict]) -> list[dict[str, Any]]:
    """Each trained policy among the runs' policies: its manifest's facts and its logged history, by column."""
    out = []
    for name in sorted({s.policy.name for s in summaries if s.policy}):
        manifest = manifests.get(name)
        if not manifest:
            continue
        if "error" in manifest:
            out.append({"policy": name, "error": manifest["error"]})
            continue
        history = [h for h in manifest.get("history") or [] if isinstance(h, dict)]
        keys = sorted({k for h in history for k, v in h.items()
                       if k not in TRAINING_SKIP and isinstance(v, int | float) and not isinstance(v, bool)})
        series = {k: [_number(h.get(k)) for h in history] for k in keys}
        facts = {k: manifest.get(k) for k in ("method", "recipe", "base", "steps", "wall_seconds", "tokens",
                                                "reward", "rows", "created")}
        out.append(_finite({"policy": name, **facts, "step": [_number(h.get("step")) for h in history],
                            "series": series}))
    return out


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


# -- the samples, by column ---------------------------------------------------------------------------------------


def _cap(text: str | None, max_chars: int | None) -> str | None:
    if text is None or max_chars is None or len(text) <= max_chars:
        return text
    return text[:max_chars]


def _columns(examples: Iterable[ExampleRecord], max_chars: int | None) -> tuple[dict, dict]:
    """A run's examples as two column stores: the index the sample list filters (small), and the samples."""
    index: dict[str, Any] = {"id": [], "credit": [], "selected": [], "samples": [], "answer": [], "error": {}}
    detail: dict[str, Any] = {"prompt": [], "reference": [], "start": [], "text": [], "tokens": [], "logprob": [],
                              "finish": [], "finish_names": [], "grade": [], "grade_answer": [], "score": [],
                              "score_answer": [], "grade_error": {}, "score_error": {}, "score_raw": {},
                              "cut": {}}
    finish_codes: dict[str, int] = {}
    for e, record in enumerate(examples):
        chosen = record.chosen
        index["id"].append(record.example.id)
        index["credit"].append(_number(record.credit))
        index["selected"].append(record.selected)
        index["samples"].append(len(record.samples))
        index["answer"].append(chosen.grade.answer if chosen and chosen.grade else None)
        if record.selection_error:
            index["error"][e] = record.selection_error
        detail["prompt"].append(_cap(record.rendered_prompt, max_chars))
        if max_chars is not None and len(record.rendered_prompt) > max_chars:
            detail["cut"][f"p{e}"] = len(record.rendered_prompt)
        detail["reference"].append(record.example.reference)
        detail["start"].append(len(detail["text"]))
        for sample in record.samples:
            j = len(detail["text"])
            c = sample.completion
            detail["text"].append(_cap(c.text, max_chars))
            if max_chars is not None and len(c.text) > max_chars:
                detail["cut"][j] = len(c.text)
            detail["tokens"].append(c.tokens)
            logprob = _number(c.logprob)
            detail["logprob"].append(None if logprob is None else round(logprob, 4))
            detail["finish"].append(finish_codes.setdefault(c.finish_reason, len(finish_codes)))
            for kind, score in (("grade", sample.grade), ("score", sample.score)):
                detail[kind].append(None if score is None else score.value)
                detail[f"{kind}_answer"].append(None if score is None else score.answer)
                if score is not None and score.error:
                    detail[f"{kind}_error"][j] = score.error
            if sample.score is not None and sample.score.raw is not None:
                detail["score_raw"][j] = _number(sample.score.raw)
    detail["finish_names"] = list(finish_codes)
    return index, detail


# -- the page -----------------------------------------------------------------------------------------------------


def _version() -> str | None:
    from harness.provenance import versions

    return versions(["harness"]).get("harness")


def _json(data: Any) -> str:
    """JSON that cannot end its ``<script>`` block: every ``<`` is written as ``\\u003c`` (inside strings, the only
    place JSON has one), and U+2028/9 are escaped for old parsers."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _page(data: dict[str, Any], blocks: list[tuple[str, Any]]) -> str:
    scripts = "\n".join(f'<script type="application/json" id="{name}">{_json(value)}</script>'
                        for name, value in blocks)
    return (PAGE.replace("__TITLE__", html.escape(data["title"]))
            .replace("__STYLE__", STYLE)
            .replace("__DATA__", _json(data))
            .replace("__BLOCKS__", scripts)
            .replace("__SCRIPT__", SCRIPT))


# The page forbids itself every fetch, image, font, frame and connection (default-src 'none'); only its own inline
# script and style run. Everything the page shows is built with createElement and text nodes.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <p id="about" class="muted"></p>
  <nav id="tabs" role="tablist"></nav>
</header>
<main>
  <section id="tab-leaderboard" data-tab="leaderboard" data-label="Leaderboard"></section>
  <section id="tab-comparisons" data-tab="comparisons" data-label="Comparisons" hidden></section>
  <section id="tab-scaling" data-tab="scaling" data-label="Scaling curves" hidden></section>
  <section id="tab-training" data-tab="training" data-label="Training curves" hidden></section>
  <section id="tab-winrates" data-tab="winrates" data-label="Win-rates" hidden></section>
  <section id="tab-samples" data-tab="samples" data-label="Samples" hidden></section>
</main>
<noscript><p>This report draws its tables and charts with JavaScript; allow it for this file.</p></noscript>
<script type="application/json" id="report-data">__DATA__</script>
__BLOCKS__
<script>__SCRIPT__</script>
</body>
</html>
"""

STYLE = """
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #d9dee5; --bg: #ffffff; --panel: #f5f7fa; --accent: #2457c5;
        --good: #1b7f3b; --bad: #b3261e; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 0; color: var(--fg); background: var(--bg); font-size: 14px; }
header { padding: 16px 24px 0; border-bottom: 1px solid var(--line); background: var(--panel); }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 20px 0 8px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
main { padding: 8px 24px 32px; }
.muted { color: var(--muted); }
nav button { border: 1px solid var(--line); border-bottom: none; background: #e9edf2; padding: 8px 14px;
             margin-right: 4px; cursor: pointer; font: inherit; border-radius: 6px 6px 0 0; }
nav button[aria-selected="true"] { background: var(--bg); font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--panel); white-space: nowrap; }
th.sortable { cursor: pointer; user-select: none; }
th.sortable::after { content: " \\2195"; color: var(--muted); }
th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--fg); }
th[aria-sort="descending"]::after { content: " \\2193"; color: var(--fg); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.chart { border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: var(--bg); }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 6px 0; font-size: 12px; max-width: 1000px; }
.legend span.swatch { display: inline-block; width: 18px; height: 0; border-top: 3px solid; margin-right: 5px;
                      vertical-align: middle; }
.controls { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; margin: 8px 0; }
.controls label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
select, input, button.page { font: inherit; padding: 3px 6px; }
tr.example { cursor: pointer; }
tr.example:hover, tr.example.open { background: #eef3fc; }
pre { white-space: pre-wrap; word-break: break-word; background: var(--panel); border: 1px solid var(--line);
      border-radius: 4px; padding: 8px; margin: 4px 0; max-height: 420px; overflow: auto; font-size: 12.5px; }
.sample { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; margin: 8px 0; }
.sample.chosen { border: 2px solid var(--accent); background: #f3f7ff; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px; background: #e9edf2;
         margin-right: 6px; }
.badge.chosen { background: var(--accent); color: #fff; }
.right { color: var(--good); } .wrong { color: var(--bad); }
.note { background: #fff8e1; border: 1px solid #f0d98c; padding: 6px 10px; border-radius: 4px; }
.scroll { overflow-x: auto; max-width: 100%; }
#leaderboard td { white-space: nowrap; }
#comparisons td[data-col="note"] { min-width: 240px; }
#pooled td[data-col="verdict"] { min-width: 260px; max-width: 380px; }
#pooled .badge { white-space: nowrap; }
#pooled tr.does-not-hold { background: #fdf0ef; box-shadow: inset 4px 0 var(--bad); }
#pooled tr.holds { box-shadow: inset 4px 0 var(--good); }
#pooled tr.does-not-hold td[data-col="verdict"] { color: var(--bad); font-weight: 600; }
.badge.holds { background: var(--good); color: #fff; } .badge.fails { background: var(--bad); color: #fff; }
ul.seeds { margin: 0; padding: 0; list-style: none; white-space: nowrap; font-variant-numeric: tabular-nums; }
ul.seeds li.against { color: var(--bad); }
.viewer { display: flex; gap: 20px; align-items: flex-start; }
.viewer > .list { flex: 0 1 auto; min-width: 0; }
#detail { flex: 1 1 480px; min-width: 360px; position: sticky; top: 0; max-height: 100vh; overflow: auto; }
@media (max-width: 1100px) { .viewer { display: block; } #detail { position: static; max-height: none; } }
"""

SCRIPT = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("report-data").textContent);
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22"];
const PAGE_SIZE = 50;
const parsed = {};

// Elements are built from tag, attributes and children; a string child becomes a text node, never markup.
function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "onclick" || k === "onchange" || k === "oninput") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return node;
}
function svg(tag, attrs, ...kids) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
  for (const kid of kids) node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return node;
}
function block(id) {
  if (!(id in parsed)) parsed[id] = JSON.parse(document.getElementById(id).textContent);
  return parsed[id];
}
const isNum = (v) => typeof v === "number" && isFinite(v);
const list = (v) => Array.isArray(v) ? v : [];
const f3 = (v) => isNum(v) ? v.toFixed(3) : "-";
const fsign = (v) => isNum(v) ? (v >= 0 ? "+" : "") + v.toFixed(3) : "-";
const f1 = (v) => isNum(v) ? v.toLocaleString("en-US", {minimumFractionDigits: 1, maximumFractionDigits: 1}) : "-";
const fint = (v) => isNum(v) ? Math.round(v).toLocaleString("en-US") : "-";
const ci = (pair, fmt = f3) => pair && isNum(pair[0]) ? `[${fmt(pair[0])}, ${fmt(pair[1])}]` : "-";
const S = (run) => run.summary;
const policyOf = (run) => S(run).policy ? S(run).policy.name : S(run).config.policy;
const nOf = (run) => S(run).config.n > 1 ? ` n=${S(run).config.n}` : "";
const label = (run) => `${policyOf(run)} · ${S(run).task} · ${S(run).sampler}${nOf(run)}`;
const byDir = Object.fromEntries(DATA.runs.map((r, i) => [r.dir, i]));
const colourOf = (() => {
  const policies = [...new Set(DATA.runs.map(policyOf))].sort();
  return (policy) => COLOURS[policies.indexOf(policy) % COLOURS.length];
})();

const missing = (v) => v === null || v === undefined || (typeof v === "number" && !isFinite(v));
function table(columns, rows, opts = {}) {
  // columns: {label, get(row) -> sortable value, show(row) -> text or Node, num}
  const head = el("tr", {});
  const body = el("tbody", {});
  const tbl = el("table", {id: opts.id}, el("thead", {}, head), body);
  let state = {col: null, dir: 1};
  const fill = (list) => {
    body.replaceChildren(...list.map((row) => el("tr", opts.rowAttrs ? opts.rowAttrs(row) : {},
      columns.map((c) => el("td", {class: c.num ? "num" : null, "data-col": c.key},
                            c.show ? c.show(row) : c.get(row))))));
  };
  columns.forEach((c, i) => {
    const th = el("th", {class: opts.sortable ? "sortable" : null, "data-col": c.key, title: c.title}, c.label);
    if (opts.sortable) th.addEventListener("click", () => {
      state = {col: i, dir: state.col === i ? -state.dir : (c.num ? -1 : 1)};
      const key = (row) => c.get(row);
      const sorted = rows.slice().sort((a, b) => {
        const x = key(a), y = key(b);
        const missX = missing(x), missY = missing(y);
        if (missX || missY) return missX - missY;  // missing values last, either direction
        const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return order * state.dir;
      });
      head.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      fill(sorted);
    });
    head.append(th);
  });
  fill(rows);
  return tbl;
}

// -- charts ---------------------------------------------------------------------------------------------------
function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) { hi = lo + 1; }
  const step0 = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(12));
  return out;
}
function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const m of [1, 2, 5]) { const t = m * Math.pow(10, e); if (t >= lo * 0.999 && t <= hi * 1.001) out.push(t); }
  return out.length >= 2 ? out : [lo, hi];
}
function fmtTick(t) {
  if (Math.abs(t) >= 1000) return t.toLocaleString("en-US", {maximumFractionDigits: 0});
  return String(+t.toPrecision(4));
}
// series: {label, colour, dash, marker, x[], y[]}; x: "log2" | "log" | "linear"; y: [lo, hi] or null (fit)
function lineChart({title, xlabel, ylabel, xscale = "linear", yrange = null, series, width = 480, height = 300}) {
  const m = {l: 56, r: 14, t: 26, b: 44}, W = width - m.l - m.r, H = height - m.t - m.b;
  const drawable = ([x, y]) => isNum(x) && isNum(y) && (xscale === "linear" || x > 0);
  const pts = series.flatMap((s) => s.x.map((x, i) => [x, s.y[i]])).filter(drawable);
  const root = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img"});
  root.append(svg("title", {}, title));
  root.append(svg("text", {x: m.l, y: 16, "font-size": 13, "font-weight": 600}, title));
  if (!pts.length) { root.append(svg("text", {x: m.l, y: m.t + 20, fill: "#5f6b7a"}, "nothing to draw")); return root; }
  const tx = xscale === "linear" ? (v) => v : (xscale === "log2" ? Math.log2 : Math.log10);
  let [xlo, xhi] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [ylo, yhi] = yrange || [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (!yrange) { const pad = (yhi - ylo) * 0.05 || Math.abs(yhi) * 0.05 || 1; ylo -= pad; yhi += pad; }
  let xticks = xscale === "log2" ? [...new Set(pts.map((p) => p[0]))].sort((a, b) => a - b)
             : xscale === "log" ? logTicks(xlo, xhi) : niceTicks(xlo, xhi);
  if (xscale === "log") { xlo = Math.min(xlo, xticks[0]); xhi = Math.max(xhi, xticks[xticks.length - 1]); }
  const X0 = tx(xlo), X1 = tx(xhi) === tx(xlo) ? tx(xlo) + 1 : tx(xhi);
  const sx = (v) => m.l + (xlo === xhi ? W / 2 : (tx(v) - X0) / (X1 - X0) * W);
  const sy = (v) => m.t + H - (v - ylo) / (yhi - ylo || 1) * H;
  const axes = svg("g", {"font-size": 11, fill: "#5f6b7a"});
  for (const t of (yrange ? niceTicks(yrange[0], yrange[1]) : niceTicks(ylo, yhi))) {
    if (t < ylo - 1e-9 || t > yhi + 1e-9) continue;
    axes.append(svg("line", {x1: m.l, x2: m.l + W, y1: sy(t), y2: sy(t), stroke: "#e3e7ec"}));
    axes.append(svg("text", {x: m.l - 6, y: sy(t) + 4, "text-anchor": "end"}, fmtTick(t)));
  }
  for (const t of xticks) {
    if (t < xlo - 1e-9 || t > xhi + 1e-9) continue;
    axes.append(svg("line", {x1: sx(t), x2: sx(t), y1: m.t, y2: m.t + H, stroke: "#eef1f4"}));
    axes.append(svg("text", {x: sx(t), y: m.t + H + 16, "text-anchor": "middle"}, fmtTick(t)));
  }
  axes.append(svg("rect", {x: m.l, y: m.t, width: W, height: H, fill: "none", stroke: "#9aa4b1"}));
  axes.append(svg("text", {x: m.l + W / 2, y: height - 6, "text-anchor": "middle", fill: "#1d2330"}, xlabel));
  axes.append(svg("text", {x: 14, y: m.t + H / 2, "text-anchor": "middle", fill: "#1d2330",
                           transform: `rotate(-90 14 ${m.t + H / 2})`}, ylabel));
  root.append(axes);
  for (const s of series) {
    const p = s.x.map((x, i) => [x, s.y[i]]).filter(drawable);
    if (!p.length) continue;
    const g = svg("g", {"data-series": s.label});
    g.append(svg("polyline", {points: p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "),
                              fill: "none", stroke: s.colour, "stroke-width": 2, "stroke-dasharray": s.dash || null}));
    if (p.length <= 40 || s.marker)
      for (const [x, y] of p) {
        const mk = marker(s.marker || "circle", sx(x), sy(y), s.colour);
        mk.append(svg("title", {}, `${s.label}: ${fmtTick(x)} → ${f3(y)}`));
        g.append(mk);
      }
    root.append(g);
  }
  return root;
}
function marker(kind, x, y, colour) {
  const r = 3.5;
  if (kind === "square") return svg("rect", {x: x - r, y: y - r, width: 2 * r, height: 2 * r, fill: colour});
  const q = r + 1;
  const polygon = (points) => svg("polygon", {points, fill: colour});
  if (kind === "diamond") return polygon(`${x},${y - q} ${x + q},${y} ${x},${y + q} ${x - q},${y}`);
  if (kind === "triangle") return polygon(`${x},${y - q} ${x + q},${y + r} ${x - q},${y + r}`);
  if (kind === "none") return svg("g", {});
  return svg("circle", {cx: x, cy: y, r, fill: colour});
}
function legend(series) {
  return el("div", {class: "legend"}, series.map((s) => el("span", {},
    el("span", {class: "swatch", style: `border-top: 3px ${s.dash ? "dashed" : "solid"} ${s.colour}`}),
    s.label)));
}

// -- tabs ---------------------------------------------------------------------------------------------------------
function leaderboardTab(root) {
  const rows = DATA.runs.map((run, i) => ({run, i}));
  const s = (r) => S(r.run);
  const tok = (r, k) => s(r).tokens ? s(r).tokens[k] : null;
  const train = (r, k) => r.run.train ? r.run.train[k] : null;
  const cols = [
    {key: "policy", label: "policy", get: (r) => policyOf(r.run)},
    {key: "task", label: "task", get: (r) => s(r).task},
    {key: "sampler", label: "sampler", get: (r) => s(r).sampler},
    {key: "n", label: "n", num: true, get: (r) => s(r).config.n},
    {key: "options", label: "options", get: (r) => r.run.options,
     title: "run options set away from harness run's defaults (temperature, split, seed, ...)"},
    {key: "verifier", label: "verifier", get: (r) => s(r).verifier || "-"},
    {key: "metric", label: "metric", get: (r) => s(r).metric.name + (s(r).oracle ? " (oracle)" : "")},
    {key: "value", label: "value", num: true, get: (r) => s(r).metric.value, show: (r) => f3(s(r).metric.value)},
    {key: "ci95", label: "95% CI", num: true, get: (r) => s(r).metric.ci95 ? s(r).metric.ci95[0] : null,
     show: (r) => ci(s(r).metric.ci95), title: "seeded bootstrap over examples; sorts by the lower bound"},
    {key: "examples", label: "examples", num: true, get: (r) => s(r).counts.examples},
    {key: "tokens", label: "tokens", num: true, get: (r) => tok(r, "generated"), show: (r) => fint(tok(r, "generated")),
     title: "generated tokens, all samples"},
    {key: "tok_per_example", label: "tokens/example", num: true, get: (r) => tok(r, "per_example"),
     show: (r) => f1(tok(r, "per_example"))},
    {key: "tok_s", label: "tok/s", num: true, get: (r) => s(r).timings.tokens_per_s,
     show: (r) => f1(s(r).timings.tokens_per_s)},
    {key: "wall_s", label: "wall s", num: true, get: (r) => s(r).timings.wall_s, show: (r) => f1(s(r).timings.wall_s)},
    {key: "train_s", label: "training s", num: true, get: (r) => train(r, "wall_seconds"),
     show: (r) => f1(train(r, "wall_seconds")), title: "wall time of training, from the policy's manifest"},
    {key: "train_tokens", label: "training tokens", num: true, get: (r) => train(r, "tokens"),
     show: (r) => fint(train(r, "tokens"))},
    {key: "side", label: "other metrics", get: (r) => Object.keys(s(r).metrics).join(" "),
     show: (r) => Object.entries(s(r).metrics).map(([k, v]) => `${k} ${f3(v.value)}`).join("  ")},
    {key: "run", label: "run", get: (r) => r.run.dir},
  ];
  if (!DATA.runs.some((run) => run.options)) cols.splice(cols.findIndex((c) => c.key === "options"), 1);
  const initial = rows.slice().sort((a, b) => s(a).task.localeCompare(s(b).task) ||
                                               (s(b).metric.value ?? -1) - (s(a).metric.value ?? -1));
  root.append(el("h2", {}, "Leaderboard"),
    el("p", {class: "muted"}, "Every run: its headline metric with the 95% bootstrap interval over examples, what it " +
      "cost to generate, and what training its policy cost (from the policy's manifest, where there is one). " +
      "Click a column to sort."),
    el("div", {class: "scroll"}, table(cols, initial, {id: "leaderboard", sortable: true,
                                                       rowAttrs: (r) => ({"data-run": r.run.dir})})));
  const notes = DATA.runs.filter((r) => r.samples_note);
  if (notes.length) {
    root.append(el("p", {class: "note"}, "Samples unreadable, summary shown alone: ",
                   notes.map((r) => r.samples_note).join("; ")));
  }
  if (DATA.study) {
    const st = DATA.study;
    root.append(el("p", {class: "muted"}, `Study ${st.name ?? ""}` + (st.cells !== null ? `: ${st.cells} cells (` +
      Object.entries(st.status).map(([k, v]) => `${v} ${k}`).join(", ") + ")" : "")));
  }
}

function ciBar(c) {
  const w = 160, h = 18;
  const g = svg("svg", {width: w, height: h, viewBox: `0 0 ${w} ${h}`});
  if (!c.ci95 || !isNum(c.ci95[0])) return g;
  const span = Math.max(Math.abs(c.ci95[0]), Math.abs(c.ci95[1]), Math.abs(c.difference), 0.05) * 1.1;
  const x = (v) => w / 2 + v / span * (w / 2 - 4);
  g.append(svg("line", {x1: w / 2, x2: w / 2, y1: 0, y2: h, stroke: "#9aa4b1"}));
  const colour = c.ci95[0] > 0 ? "#1b7f3b" : c.ci95[1] < 0 ? "#b3261e" : "#5f6b7a";
  g.append(svg("line", {x1: x(c.ci95[0]), x2: x(c.ci95[1]), y1: h / 2, y2: h / 2, stroke: colour, "stroke-width": 3}));
  g.append(svg("circle", {cx: x(c.difference), cy: h / 2, r: 4, fill: colour}));
  return g;
}
function comparisonsTab(root) {
  root.append(el("h2", {}, "Comparisons"));
  if (DATA.pooled.length) pooledTable(root);
  if (DATA.pooled.length) root.append(el("h3", {}, "Each pair of runs"));
  root.append(el("p", {class: "muted"}, "Paired differences of the headline metric on the examples both runs share, " +
      "with a paired bootstrap 95% interval (harness compare): the study's declared comparisons first (one row per " +
      "seed's pair of runs), then every pair of runs that differ only in policy (same task, arguments, split, " +
      "sampler, N and metric), the better-scoring run first."));
  if (!DATA.comparisons.length) {
    root.append(el("p", {}, "No two runs differ only in policy, and no study declares a comparison."));
    return;
  }
  const name = (c, i) => c.names ? c.names[i] : (c.runs[i] ?? "-");
  const cols = [
    {key: "declared", label: "", get: (c) => c.declared ? "declared" : ""},
    {key: "group", label: "task · sampler", get: (c) => {
      const run = c.runs.length ? DATA.runs[byDir[c.runs[0]]] : null;
      return run ? `${S(run).task} · ${S(run).sampler}${S(run).config.n > 1 ? " n=" + S(run).config.n : ""}` :
        (c.declared ? [c.declared.task, c.declared.sampler].filter(Boolean).join(" · ") : "-");
    }},
    {key: "first", label: "first (A)", get: (c) => c.declared && !c.names ? String(c.declared.a ?? "-") : name(c, 0)},
    {key: "second", label: "second (B)", get: (c) => c.declared && !c.names ? String(c.declared.b ?? "-") : name(c, 1)},
    {key: "metric", label: "metric", get: (c) => c.metric ?? "-"},
    {key: "means", label: "A · B", num: true, get: (c) => c.means ? c.means[0] : null,
     show: (c) => c.means ? `${f3(c.means[0])} · ${f3(c.means[1])}` : "-"},
    {key: "difference", label: "A − B", num: true, get: (c) => c.difference ?? null, show: (c) => fsign(c.difference)},
    {key: "ci95", label: "95% CI (paired)", num: true, get: (c) => c.ci95 ? c.ci95[0] : null,
     show: (c) => ci(c.ci95, fsign)},
    {key: "bar", label: "", get: () => 0, show: (c) => ciBar(c)},
    {key: "shared", label: "shared", num: true, get: (c) => c.shared ?? null, show: (c) => fint(c.shared)},
    {key: "better", label: "A better · B better", num: true, get: (c) => c.better ? c.better[0] : null,
     show: (c) => c.better ? `${c.better[0]} · ${c.better[1]}` : "-"},
    {key: "note", label: "note", get: (c) => c.note || ""},
  ];
  root.append(el("div", {class: "scroll"}, table(cols, DATA.comparisons, {id: "comparisons", sortable: true,
    rowAttrs: (c) => ({"data-runs": c.runs.join(" ")})})));
}

// A study's claim pooled over its training seeds (study.json's pooled, harness.compare.PooledComparison).
function pooledTable(root) {
  root.append(el("h3", {}, "Pooled over training seeds"),
    el("p", {class: "muted"}, "Each declared comparison of the study over all its training seeds, as harness study " +
      "computed it, on the examples every run of the claim answered: the mean of the seeds' differences, its 95% " +
      "interval from a hierarchical bootstrap that resamples seeds and examples, its 95% t interval over the seeds' " +
      "differences, and each seed's difference. A claim holds only when every seed's difference has the pooled " +
      "sign and both intervals exclude 0; one that does not hold is marked ✗."));
  const pooled = (c) => isNum(c.difference);
  const state = (c) => !pooled(c) ? "not pooled" : c.holds ? "holds" : "does not hold";
  const winner = (c) => c.difference > 0 ? 0 : c.difference < 0 ? 1 : null;
  const inFavour = (c) => {
    if (!pooled(c)) return "-";
    const w = winner(c), n = c.pairs.length;
    return w === null ? `no side, ${n} seeds` : `${c.seeds_better[w]} of ${n} (${c.names[w]} > ${c.names[1 - w]})`;
  };
  const seedOf = (c, i) => list(c.seeds).length === c.pairs.length ? `seed ${c.seeds[i]}` : `pair ${i + 1}`;
  // a seed not in favour of the pooled winner (the way harness.compare counts the seeds that disagree)
  const against = (c, p) => winner(c) !== null && !(winner(c) === 0 ? p.difference > 0 : p.difference < 0);
  const perSeed = (c) => !pooled(c) ? "-" : el("ul", {class: "seeds"}, c.pairs.map((p, i) =>
    el("li", {"data-seed": i, class: against(c, p) ? "against" : null},
       `${seedOf(c, i)}: ${fsign(p.difference)} ${ci(p.ci95, fsign)}`)));
  const side = (c, i) => c.names ? c.names[i] : String((i ? c.b : c.a) ?? "-");
  const cols = [
    {key: "holds", label: "", get: state,
     show: (c) => el("span", {class: "badge " + (!pooled(c) ? "" : c.holds ? "holds" : "fails")},
                     !pooled(c) ? "not pooled" : c.holds ? "✓ holds" : "✗ does not hold")},
    {key: "claim", label: "claim", get: (c) => `${side(c, 0)} vs ${side(c, 1)}`,
     show: (c) => el("span", {}, el("b", {}, `${side(c, 0)} vs ${side(c, 1)}`),
                     c.compare !== undefined ? ` (compare[${c.compare}])` : "")},
    {key: "group", label: "task · sampler", get: (c) => [c.task, c.sampler].filter(Boolean).join(" · ") +
      (c.n > 1 ? ` n=${c.n}` : "")},
    {key: "verdict", label: "verdict", get: (c) => c.verdict || c.note || ""},
    {key: "difference", label: "A − B pooled", num: true, get: (c) => c.difference ?? null,
     show: (c) => fsign(c.difference)},
    {key: "ci95", label: "95% CI (seeds and examples)", num: true, get: (c) => c.ci95 ? c.ci95[0] : null,
     show: (c) => ci(c.ci95, fsign)},
    {key: "bar", label: "", get: () => 0, show: (c) => pooled(c) ? ciBar(c) : ""},
    {key: "t95", label: "95% t over seeds", num: true, get: (c) => c.t95 ? c.t95[0] : null,
     show: (c) => ci(c.t95, fsign), title: "mean ± t(0.975, seeds − 1) · sd / √seeds of the seeds' differences"},
    {key: "in_favour", label: "seeds in favour", get: inFavour},
    {key: "per_seed", label: "each seed: A − B [95% CI]", get: (c) => list(c.pairs).length || null, show: perSeed},
    {key: "means", label: "A · B", num: true, get: (c) => c.means ? c.means[0] : null,
     show: (c) => c.means ? `${f3(c.means[0])} · ${f3(c.means[1])}` : "-"},
    {key: "spread", label: "sd", num: true, get: (c) => c.spread ?? null, show: (c) => f3(c.spread),
     title: "standard deviation of the seeds' differences"},
    {key: "shared", label: "shared", num: true, get: (c) => c.shared ?? null, show: (c) => fint(c.shared)},
    {key: "seeds", label: "seeds", get: (c) => list(c.seeds).join(", ")},
    {key: "metric", label: "metric", get: (c) => c.metric ?? "-"},
  ];
  root.append(el("div", {class: "scroll"}, table(cols, DATA.pooled, {id: "pooled", sortable: true,
    rowAttrs: (c) => ({"data-state": state(c), class: "pooled " + state(c).replaceAll(" ", "-"), title: c.line,
                       "data-runs": list(c.runs).map((r) => list(r).join(" ")).join("; ")})})));
}

function scalingTab(root) {
  root.append(el("h2", {}, "Scaling curves"),
    el("p", {class: "muted"}, "Expected accuracy of each sampler with N' of a run's N samples per problem (computed " +
      "from the same samples), against N' and against the generated tokens it costs; pass@k dashed. One colour per " +
      "policy, one marker per sampler. The y-axis runs from 0 to 1."));
  const withCurves = DATA.runs.filter((r) => S(r).curves);
  if (!withCurves.length) {
    root.append(el("p", {}, "No run has scaling curves (a run with --n > 1 records them)."));
    return;
  }
  const markers = ["circle", "square", "diamond", "triangle"];
  const tasks = [...new Set(withCurves.map((r) => S(r).task))].sort();
  for (const task of tasks) {
    const runs = withCurves.filter((r) => S(r).task === task);
    const samplers = [...new Set(runs.flatMap((r) => S(r).curves.samplers))].sort();
    const series = (axis) => runs.flatMap((r) => {
      const c = S(r).curves, x = axis === "n" ? c.n : c.tokens, colour = colourOf(policyOf(r));
      const tag = `${policyOf(r)} (N=${S(r).config.n}, ${S(r).sampler} run)`;
      return [...c.samplers.map((sm) => ({label: `${tag} · ${sm}`, colour, x, y: c.accuracy[sm],
                                         marker: markers[samplers.indexOf(sm) % markers.length]})),
              {label: `${tag} · pass@k`, colour, dash: "5 4", marker: "none", x, y: c["pass@k"]}];
    });
    const byN = series("n");
    root.append(el("h3", {}, task),
      el("div", {class: "charts", "data-task": task},
        el("div", {class: "chart"}, lineChart({title: `${task}: accuracy against N`, xlabel: "samples per problem N",
          ylabel: "fraction solved", xscale: "log2", yrange: [0, 1], series: byN})),
        el("div", {class: "chart"}, lineChart({title: `${task}: accuracy against tokens`,
          xlabel: "generated tokens per problem", ylabel: "fraction solved", xscale: "log", yrange: [0, 1],
          series: series("tokens")}))),
      legend(byN));
    const skipped = runs.filter((r) => Object.keys(S(r).curves.skipped || {}).length);
    for (const r of skipped) root.append(el("p", {class: "muted"}, `${label(r)}: no curve for ` +
      Object.entries(S(r).curves.skipped).map(([k, v]) => `${k} (${v})`).join(", ")));
  }
}

function trainingTab(root) {
  root.append(el("h2", {}, "Training curves"),
    el("p", {class: "muted"}, `Each trained policy among the runs' policies, from its manifest's logged history ` +
      `(${DATA.policies_dir}/<name>/policy.json): reward, KL and loss against the training step, and any other ` +
      "logged series."));
  if (!DATA.training.length) {
    root.append(el("p", {id: "no-training"}, "None: no run's policy has a training manifest here (the base model and " +
      "policies given by directory or hub id have no training history)."));
    return;
  }
  const primary = (k) => /(^|[\/_])(loss|kl|rewards?)([\/_]|$)/i.test(k) && !/std$/i.test(k);
  for (const t of DATA.training) {
    const card = el("div", {"data-policy": t.policy});
    root.append(card);
    if (t.error) { card.append(el("h3", {}, t.policy), el("p", {class: "note"}, t.error)); continue; }
    card.append(el("h3", {}, `${t.policy}: ${t.method ?? "?"} (${t.recipe ?? "?"} recipe) from ${t.base ?? "?"}`),
      el("p", {class: "muted"}, `${fint(t.steps)} steps, ${f1(t.wall_seconds)} s, ${fint(t.tokens)} tokens` +
        (t.reward ? `, reward ${t.reward}` : "") + (t.created ? `, trained ${t.created}` : "")));
    const keys = Object.keys(t.series);
    if (!t.step.length || !keys.length) { card.append(el("p", {}, "Its manifest logged no history.")); continue; }
    const chart = (k) => el("div", {class: "chart", "data-series": k}, lineChart({title: k, xlabel: "step", ylabel: k,
      width: 400, height: 240, series: [{label: k, colour: colourOf(t.policy), x: t.step, y: t.series[k]}]}));
    const main = keys.filter(primary);
    const charts = el("div", {class: "charts"}, main.map(chart));
    const others = keys.filter((k) => !primary(k));
    card.append(charts);
    if (!main.length) card.append(el("p", {class: "muted"}, "No reward, KL or loss was logged."));
    if (others.length) {
      const extra = el("div", {class: "charts"});
      const pick = el("select", {onchange: () => extra.replaceChildren(...(pick.value ? [chart(pick.value)] : []))},
        el("option", {value: ""}, "other logged series…"), others.map((k) => el("option", {value: k}, k)));
      card.append(el("div", {class: "controls"}, el("label", {}, "more", pick)), extra);
    }
  }
}

// Whether a judge is independent of the policy it graded, and why not (harness.provenance.judge_facts).
function independence(judge) {
  if (!judge) return "unknown: no judge recorded";
  if (judge.independent === true) return "yes";
  if (judge.independent === false) return "no: " + judge.why;
  if (judge.independent === "unknown") return "unknown: " + judge.why;
  return "not checked (recorded before lineage)";
}

function winratesTab(root) {
  root.append(el("h2", {}, "Win-rates"),
    el("p", {class: "muted"}, "Runs graded by a judge (a win-rate against reference responses): the judge as " +
      "recorded, and whether it is independent of the policy: not the reward the policy was trained against, " +
      "and trained on none of the prompts the policy or any base under it trained on, nor on the run's own " +
      "prompts (each trained model's lineage.json)."));
  const judged = DATA.runs.filter((r) => S(r).judge || /win_rate/.test(S(r).metric.name));
  if (!judged.length) { root.append(el("p", {}, "No run here is graded by a judge.")); return; }
  const m = (r, k) => S(r).metric.name === k ? S(r).metric : S(r).metrics[k];
  const v = (r, k) => m(r, k) ? m(r, k).value : null;
  const vci = (r, k) => m(r, k) ? `${f3(m(r, k).value)} ${ci(m(r, k).ci95)}` : "-";
  const rate = (r) => m(r, "win_rate") ? "win_rate" : S(r).metric.name;
  const cols = [
    {key: "policy", label: "policy", get: (r) => policyOf(r)},
    {key: "task", label: "task", get: (r) => S(r).task},
    {key: "sampler", label: "sampler", get: (r) => S(r).sampler + (S(r).config.n > 1 ? " n=" + S(r).config.n : "")},
    {key: "judge", label: "judge", get: (r) => S(r).judge ? S(r).judge.spec : "(not recorded)"},
    {key: "model", label: "judge model", get: (r) => S(r).judge && S(r).judge.model || "-"},
    {key: "independent", label: "independent", get: (r) => independence(S(r).judge)},
    {key: "win_rate", label: "win-rate", num: true, get: (r) => v(r, rate(r)), show: (r) => vci(r, rate(r))},
    {key: "length_adjusted", label: "length-adjusted", num: true, get: (r) => v(r, "length_adjusted_win_rate"),
     show: (r) => vci(r, "length_adjusted_win_rate")},
    {key: "tie", label: "ties", num: true, get: (r) => v(r, "tie_rate"), show: (r) => f3(v(r, "tie_rate"))},
    {key: "examples", label: "examples", num: true, get: (r) => S(r).counts.examples},
    {key: "run", label: "run", get: (r) => r.dir},
  ];
  root.append(el("div", {class: "scroll"}, table(cols, judged, {id: "winrates", sortable: true,
                                                                rowAttrs: (r) => ({"data-run": r.dir})})));
  root.append(el("h3", {}, "Agreement between judges"));
  if (!DATA.agreement.length) {
    root.append(el("p", {class: "muted"}, "No two judges graded the same samples here. A judge's agreement with " +
      "human or GPT-4 verdicts is not part of a run record; docs/judge.md measures it for the trained judge rm."));
    return;
  }
  root.append(table([
    {key: "policy", label: "samples of", get: (a) => `${a.policy} · ${a.task}`},
    {key: "judges", label: "judges", get: (a) => a.judges.join(" vs ")},
    {key: "agree", label: "same verdict", num: true, get: (a) => a.shared ? a.agree / a.shared : null,
     show: (a) => a.shared ? `${a.agree} of ${a.shared} (${(100 * a.agree / a.shared).toFixed(1)}%)` : "-"},
    {key: "runs", label: "runs", get: (a) => a.runs.join(" vs ")},
  ], DATA.agreement, {id: "agreement", sortable: true}));
}

// -- the sample viewer ------------------------------------------------------------------------------------------
function samplesTab(root) {
  const runsWith = DATA.runs.map((r, i) => ({r, i})).filter(({r}) => !r.samples_note);
  const options = (values) => [el("option", {value: ""}, "all"), ...values.map((v) => el("option", {value: v}, v))];
  const policy = el("select", {id: "f-policy"}, options([...new Set(runsWith.map(({r}) => policyOf(r)))].sort()));
  const task = el("select", {id: "f-task"}, options([...new Set(runsWith.map(({r}) => S(r).task))].sort()));
  const run = el("select", {id: "f-run"}, el("option", {value: ""}, "all"),
                 runsWith.map(({r, i}) => el("option", {value: i}, `${label(r)} (${r.dir})`)));
  const outcome = el("select", {id: "f-outcome"}, el("option", {value: ""}, "all"),
                     el("option", {value: "right"}, "right (full credit)"),
                     el("option", {value: "wrong"}, "wrong (no credit)"),
                     el("option", {value: "partial"}, "partial credit"));
  const search = el("input", {id: "f-id", type: "search", placeholder: "example id contains…"});
  const status = el("span", {id: "sample-status", class: "muted"});
  const prev = el("button", {class: "page", id: "prev"}, "◀ previous");
  const next = el("button", {class: "page", id: "next"}, "next ▶");
  const body = el("tbody", {});
  const list = el("table", {id: "examples"}, el("thead", {}, el("tr", {},
    ["run", "example", "credit", "chosen answer", "samples"].map((h) => el("th", {}, h)))), body);
  const detail = el("div", {id: "detail"});
  let matches = [], page = 0;
  root.append(el("h2", {}, "Samples"),
    el("p", {class: "muted", id: "samples-about"}, "Every example of every run. Filter, then click an example: " +
      "every sample with its grade, the selection verifier's score, the chosen one marked, and the prompt as the " +
      "model saw it (chat template applied). Model text is shown as plain text." +
      (DATA.max_chars ? ` Sample texts and prompts longer than ${DATA.max_chars} characters are cut to that length ` +
       "in this report (each cut one says so); samples.jsonl holds them whole." : " Nothing is cut short.")),
    el("div", {class: "controls"}, el("label", {}, "policy", policy), el("label", {}, "task", task),
       el("label", {}, "run", run), el("label", {}, "outcome", outcome), el("label", {}, "example id", search)),
    el("div", {class: "controls"}, prev, next, status),
    el("div", {class: "viewer"}, el("div", {class: "list"}, list), detail));
  const refilter = () => {
    const wanted = runsWith.filter(({r, i}) => (!policy.value || policyOf(r) === policy.value) &&
      (!task.value || S(r).task === task.value) && (run.value === "" || String(i) === run.value));
    const needle = search.value.trim().toLowerCase();
    matches = [];
    for (const {i} of wanted) {
      const idx = block(`run-${i}-index`);
      for (let e = 0; e < idx.id.length; e++) {
        const c = idx.credit[e];
        if (outcome.value === "right" && !(c >= 1)) continue;
        if (outcome.value === "wrong" && c) continue;
        if (outcome.value === "partial" && !(c > 0 && c < 1)) continue;
        if (needle && !String(idx.id[e]).toLowerCase().includes(needle)) continue;
        matches.push([i, e]);
      }
    }
    page = 0;
    draw();
  };
  const draw = () => {
    const pages = Math.max(1, Math.ceil(matches.length / PAGE_SIZE));
    page = Math.min(Math.max(page, 0), pages - 1);
    const shown = matches.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
    body.replaceChildren(...shown.map(([i, e]) => {
      const idx = block(`run-${i}-index`), c = idx.credit[e];
      const tr = el("tr", {class: "example", "data-run": DATA.runs[i].dir, "data-example": e},
        el("td", {}, label(DATA.runs[i])), el("td", {}, idx.id[e] || `#${e}`),
        el("td", {class: "num " + (c >= 1 ? "right" : c ? "" : "wrong")}, isNum(c) ? String(+c.toFixed(3)) : "-"),
        el("td", {}, idx.error[e] ? `selection failed: ${idx.error[e]}` : (idx.answer[e] ?? "-")),
        el("td", {class: "num"}, idx.samples[e]));
      tr.addEventListener("click", () => { body.querySelectorAll("tr.open").forEach((t) => t.classList.remove("open"));
                                           tr.classList.add("open"); openExample(detail, i, e); });
      return tr;
    }));
    status.textContent = matches.length ? `${page * PAGE_SIZE + 1}–${page * PAGE_SIZE + shown.length} of ` +
      `${matches.length.toLocaleString("en-US")} examples (page ${page + 1} of ${pages})` : "no example matches";
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    root.setAttribute("data-samples-ready", String(performance.now()));
  };
  prev.addEventListener("click", () => { page--; draw(); });
  next.addEventListener("click", () => { page++; draw(); });
  for (const c of [policy, task, run, outcome]) c.addEventListener("change", refilter);
  search.addEventListener("input", refilter);
  return refilter;
}
function openExample(root, i, e) {
  const run = DATA.runs[i], idx = block(`run-${i}-index`), d = block(`run-${i}-samples`);
  const start = d.start[e], count = idx.samples[e], cut = (key) => d.cut[key];
  const cutNote = (key) => cut(key) ? el("p", {class: "note cut"}, `cut to ${DATA.max_chars} of ${cut(key)} characters`)
                                    : null;
  const samples = [];
  for (let j = start; j < start + count; j++) {
    const chosen = idx.selected[e] === j - start, g = d.grade[j], sc = d.score[j];
    samples.push(el("div", {class: "sample" + (chosen ? " chosen" : ""), "data-sample": j - start,
                            "data-chosen": chosen ? "true" : null},
      el("div", {},
        el("span", {class: "badge"}, `#${j - start}`), chosen ? el("span", {class: "badge chosen"}, "★ chosen") : null,
        el("span", {class: "badge " + (g >= 1 ? "right" : g === 0 ? "wrong" : "")},
           `grade ${isNum(g) ? +g.toFixed(4) : "-"}`),
        el("span", {class: "badge"}, `answer ${d.grade_answer[j] ?? "-"}`),
        sc !== null ? el("span", {class: "badge"}, `verifier score ${+sc.toFixed(4)}` + (d.score_raw[j] !== undefined ?
          ` (raw ${+Number(d.score_raw[j]).toFixed(4)})` : "")) : null,
        el("span", {class: "badge"}, `${d.tokens[j]} tokens, ${d.finish_names[d.finish[j]]}`),
        el("span", {class: "badge"}, `logprob ${d.logprob[j] ?? "-"}`),
        d.grade_error[j] ? el("span", {class: "badge wrong"}, `grader error: ${d.grade_error[j]}`) : null,
        d.score_error[j] ? el("span", {class: "badge wrong"}, `verifier error: ${d.score_error[j]}`) : null),
      el("pre", {class: "text"}, d.text[j]), cutNote(j)));
  }
  root.replaceChildren(
    el("h3", {}, `${label(run)}: example ${idx.id[e] || "#" + e}`),
    el("p", {}, `credit ${isNum(idx.credit[e]) ? +idx.credit[e].toFixed(4) : "-"}, reference answer `,
       el("code", {id: "reference"}, d.reference[e] ?? "(none)"),
       idx.error[e] ? ` — selection failed: ${idx.error[e]}` : ""),
    el("details", {open: true}, el("summary", {}, "rendered prompt"), el("pre", {id: "prompt"}, d.prompt[e]),
       cutNote(`p${e}`)),
    el("h3", {}, count === 1 ? "1 sample" : `${count} samples`), ...samples);
}

// -- start ------------------------------------------------------------------------------------------------------
function start() {
  document.getElementById("title").textContent = DATA.title;
  document.getElementById("about").textContent = `${DATA.runs.length} runs from ${DATA.runs_dir}; written ` +
    `${DATA.created} by harness ${DATA.harness ?? "?"}. Everything is inside this file: it makes no request.`;
  const nav = document.getElementById("tabs");
  const sections = [...document.querySelectorAll("main > section")];
  const fill = {leaderboard: leaderboardTab, comparisons: comparisonsTab, scaling: scalingTab, training: trainingTab,
                winrates: winratesTab};
  let refilter = null;
  const show = (name) => {
    for (const s of sections) s.hidden = s.dataset.tab !== name;
    for (const b of nav.querySelectorAll("button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
    if (name === "samples" && !refilter) refilter = samplesTab(document.getElementById("tab-samples"));
    if (name === "samples" && refilter && !document.querySelector("#tab-samples[data-samples-ready]")) refilter();
  };
  for (const s of sections) {
    nav.append(el("button", {role: "tab", id: `tab-button-${s.dataset.tab}`, "data-tab": s.dataset.tab,
                             onclick: () => show(s.dataset.tab)},
                  s.dataset.label));
    if (fill[s.dataset.tab]) fill[s.dataset.tab](s);
  }
  const wanted = location.hash.slice(1);
  show(sections.some((s) => s.dataset.tab === wanted) ? wanted : "leaderboard");
  document.documentElement.setAttribute("data-ready", String(performance.now()));
}
try { start(); } catch (err) {
  document.body.prepend(el("p", {class: "note"}, `This report failed to draw: ${err}`));
  console.error(err);
}
"""
