"""``harness report``: one HTML file, opened from disk in a real browser (Debian's chromium through chromedriver).

The runs are the canned records of ``tests/fixtures/records-v2`` plus runs derived from them as typed records
(other policies, win-rates under two judges, a sample whose text is markup), two training manifests and a
``study.json`` declaring a comparison; and a study over three training seeds whose ``study.json`` ``harness study``'s
own code writes (a claim that holds across the seeds, one that does not, one not pooled). Every browser test ends by
checking that the page made no request other than for its own file and logged no console error.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner

from harness import leaderboard
from harness.cli import app
from harness.compare import compare_runs
from harness.metrics import bootstrap_ci, mean
from harness.record import (
    TRAINED_AGAINST,
    Headline,
    JudgeFacts,
    Measure,
    PolicyFacts,
    iter_summaries,
    read_record,
    read_summary,
    write_record,
)
from harness.report import write_report
from harness.study import load
from harness.study_run import compare, write_study, write_view
from harness.types import Completion, Score
from plugins.winrate import LENGTH_ADJUSTED

FIXTURES = Path(__file__).parent / "fixtures" / "records-v2"
GREEDY = "canned-countdown-greedy-n1-9851e53b"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Model text is untrusted: shown as text, this does nothing; parsed as markup, it requests a URL and retitles the page.
MARKUP = ('</script><script>document.title = "pwned"</script><b>bold?</b>'
          '<img src="https://example.invalid/x.png" onerror="document.title = \'pwned\'">')


def derive(runs: Path, source: str, run_id: str, policy: str, wins: set[int], *, task: str | None = None,
           judge: JudgeFacts | None = None, text: str | None = None, adjusted: str = LENGTH_ADJUSTED,
           **options: Any) -> Path:
    """A copy of a canned greedy run under another policy: examples in ``wins`` earn full credit, the rest none
    (a win-rate run: half credit on example 1, a tie, and its length-adjusted win-rate under the name
    ``adjusted``); ``text`` replaces the first example's sample; ``options`` are run options set on its config."""
    records, summary = read_record(FIXTURES / source)
    for e, record in enumerate(records):
        value = 1.0 if e in wins else (0.5 if judge and e == 1 else 0.0)
        sample = record.samples[record.selected]
        if e == 0 and text is not None:
            sample.completion = Completion(text, 40, -3.5, "stop")
        sample.grade = Score(value, answer=None if judge else f"answer {e}")
        record.credit = value
    credits = [r.credit for r in records]
    name = "win_rate" if judge else summary.metric.name
    metrics = ({adjusted: Measure(mean(credits) * 0.9, (0.1, 0.8)), "tie_rate": Measure(1 / len(records))}
               if judge else summary.metrics)
    summary = dataclasses.replace(
        summary, run_id=run_id, metric=Headline(mean(credits), bootstrap_ci(credits), name), metrics=metrics,
        counts=dataclasses.replace(summary.counts, credited=sum(credits)), task=task or summary.task,
        config=dataclasses.replace(summary.config, task=task or summary.task, policy=policy, **options),
        policy=PolicyFacts(policy, fingerprint=f"{policy}-weights"), judge=judge,
        grader="winrate" if judge else summary.grader)
    write_record(runs / run_id, records, summary)
    return runs / run_id


def manifest(home: Path, name: str, method: str, history: list[dict]) -> None:
    folder = home / "policies" / name
    folder.mkdir(parents=True)
    (folder / "policy.json").write_text(json.dumps({
        "name": name, "method": method, "recipe": "quick", "base": "smollm2", "steps": len(history),
        "wall_seconds": 738.4, "tokens": 123456, "reward": "countdown" if method == "rloo" else None,
        "history": history}))


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """A study directory: canned runs, derived runs, ``study.json``; manifests in its own HARNESS_HOME."""
    root = tmp_path_factory.mktemp("report")
    runs, home = root / "runs", root / "home"
    shutil.copytree(FIXTURES, runs)
    derive(runs, GREEDY, "sft-countdown-greedy", "sft", {0, 1, 2, 3}, text=MARKUP)
    derive(runs, GREEDY, "rloo-countdown-greedy", "rloo", {0, 1, 2, 3, 4, 5, 6})
    rm = JudgeFacts("rm:rm", "/models/rm", independent=True, why="none shared")
    other = JudgeFacts("rm:other", "/models/other")  # recorded before lineage: never checked
    derive(runs, GREEDY, "sft-alpaca-rm", "sft", {0, 2, 3, 5}, task="alpaca", judge=rm)
    derive(runs, GREEDY, "sft-alpaca-other", "sft", {0, 2, 4, 5, 6}, task="alpaca", judge=other,
           adjusted="lc_win_rate")  # the length-adjusted win-rate's name before the rename
    derive(runs, GREEDY, "rloo-alpaca-rm", "rloo", {0, 2, 3, 5, 7, 8}, task="alpaca",
           judge=dataclasses.replace(rm, trained_against=True, independent=False, why=TRAINED_AGAINST))
    manifest(home, "sft", "sft", [{"step": s, "loss": 2.0 / s, "learning_rate": 1e-4, "epoch": s / 10}
                                  for s in range(1, 11)])
    manifest(home, "rloo", "rloo", [{"step": s, "loss": 0.1 * s, "kl": 0.01 * s, "reward": 0.05 * s,
                                     "rewards/verifier:countdown/mean": 0.05 * s, "grad_norm": 1.0}
                                    for s in range(1, 11)])
    (runs / "study.json").write_text(json.dumps({
        "name": "quick", "cells": [{"status": "done"}] * 7 + [{"status": "pending"}],
        "comparisons": [{"a": "sft", "b": "rloo", "task": "countdown", "sampler": "greedy"},
                        {"a": "dpo", "b": "sft", "task": "countdown"}]}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(home))
        report = write_report(runs, root / "out" / "report.html")
    return {"runs": runs, "report": report, "root": root}


# rloo beats sft by 7, 7 and 6 of 12 examples (the claim holds); sft beats the base model by 1 and 2 examples on two
# seeds and ties on the third (it does not hold); rloo's and sft's majority runs never ran (not pooled).
SEEDED = """seeds: [0, 1, 2]
policies:
  base: smollm2
  sft: {train: sft}
  rloo: {train: rloo, base: sft}
runs:
  - {policy: [base, sft, rloo], sampler: greedy, limit: 12}
  - {policy: [sft, rloo], sampler: majority, n: 4, limit: 12}
compare:
  - {a: rloo, b: sft}
  - {a: sft, b: base, sampler: greedy}
"""
WINS = {"smollm2": {3}, "sft-s0": {0, 1}, "sft-s1": {0, 1, 2}, "sft-s2": {0},
        "rloo-s0": set(range(9)), "rloo-s1": set(range(10)), "rloo-s2": set(range(7))}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> dict:
    """A study's directory over three seeds: its greedy runs derived from the canned one, its ``study.json`` written by
    ``harness.study_run`` (each seed's pair and each claim pooled), and its report."""
    root = tmp_path_factory.mktemp("seeded")
    (root / "study.yaml").write_text(SEEDED)
    study = load(root / "study.yaml")
    study.output = root / "runs"
    for cell in study.runs:
        if cell.config.sampler == "greedy":
            policy = cell.config.policy
            derive(study.output, GREEDY, policy, policy, WINS[policy])
            cell.status, cell.record = "done", policy
    saved = write_study(study, "local", compare(study))
    view = write_view(study)
    (root / "home").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(root / "home"))
        report = write_report(view, root / "report.html")
    return {"runs": study.output, "view": view, "report": report,
            "pooled": json.loads(saved.read_text())["pooled"]}


# -- without a browser -----------------------------------------------------------------------------------------

runner = CliRunner()


def one_line_error(args: list[str], *mentions: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for word in mentions:
        assert word in lines[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    one_line_error(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")], "does not exist")
    (tmp_path / "empty").mkdir()
    one_line_error(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")], "holds no runs")
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES, runs)
    one_line_error(["report", str(runs), "--out", str(tmp_path)], "is a directory")
    (tmp_path / "file").write_text("x")
    one_line_error(["report", str(tmp_path / "file"), "--out", str(tmp_path / "r.html")], "not a directory")
    assert not (tmp_path / "r.html").exists()


def test_a_runs_directory_names_the_studies_inside_it_each_reported_from_its_own_folder(seeded, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["report", str(seeded["runs"]), "--out", str(tmp_path / "all.html")])
    view = seeded["view"]
    assert result.exit_code == 0 and f"study {view.name}: `harness report {view}` reports its runs alone" in \
        result.output, result.output
    page = (tmp_path / "all.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    assert data["pooled"] == [] and data["study"] is None  # the runs directory is no study's
    assert len(data["runs"]) == len(list(view.glob("*/summary.json")))


def test_each_run_carries_the_options_that_set_it_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES, runs)
    derive(runs, GREEDY, "hot", "sft", {0}, temperature=1.3, split="validation")
    page = write_report(runs, tmp_path / "r.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    assert {r["dir"]: r["options"] for r in data["runs"] if r["options"]} == {"hot": "split=validation "
                                                                                    "temperature=1.3"}


def test_the_file_holds_every_record_and_no_markup_escapes_its_block(study):
    page = study["report"].read_text(encoding="utf-8")
    blocks = dict(re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', page, re.S))
    data = json.loads(blocks.pop("report-data"))
    summaries = {d.name: s for d, s in iter_summaries(study["runs"])}
    assert {r["dir"] for r in data["runs"]} == set(summaries) and len(summaries) == 8
    assert len(blocks) == 2 * len(summaries)  # an index and the samples of each run
    assert page.count("<script") == page.count("</script>") == len(blocks) + 2  # the data, the blocks, the code
    for i, run in enumerate(data["runs"]):
        records, _ = read_record(study["runs"] / run["dir"])
        samples = json.loads(blocks[f"run-{i}-samples"])
        assert samples["text"] == [s.completion.text for r in records for s in r.samples]  # MARKUP included, whole
        assert samples["prompt"] == [r.rendered_prompt for r in records]
        assert json.loads(blocks[f"run-{i}-index"])["credit"] == [r.credit for r in records]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.replace(MARKUP, ""))
    assert "<link" not in page and "@import" not in page


def test_the_page_holds_study_json_s_pooled_entries_each_with_its_verdict(seeded, tmp_path):
    page = seeded["report"].read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    holds, unpooled, fails = seeded["pooled"]
    assert holds["holds"] and not fails["holds"] and unpooled["note"] == "not pooled: 3 of 3 seeds not run"
    assert data["pooled"] == [holds, {k: v for k, v in unpooled.items() if k != "runs"}, fails]  # as written
    verdicts = [p.get("verdict") for p in data["pooled"]]
    assert verdicts[0].startswith("holds: rloo > sft holds on 3 of 3 seeds") and holds["line"].endswith(verdicts[0])
    assert verdicts[2].startswith("does not hold across seeds: sft > base holds on 2 of 3 seeds; the seeds disagree "
                                  "(1 not in favour)") and fails["line"].endswith(verdicts[2])
    assert verdicts[1] is None and all(len(p["t95"]) == 2 for p in (holds, fails))
    study = json.loads((seeded["view"] / "study.json").read_text())  # its output: the runs' absolute path
    said = {**holds, "verdict": "holds: as harness study worded it"}  # the page words nothing itself
    old = {k: v for k, v in holds.items() if k not in ("verdict", "t95")}  # study.json from before the verdict
    study["pooled"] = [7, {**holds, "pairs": "none", "seeds": "0"}, said, old]
    (tmp_path / "study.json").write_text(json.dumps(study))
    out = write_report(tmp_path, tmp_path / "bad.html")
    bad = json.loads(re.search(r'id="report-data">(.*?)</script>', out.read_text(), re.S).group(1))["pooled"]
    named = {"compare": 1, "a": "rloo", "b": "sft", "task": "countdown", "sampler": "greedy", "n": 1}
    assert bad == [{"note": "not a pooled comparison: an entry of study.json's pooled must be a mapping"},
                   {**named, "note": "not a pooled comparison: its numbers are missing or malformed"}, said,
                   {**named, "seeds": [0, 1, 2], "note": "no verdict: study.json is from an earlier harness study; "
                                                         "rerun it to pool the claim again"}]


def test_max_chars_cuts_and_says_so(study, tmp_path):
    out = write_report(study["runs"], tmp_path / "cut.html", max_chars=20)
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', out.read_text(), re.S).group(1))
    assert data["max_chars"] == 20
    samples = json.loads(re.search(r'id="run-0-samples">(.*?)</script>', out.read_text(), re.S).group(1))
    assert max(len(t) for t in samples["text"]) <= 20 and samples["cut"]


def test_the_leaderboard_shows_an_old_records_lc_win_rate_as_the_length_adjusted_one(study, monkeypatch):
    """Records from before and after the rename fill one column, each with its own number."""
    monkeypatch.setenv("HARNESS_HOME", str(study["root"] / "home"))
    data = leaderboard.rows(study["runs"])
    adjusted = {r["run"]: r.get(LENGTH_ADJUSTED) for r in data if r["task"] == "alpaca"}
    assert adjusted == {run: next(m.value for k, m in read_summary(study["runs"] / run).metrics.items()
                                  if k.endswith("win_rate"))
                        for run in ("sft-alpaca-rm", "sft-alpaca-other", "rloo-alpaca-rm")}
    assert not any("lc_win_rate" in r for r in data)
    header = leaderboard.render(study["runs"], "md").splitlines()[0]
    assert header.count(LENGTH_ADJUSTED) == 1 and "lc_win_rate" not in header


# -- in the browser --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(study):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"no browser to test the report in: {', '.join(missing)} not installed "
                    f"(apt-get install chromium chromium-driver; `make install` does it as root)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.get(study["report"].as_uri())
    try:
        wait(driver, lambda d: d.execute_script("return document.documentElement.getAttribute('data-ready')"))
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def quiet(driver) -> None:
    """No request but for local files, and no console error, since the last check."""
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    assert [u for u in requests if urlparse(u).scheme not in ("file", "data", "about")] == []
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


def tab(driver, name: str):
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, f"tab-button-{name}").click()
    section = driver.find_element(By.ID, f"tab-{name}")
    assert section.is_displayed()
    return section


def cells(driver, table: str, column: str) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll(`#${arguments[0]} tbody td[data-col=${arguments[1]}]`)]"
        ".map((td) => td.textContent)", table, column)


def interval(text: str) -> tuple[float, float]:
    low, high = re.fullmatch(r"\[(\S+), (\S+)\]", text).groups()
    return float(low), float(high)


@pytest.mark.slow
def test_leaderboard_shows_each_runs_metric_and_interval_from_its_summary(browser, study):
    from selenium.webdriver.common.by import By

    tab(browser, "leaderboard")
    rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
    summaries = {d.name: s for d, s in iter_summaries(study["runs"])}
    assert len(rows) == len(summaries)
    for row in rows:
        s = summaries[row.get_attribute("data-run")]
        text = {td.get_attribute("data-col"): td.get_property("textContent")
                for td in row.find_elements(By.TAG_NAME, "td")}
        assert text["policy"] == s.policy_name and text["task"] == s.task and text["sampler"] == s.sampler
        assert abs(float(text["value"]) - s.metric.value) <= 5e-4 + 1e-12
        low, high = interval(text["ci95"])
        assert abs(low - s.metric.ci95[0]) <= 5e-4 + 1e-12 and abs(high - s.metric.ci95[1]) <= 5e-4 + 1e-12
        assert text["tokens"] == f"{s.tokens.generated:,}"
        trained = {"sft": "738.4", "rloo": "738.4"}.get(s.policy_name, "-")
        assert text["train_s"] == trained
    quiet(browser)


@pytest.mark.slow
def test_clicking_a_column_header_sorts_by_it(browser):
    from selenium.webdriver.common.by import By

    tab(browser, "leaderboard")
    before = [float(v) for v in cells(browser, "leaderboard", "value")]
    header = browser.find_element(By.CSS_SELECTOR, "#leaderboard th[data-col=value]")
    header.click()
    descending = [float(v) for v in cells(browser, "leaderboard", "value")]
    assert descending == sorted(before, reverse=True) and descending != before
    assert header.get_attribute("aria-sort") == "descending"
    header.click()
    assert [float(v) for v in cells(browser, "leaderboard", "value")] == sorted(before)
    assert header.get_attribute("aria-sort") == "ascending"
    browser.find_element(By.CSS_SELECTOR, "#leaderboard th[data-col=policy]").click()
    policies = cells(browser, "leaderboard", "policy")
    assert policies == sorted(policies) and len(set(policies)) == 3
    quiet(browser)


@pytest.mark.slow
def test_comparisons_are_harness_compare_s_numbers(browser, study):
    from selenium.webdriver.common.by import By

    tab(browser, "comparisons")
    rows = browser.find_elements(By.CSS_SELECTOR, "#comparisons tbody tr")
    pairs = [row.get_attribute("data-runs").split() for row in rows]
    # countdown greedy: 3 policies, 3 pairs (the declared sft-rloo first); alpaca win-rates: 2 pairs across policies;
    # the declared dpo comparison matches no runs
    assert pairs[0] == ["sft-countdown-greedy", "rloo-countdown-greedy"] and [] in pairs
    assert len([p for p in pairs if p]) == 5
    for row, pair in zip(rows, pairs, strict=True):
        text = {td.get_attribute("data-col"): td.get_property("textContent")
                for td in row.find_elements(By.TAG_NAME, "td")}
        if not pair:
            assert "no pair of runs" in text["note"] and text["declared"] == "declared"
            continue
        expected = compare_runs(study["runs"] / pair[0], study["runs"] / pair[1])
        assert abs(float(text["difference"]) - expected.difference) <= 5e-4 + 1e-12
        low, high = interval(text["ci95"])
        assert abs(low - expected.ci95[0]) <= 5e-4 + 1e-12 and abs(high - expected.ci95[1]) <= 5e-4 + 1e-12
        assert text["better"] == f"{expected.better[0]} · {expected.better[1]}"
        assert text["shared"] == str(expected.shared)
    quiet(browser)


@pytest.mark.slow
def test_scaling_training_and_win_rate_tabs(browser, study):
    from selenium.webdriver.common.by import By

    section = tab(browser, "scaling")
    charts = section.find_elements(By.CSS_SELECTOR, ".charts")
    assert sorted(c.get_attribute("data-task") for c in charts) == ["countdown", "gsm8k"]
    for chart in charts:
        for svg in chart.find_elements(By.TAG_NAME, "svg"):
            y_labels = svg.find_elements(By.CSS_SELECTOR, "g text[text-anchor=end]")
            ticks = [t.get_property("textContent") for t in y_labels]
            assert ticks == ["0", "0.2", "0.4", "0.6", "0.8", "1"]  # the y-axis from 0 to 1
            assert svg.find_elements(By.TAG_NAME, "polyline")
    section = tab(browser, "training")
    cards = {c.get_attribute("data-policy"): c for c in section.find_elements(By.CSS_SELECTOR, "[data-policy]")}
    assert set(cards) == {"sft", "rloo"}
    shown = {k: {c.get_attribute("data-series") for c in card.find_elements(By.CSS_SELECTOR, ".chart")}
             for k, card in cards.items()}
    assert shown["sft"] == {"loss"}
    assert shown["rloo"] == {"loss", "kl", "reward", "rewards/verifier:countdown/mean"}
    section = tab(browser, "winrates")
    independent = dict(zip(cells(browser, "winrates", "run"), cells(browser, "winrates", "independent"), strict=True))
    assert independent == {"sft-alpaca-rm": "yes", "sft-alpaca-other": "not checked (recorded before lineage)",
                           "rloo-alpaca-rm": "no: the policy was trained against this judge"}
    adjusted = dict(zip(cells(browser, "winrates", "run"), cells(browser, "winrates", "length_adjusted"),
                        strict=True))
    for run, shown in adjusted.items():  # the old name's number shows in the same column
        (measure,) = (m for k, m in read_summary(study["runs"] / run).metrics.items() if k.endswith("win_rate"))
        assert shown == f"{measure.value:.3f} [0.100, 0.800]"
    assert cells(browser, "agreement", "judges") in (["rm:other vs rm:rm"], ["rm:rm vs rm:other"])
    assert cells(browser, "agreement", "agree") == ["9 of 12 (75.0%)"]
    quiet(browser)


@pytest.mark.slow
def test_a_sample_opens_with_every_sample_the_chosen_one_and_the_prompt_as_text(browser, study):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    section = tab(browser, "samples")
    title = browser.title
    Select(section.find_element(By.ID, "f-policy")).select_by_value("sft")
    Select(section.find_element(By.ID, "f-task")).select_by_value("countdown")
    rows = section.find_elements(By.CSS_SELECTOR, "tr.example")
    assert {r.get_attribute("data-run") for r in rows} == {"sft-countdown-greedy"} and len(rows) == 12
    rows[0].click()
    records, _ = read_record(study["runs"] / "sft-countdown-greedy")
    detail = browser.find_element(By.ID, "detail")
    texts = [p.get_property("textContent") for p in detail.find_elements(By.CSS_SELECTOR, ".sample pre")]
    assert texts == [s.completion.text for s in records[0].samples] and texts[0] == MARKUP
    chosen = detail.find_elements(By.CSS_SELECTOR, ".sample[data-chosen=true]")
    assert [c.get_attribute("data-sample") for c in chosen] == [str(records[0].selected)]
    assert "chosen" in chosen[0].get_property("textContent")
    assert detail.find_element(By.ID, "prompt").get_property("textContent") == records[0].rendered_prompt
    # the markup stayed text: no element came of it, the title is the report's
    assert browser.find_elements(By.CSS_SELECTOR, "#detail img, #detail b, #detail script") == []
    assert browser.title == title != "pwned"
    # right / wrong
    Select(section.find_element(By.ID, "f-outcome")).select_by_value("right")
    credits = [r.find_elements(By.TAG_NAME, "td")[2].get_property("textContent")
               for r in section.find_elements(By.CSS_SELECTOR, "tr.example")]
    assert credits == ["1"] * 4
    Select(section.find_element(By.ID, "f-outcome")).select_by_value("wrong")
    assert len(section.find_elements(By.CSS_SELECTOR, "tr.example")) == 8
    quiet(browser)


@pytest.mark.slow
def test_screenshot_is_not_blank(browser, study, tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    tab(browser, "scaling")
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    with image_module.open(shot) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert rgb.size[0] >= 800 and rgb.size[1] >= 600
    assert colours is not None and len(colours) > 50  # text, lines, markers: not one flat colour
    most = max(count for count, _ in colours)
    assert most < 0.95 * rgb.size[0] * rgb.size[1]
    quiet(browser)


@pytest.mark.slow
def test_pooled_comparisons_show_study_json_s_numbers_apart_from_each_pair(browser, study, seeded):
    from selenium.webdriver.common.by import By

    browser.get(seeded["report"].as_uri())
    try:
        wait(browser, lambda d: d.execute_script("return document.documentElement.getAttribute('data-ready')"))
        tab(browser, "comparisons")
        rows = browser.find_elements(By.CSS_SELECTOR, "#pooled tbody tr")
        assert [r.get_attribute("data-state") for r in rows] == ["holds", "not pooled", "does not hold"]
        for row, entry in zip(rows, seeded["pooled"], strict=True):
            text = {td.get_attribute("data-col"): td.get_property("textContent")
                    for td in row.find_elements(By.TAG_NAME, "td")}
            assert text["claim"] == f"{entry['a']} vs {entry['b']} (compare[{entry['compare']}])"
            assert text["seeds"] == "0, 1, 2"
            if "note" in entry:
                assert text["verdict"] == entry["note"] and text["holds"] == "not pooled"
                continue
            assert entry["line"].endswith(text["verdict"])
            assert text["holds"] == ("✓ holds" if entry["holds"] else "✗ does not hold")
            assert abs(float(text["difference"]) - entry["difference"]) <= 5e-4 + 1e-12
            low, high = interval(text["ci95"])
            assert abs(low - entry["ci95"][0]) <= 5e-4 + 1e-12 and abs(high - entry["ci95"][1]) <= 5e-4 + 1e-12
            assert interval(text["t95"]) == pytest.approx(entry["t95"], abs=5e-4 + 1e-12)
            n = len(entry["pairs"])
            assert text["in_favour"] == f"{entry['seeds_better'][0]} of {n} ({entry['a']} > {entry['b']})"
            seeds = row.find_elements(By.CSS_SELECTOR, "td[data-col=per_seed] li")
            wins = [(len(WINS[a]) - len(WINS[b])) / 12 for a, b in entry["runs"]]  # each seed's difference
            shown = [float(li.get_property("textContent").split()[2]) for li in seeds]
            assert shown == pytest.approx([p["difference"] for p in entry["pairs"]], abs=5e-4)
            assert shown == pytest.approx(wins, abs=5e-4)
            against = [li.get_property("textContent").split(":")[0] for li in seeds
                       if "against" in li.get_attribute("class").split()]
            assert against == ([] if entry["holds"] else ["seed 2"])  # sft ties the base model on seed 2
        colour = [r.value_of_css_property("background-color") for r in rows]
        assert colour[2] != colour[0] == colour[1]  # the claim that does not hold stands out
        # apart from each seed's pair: its own table, before theirs, none of whose rows is pooled
        order = browser.execute_script(
            "return [...document.querySelectorAll('#tab-comparisons h3, #tab-comparisons table')]"
            ".map((e) => e.id || e.textContent)")
        assert order == ["Pooled over training seeds", "pooled", "Each pair of runs", "comparisons"]
        pairs = [r.get_attribute("data-runs").split() for r in
                 browser.find_elements(By.CSS_SELECTOR, "#comparisons tbody tr")]
        assert ["rloo-s2", "sft-s2"] in pairs and all(len(p) in (0, 2) for p in pairs)
        notes = cells(browser, "comparisons", "note")  # the majority seeds, as study.json says
        assert notes.count("not run: no pair of runs matches this comparison") == 3
        quiet(browser)
    finally:
        browser.get(study["report"].as_uri())
        wait(browser, lambda d: d.execute_script("return document.documentElement.getAttribute('data-ready')"))
