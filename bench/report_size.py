"""The HTML report at the size the issue asks it to stay usable at: its bytes and its load time in Chromium.

Usage: python bench/report_size.py [--runs 10] [--examples 1000] [--samples 16] [--loads 3] [--keep DIR]
       python bench/report_size.py --report FILE [--loads 3]     # a report already written, e.g. a study's

Builds a synthetic runs directory (no model: typed records written by ``harness.record``): ``--runs`` runs of
``--examples`` Countdown-like examples with ``--samples`` samples each (texts of 150 to 1,000 characters, a
rendered prompt of about 600), five policies each with best-of-N and majority, curves, and a training manifest
with 500 logged steps for each trained policy. Writes the report and prints its size, the time
``write_report`` took, and, in headless Chromium (``/usr/bin/chromium`` through ``chromedriver``), the load time:
navigation start to the ``data-ready`` attribute the page sets once it has drawn (median of ``--loads`` fresh
loads), then the script time of opening the Samples tab and of opening one example. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.metrics import bootstrap_ci, mean
from harness.record import Counts, Curves, Headline, Measure, PolicyFacts, RunSummary, Timings, Tokens, write_record
from harness.types import Completion, Example, ExampleRecord, RunConfig, SampleRecord, Score

POLICIES = ("smollm2", "sft", "rloo", "dpo", "rft")
SAMPLERS = ("bon", "majority")
WORDS = ["".join(random.Random(i).choices(string.ascii_lowercase, k=random.Random(-i).randint(2, 9)))
         for i in range(2000)]


def _text(rng: random.Random, low: int, high: int) -> str:
    length = rng.randint(low, high)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < length:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:length]


def _run(out: Path, policy: str, sampler: str, examples: int, samples: int, skill: float) -> None:
    rng = random.Random(f"{policy}/{sampler}")
    records = []
    for e in range(examples):
        prompt = f"Using the numbers [{e % 97}, {e % 13 + 2}, {e % 7 + 3}], create an equation that equals {e % 89}. "
        rendered = "<|im_start|>system\n" + _text(random.Random(e), 500, 700) + f"<|im_end|>\n{prompt}<|im_end|>\n"
        drawn = []
        for _ in range(samples):
            text = _text(rng, 150, 1000)
            right = rng.random() < skill
            grade = Score(1.0 if right else 0.0, answer=f"{e % 97} + {rng.randint(1, 99)}")
            score = Score(rng.random(), answer=grade.answer)
            drawn.append(SampleRecord(Completion(text, len(text) // 4, -rng.uniform(5, 60), "stop"),
                                      rng.uniform(0.01, 0.2), grade, score if sampler == "bon" else None))
        selected = max(range(samples), key=lambda j: drawn[j].grade.value + rng.random())
        records.append(ExampleRecord(Example(prompt, str(e % 89), {"target": e % 89}, f"cd-{e}"), rendered, drawn,
                                     selected, drawn[selected].grade.value))
    credits = [r.credit for r in records]
    config = RunConfig(policy=policy, sampler=sampler, n=samples, limit=examples,
                       verifier="countdown" if sampler == "bon" else None)
    ns = [k for k in (1, 2, 4, 8, 16, 32, 64) if k < samples] + [samples]
    curve = [min(1.0, skill * (1 + 0.8 * i)) for i in range(len(ns))]
    generated = sum(s.completion.tokens for r in records for s in r.samples)
    run_id = config.run_id({}, policy)
    summary = RunSummary(
        run_id=run_id, config=config, metric=Headline(mean(credits), bootstrap_ci(credits), "accuracy"),
        counts=Counts(examples, examples * samples, sum(credits)), task="countdown", sampler=sampler,
        grader="countdown", verifier=config.verifier,
        metrics={"well_formed": Measure(0.9, (0.88, 0.92))},
        tokens=Tokens(generated, generated / examples, generated / (examples * samples)),
        timings=Timings(1.0, 600.0, 5.0, generated / 600.0, 610.0),
        curves=Curves(ns, [t * generated / (examples * samples) for t in ns], [min(1.0, c * 1.3) for c in curve],
                      {s: curve for s in SAMPLERS}, list(SAMPLERS), problems=examples, samples=samples),
        policy=PolicyFacts(policy, fingerprint=f"{policy:0<16}"[:16]),
    )
    write_record(out / run_id, records, summary)


def _manifests(home: Path) -> None:
    import json

    for name in POLICIES[1:]:
        rng = random.Random(name)
        history = [{"step": s, "loss": 2.0 / (1 + s / 50) + rng.uniform(0, 0.05),
                    **({"reward": 0.2 + 0.5 * s / 500, "kl": 0.001 * s} if name == "rloo" else {}),
                    "learning_rate": 1e-4, "grad_norm": rng.uniform(0.5, 2.0)} for s in range(1, 501)]
        folder = home / "policies" / name
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {"name": name, "method": "rloo" if name == "rloo" else "sft", "recipe": "quick",
                    "base": "smollm2", "steps": 500, "wall_seconds": 738.0, "tokens": 1_234_567, "history": history}
        (folder / "policy.json").write_text(json.dumps(manifest))


def _chromium(report: Path, loads: int) -> dict[str, float]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    ready = []
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.set_page_load_timeout(300)
        for _ in range(loads):
            driver.get("about:blank")
            driver.get(report.as_uri())
            deadline = time.time() + 300
            value = None
            while value is None and time.time() < deadline:
                value = driver.execute_script("return document.documentElement.getAttribute('data-ready')")
                time.sleep(0.05)
            if value is None:
                raise SystemExit("the report never set data-ready")
            ready.append(float(value))
        samples_tab = driver.execute_script(
            "const t = performance.now(); document.getElementById('tab-button-samples').click();"
            "return performance.now() - t;")
        example = driver.execute_script(
            "const t = performance.now(); document.querySelector('tr.example').click(); return performance.now() - t;")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        if errors:
            raise SystemExit(f"console errors: {errors}")
    finally:
        driver.quit()
    return {"ready_ms": statistics.median(ready), "ready_all": ready, "samples_tab_ms": samples_tab,
            "example_ms": example}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the runs and report here instead of a temporary folder")
    parser.add_argument("--report", type=Path, help="measure this report instead of building one")
    args = parser.parse_args()
    if args.report:
        _describe(args.report, _chromium(args.report.resolve(), args.loads), args.loads)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="report-size-"))
    os.environ["HARNESS_HOME"] = str(root / "home")
    _manifests(root / "home")
    runs = root / "runs"
    combos = [(p, s) for s in SAMPLERS for p in POLICIES][: args.runs]
    started = time.perf_counter()
    for i, (policy, sampler) in enumerate(combos):
        _run(runs, policy, sampler, args.examples, args.samples, 0.2 + 0.05 * i)
    built = time.perf_counter() - started

    from harness.report import write_report

    started = time.perf_counter()
    report = write_report(runs, root / "report.html")
    wrote = time.perf_counter() - started
    samples_bytes = sum((d / "samples.jsonl").stat().st_size for d in runs.iterdir() if d.is_dir())
    browser = _chromium(report, args.loads)
    print(f"runs: {len(combos)} x {args.examples} examples x {args.samples} samples (records built in {built:.1f} s; "
          f"samples.jsonl in all: {samples_bytes:,} bytes); write_report: {wrote:.1f} s")
    _describe(report, browser, args.loads)
    if not args.keep:
        shutil.rmtree(root)


def _describe(report: Path, browser: dict[str, float], loads: int) -> None:
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    cpu = " ".join(cpu.split()).removeprefix("Model name: ")
    chromium = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True).stdout.strip()
    size = report.stat().st_size
    print(f"date: {time.strftime('%Y-%m-%d')}; {cpu or platform.processor()}; {os.cpu_count()} CPUs; {chromium}; "
          f"python {sys.version.split()[0]}")
    print(f"report: {size:,} bytes ({size / 2**20:.1f} MiB)")
    print(f"load (navigation start -> data-ready), median of {loads}: {browser['ready_ms']:.0f} ms "
          f"(each: {', '.join(f'{v:.0f}' for v in browser['ready_all'])} ms)")
    print(f"open the Samples tab: {browser['samples_tab_ms']:.0f} ms of script; open one example: "
          f"{browser['example_ms']:.0f} ms of script")


if __name__ == "__main__":
    main()
