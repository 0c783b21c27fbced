"""The fuzz tier: bad invocations of every command, generated, each of which must end in one line and change nothing.

Every invocation runs in-process (typer's ``CliRunner`` on ``harness.cli.app``, plugins' commands included)
against a fixture world: a runs directory (canned records, a wrong-typed record, a record whose task data was
changed, a corrupt generation cache) and a ``HARNESS_HOME`` of manifests (a list, a wrong-typed adapter and model,
a base that names itself, two bases that name each other, a ``data`` that is a string). The rules, per invocation:

- a bad value or name: exit code 2, no Python exception, and exactly one line on stderr starting ``error: ``
  (lines starting ``warning: `` may come before it: a broken plugin installed beside is reported); for a bad
  number or an empty name the line names the option (``--max-tokens``, ``max_tokens`` or ``max-tokens``);
- a malformed flag (a word where a number goes, an unknown option, a missing argument): typer's own usage error,
  exit code 2 with ``Usage:`` and its boxed message (several lines), no Python exception; decided so because
  that message is typer's, printed before any harness code runs;
- every file under the world is byte-for-byte unchanged, none added or removed (checksums before and after),
  except the digest memo ``file-digests.sqlite`` in ``HARNESS_HOME`` (a cache of weight-file hashes, no record);
- no model is converted or downloaded, no engine starts and no trainer runs: each of those is replaced by a stub
  that fails the invocation (``Started``), so a case that gets that far is a check that came too late.

The seeds are the cases of issue 20 (``SEEDS``, one test each); the generated cases mix bad numbers (nan, inf,
negative, zero, huge, words), empty, whitespace and newline names, paths that are files, directories, missing or
inside a record, and malformed KEY=VALUE arguments. Hypothesis runs derandomized (the same cases in every run).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import harness
from harness.cli import app
from harness.plugins import registry

pytestmark = pytest.mark.fuzz

RECORDS = ROOT / "tests" / "fixtures" / "records-v2"
GREEDY, BON, GSM8K = "canned-countdown-greedy-n1-9851e53b", "canned-countdown-bon-n4-19e76204", \
    "canned-gsm8k-majority-n5-ac39c5c1"
COMMANDS = sorted(typer.main.get_command(app).commands)  # run, score, ..., and train, policies, augment (a plugin)
MEMO = "file-digests.sqlite"
GENERATED = 1500  # hypothesis examples, about 50 ms each: the whole file stays under two minutes


class Started(Exception):
    """A model conversion, download, engine or trainer was reached: the invocation's input was not checked first."""


@dataclass(frozen=True)
class World:
    root: Path
    runs: Path
    home: Path
    work: Path

    def record(self, name: str) -> Path:
        return self.runs / name


def _corrupt_cache(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)  # a header, then garbage


def _build(root: Path) -> World:
    runs, home, work = root / "runs", root / "home", root / "work"
    for name in (GREEDY, BON, GSM8K):
        shutil.copytree(RECORDS / name, runs / name)
    # the same GSM8K run over another data file: other problems behind the same row-number ids
    other = runs / "canned-gsm8k-other-data"
    shutil.copytree(RECORDS / GSM8K, other)
    summary = json.loads((other / "summary.json").read_text())
    summary["config"]["task_args"] = {"data": "/elsewhere/gsm8k-other"}
    summary["run_id"] = other.name
    (other / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = [json.loads(line) for line in (other / "samples.jsonl").read_text().splitlines()]
    for line in lines:  # same ids (row numbers), other problems
        line["prompt"] = "Another problem: " + line["prompt"]
        line["rendered_prompt"] = line["rendered_prompt"].replace(line["prompt"][len("Another problem: "):],
                                                                  line["prompt"])
    (other / "samples.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    # one wrong-typed summary: the leaderboard skips it with a warning, everything else fails on it in one line
    typed = runs / "canned-wrong-typed"
    shutil.copytree(RECORDS / GREEDY, typed)
    summary = json.loads((typed / "summary.json").read_text())
    summary["counts"] = "many"
    (typed / "summary.json").write_text(json.dumps(summary))
    _corrupt_cache(runs / "cache" / "generations.sqlite")
    manifests = {"list-manifest": [], "adapter-five": {"base": "smollm2", "adapter": 5}, "model-five": {"model": 5},
                 "self-loop": {"name": "self-loop", "base": "self-loop"}, "loop-a": {"base": "loop-b"},
                 "loop-b": {"base": "loop-a"}, "data-string": {"name": "data-string", "base": "/no/such/model",
                                                               "method": "sft", "data": "countdown"}}
    for name, content in manifests.items():
        (home / "policies" / name).mkdir(parents=True)
        (home / "policies" / name / "policy.json").write_text(json.dumps(content))
    studies = {"study-list.yaml": "[]\n", "study-garbage.yaml": "{not: yaml: [\n", "study-empty.yaml": "",
               "study-text.yaml": "just words\n", "study-number.yaml": "7\n"}
    for name, text in studies.items():
        (root / name).write_text(text)
    (work / "dir.jsonl").mkdir(parents=True)  # a directory where augment's .jsonl file would go
    (root / "odd\ndir").mkdir()  # names a message must not print raw: a newline or carriage return splits the line
    (root / "odd\rfile.txt").write_text("x\n")
    (home / "policies" / "odd\nname").mkdir()
    (home / "policies" / "odd\nname" / "policy.json").write_text("[]")
    (root / "afile.txt").write_text("a file that is not a directory, a record or a model\n")
    return World(root, runs, home, work)


def checksums(world: World) -> dict[str, str]:
    found = {}
    for path in sorted(world.root.rglob("*")):
        if path.is_file() and not path.name.startswith(MEMO):
            found[str(path.relative_to(world.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            found[str(path.relative_to(world.root)) + "/"] = "dir"
    return found


# ---------------------------------------------------------------- components that fail as a hostile plugin would

class _RaisingTask:
    name, verifier = "fuzz-raises", "countdown"

    def examples(self, split="test", limit=None, seed=0):
        raise RuntimeError("the task's data is gone")


class _StrayTask:
    name, verifier = "fuzz-strays", "countdown"

    def examples(self, split="test", limit=None, seed=0):
        yield "not an example"


class _ExitingTask:
    name, verifier = "fuzz-exits", "countdown"

    def examples(self, split="test", limit=None, seed=0):
        raise SystemExit(3)


class _WordMetrics:
    name, reference_free = "fuzz-word-metrics", True

    def score(self, example, completion):
        return harness.Score(1.0, metrics={"quality": "high"})


class _ExitingVerifier:
    name, reference_free = "fuzz-exits", True

    def score(self, example, completion):
        raise SystemExit(4)


HOSTILE = (("task", _RaisingTask()), ("task", _StrayTask()), ("task", _ExitingTask()),
           ("verifier", _WordMetrics()), ("verifier", _ExitingVerifier()))


def _started(what: str):
    def stub(*args, **kwargs):
        raise Started(f"{what} was reached")

    return stub


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """The fixture world, HARNESS_HOME pointing into it, the working directory inside it, every expensive step
    stubbed to fail, and the hostile components registered."""
    built = _build(tmp_path_factory.mktemp("fuzz"))
    reg = registry()
    for kind, component in HOSTILE:
        reg.add(kind, component, f"tests:{component.name}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(built.home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.chdir(built.work)
        import harness.engines
        import harness.pipeline
        import harness.policy
        import policies.augment
        import policies.rollout
        import policies.train

        mp.setattr(harness.policy, "embedded_model", _started("converting the embedded model"))
        mp.setattr(harness.policy, "_download", _started("a hub download"))
        for module in (harness.engines, harness.pipeline, policies.augment, policies.rollout):
            mp.setattr(module, "load_engine", _started("an engine start"))
        mp.setattr(policies.train, "prepare_output", _started("training (its output directory)"))
        yield built
    for kind, component in HOSTILE:
        del reg.components[kind][component.name]
        del reg.sources[kind, component.name]


RUNNER = CliRunner()


def mentions(line: str, flag: str) -> bool:
    bare = flag.lstrip("-")
    return any(form in line for form in (flag, bare, bare.replace("-", "_"), bare.replace("_", "-")))


def check(world: World, args: list[str], mention: str | None = None) -> str:
    """Invoke ``harness ARGS``: one line (or typer's usage error), a non-zero exit, nothing changed. Returns the
    error line (or ``usage``)."""
    before = checksums(world)
    result = RUNNER.invoke(app, args)
    assert not isinstance(result.exception, Started), f"harness {args!r}: {result.exception}"
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"harness {args!r} raised {type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in result.output, result.output
    assert checksums(world) == before, f"harness {args!r} changed the world"
    assert result.exit_code == 2, f"harness {args!r} exited {result.exit_code}: {result.output[-600:]}"
    if "Usage:" in result.stderr or "─ Error ─" in result.stderr:  # typer's own message for a malformed flag
        return "usage"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    others = [line for line in lines if not line.startswith(("error: ", "warning: "))]
    assert len(errors) == 1 and not others, f"harness {args!r}: stderr is not one error line: {lines}"
    if mention:
        assert mentions(errors[0], mention), f"harness {args!r}: {errors[0]!r} does not name {mention}"
    return errors[0]


# ---------------------------------------------------------------- the seeds: every case of issue 20

FEW = ("--limit", "2")  # a run that gets past its plan lists this many problems, not countdown's 1,024


def _seeds() -> list[tuple[str, list[str], str | None]]:
    """(id, args with {runs}/{home}/{work}/{root} to fill in, the option the line must name)."""
    greedy, bon, gsm8k, other = (f"{{runs}}/{n}" for n in (GREEDY, BON, GSM8K, "canned-gsm8k-other-data"))
    return [
        ("plot-out-replaces-summary", ["plot", bon, "--out", f"{bon}/summary.json"], "--out"),
        ("plot-out-inside-record", ["plot", bon, "--out", f"{bon}/curves.png"], "--out"),
        ("plot-out-is-a-directory", ["plot", bon, "--out", "{work}"], "--out"),
        ("compare-different-data-files", ["compare", gsm8k, other], None),
        ("compare-different-tasks", ["compare", greedy, gsm8k], None),
        ("run-output-is-a-file", ["run", "--output", "{root}/afile.txt"], "--output"),
        ("run-output-is-a-record", ["run", "--output", greedy], "--output"),
        ("score-output-is-a-file", ["score", greedy, "-o", "{root}/afile.txt"], "--output"),
        ("score-output-inside-a-record", ["score", greedy, "-o", greedy], "--output"),
        ("score-wrong-typed-record", ["score", "{runs}/canned-wrong-typed"], None),
        ("manifest-is-a-list", ["run", "--policy", "list-manifest", *FEW, "-o", "{runs}"], "list-manifest"),
        ("manifest-adapter-is-a-number", ["run", "--policy", "adapter-five", *FEW, "-o", "{runs}"], "adapter-five"),
        ("manifest-model-is-a-number", ["run", "--policy", "model-five", *FEW, "-o", "{runs}"], "model-five"),
        ("manifest-base-names-itself", ["run", "--policy", "self-loop", *FEW, "-o", "{runs}"],
         "self-loop -> self-loop"),
        ("manifest-bases-name-each-other", ["run", "--policy", "loop-a", *FEW, "-o", "{runs}"],
         "loop-a -> loop-b -> loop-a"),
        ("train-base-names-itself", ["train", "sft", "--base", "self-loop"], "self-loop -> self-loop"),
        ("train-base-cycle", ["train", "dpo", "--base", "loop-b"], "loop-b -> loop-a -> loop-b"),
        ("augment-policy-cycle", ["augment", "--policy", "loop-a", "--rows", "2"], "loop-a -> loop-b -> loop-a"),
        ("task-examples-raise", ["run", "--task", "fuzz-raises", "-o", "{runs}"], "fuzz-raises"),
        ("task-yields-a-string", ["run", "--task", "fuzz-strays", "-o", "{runs}"], "fuzz-strays"),
        ("task-raises-systemexit", ["run", "--task", "fuzz-exits", "-o", "{runs}"], "fuzz-exits"),
        ("augment-task-raises-systemexit", ["augment", "--task", "fuzz-exits", "--policy", "/no/such"], "fuzz-exits"),
        ("run-temperature-nan", ["run", "--sampler", "bon", "--n", "2", "--temperature", "nan", "-o", "{runs}"],
         "--temperature"),
        ("run-temperature-nan-greedy", ["run", "--temperature", "nan", "-o", "{runs}"], "--temperature"),
        ("augment-temperature-negative", ["augment", "--temperature", "-1"], "--temperature"),
        ("augment-temperature-nan", ["augment", "--temperature", "nan"], "--temperature"),
        ("run-backend-foo", ["run", "--backend", "foo", "-o", "{runs}"], "--backend"),
        ("score-backend-foo-is-no-option", ["score", greedy, "--backend", "foo"], None),
        ("run-grader-empty", ["run", "--grader", "", "-o", "{runs}"], "--grader"),
        ("run-verifier-empty", ["run", "--sampler", "bon", "--n", "2", "--verifier", "", "-o", "{runs}"],
         "--verifier"),
        ("score-grader-empty", ["score", greedy, "--grader", ""], "--grader"),
        ("train-name-empty", ["train", "sft", "--name", "", "--base", "/no/such"], "--name"),
        ("train-name-whitespace", ["train", "sft", "--name", " ", "--base", "/no/such"], "--name"),
        ("train-base-empty", ["train", "sft", "--base", ""], "base"),
        ("train-reward-empty", ["train", "rloo", "--reward", "", "--base", "/no/such"], "reward"),
        ("augment-verifier-empty", ["augment", "--verifier", "", "--policy", "/no/such"], "--verifier"),
        ("policy-name-trailing-newline", ["run", "--policy", "self-loop\n", *FEW, "-o", "{runs}"], None),
        ("train-name-trailing-newline", ["train", "sft", "--name", "sft\n", "--base", "/no/such"], "--name"),
        ("run-policy-empty", ["run", "--policy", "", *FEW, "-o", "{runs}"], "policy"),
        ("augment-policy-whitespace", ["augment", "--policy", " "], "--policy"),
        ("leaderboard-output-is-a-file", ["leaderboard", "-o", "{root}/afile.txt"], None),
        ("leaderboard-format-empty", ["leaderboard", "-o", "{runs}", "--format", ""], "format"),
    ]


SEEDS = _seeds()


def fill(world: World, args: list[str]) -> list[str]:
    return [a.format(runs=world.runs, home=world.home, work=world.work, root=world.root) for a in args]


@pytest.mark.parametrize("args, mention", [(a, m) for _, a, m in SEEDS], ids=[i for i, _, _ in SEEDS])
def test_seed_case_fails_in_one_line_and_changes_nothing(world, args, mention):
    check(world, fill(world, args), mention)


@pytest.mark.parametrize("grader", ["fuzz-word-metrics", "fuzz-exits"])
def test_a_grader_that_fails_on_every_sample_exits_non_zero_with_the_count(world, tmp_path, grader):
    """A Score with a word for a metric, a verifier raising SystemExit: every grade errors, the run says how many."""
    before = checksums(world)
    result = RUNNER.invoke(app, ["score", str(world.record(GREEDY)), "--grader", grader, "-o", str(tmp_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code not in (0, None) and "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    samples = sum(len(json.loads(line)["samples"]) for line in (world.record(GREEDY) / "samples.jsonl").open())
    assert len(errors) == 1 and f"all {samples} grades errored" in errors[0], result.stderr
    assert checksums(world) == before


def test_every_command_is_fuzzed():
    """A new command must be added to ``invocations`` (and to the seeds where an issue names it)."""
    assert set(COMMANDS) <= set(GENERATORS), f"commands without a fuzz generator: {set(COMMANDS) - set(GENERATORS)}"


# ---------------------------------------------------------------- generated cases

NAN_INF = ["nan", "NaN", "inf", "-inf", "1e999", "-1e999"]
NEGATIVE = ["-1", "-0.5", "-1e9"]
COUNTS_BAD = ["0", "-1", "-99999999999999999999999999"]
SEEDS_BAD = ["-1", str(2**32), str(2**64)]
NOT_INTS = ["x", "", "1.5", "nan", "1e3", "0x10", "1,000", "ten"]
NOT_FLOATS = ["x", "", "1.5.1", "one", "1,5", "0x1p"]
BLANK = ["", " ", "\t", "\n", "  \n "]
NAMES_BAD = [*BLANK, "nope", "sft\n", " sft", "a\nb", "a\rb", "rm:", ":x", "countdown:", "\x00", "\x1b[31mred",
             "rm:/no/such\nmodel"]
KV_BAD = ["x", "=1", "=", "", "a\nb", "\n=1", " =1", "numbers=\n"]


def kv_mention(flag: str, value: str) -> str | None:
    """Not KEY=VALUE (no '=', or no key): the line names the flag; an odd key or value fails later, naming it."""
    return flag if "=" not in value or value.startswith("=") else None
YAML_NAN_INF = [".nan", "nan", ".inf", "-.inf", "inf", "1e999", "-1e999"]


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    mention: str | None = None


def _path(world: World, kind: str) -> str:
    r = world.runs
    return {"missing": str(world.root / "no" / "such" / "dir"), "file": str(world.root / "afile.txt"),
            "under-file": str(world.root / "afile.txt" / "x"), "plain-dir": str(world.work), "runs": str(r),
            "record": str(r / GREEDY), "in-record": str(r / GREEDY / "sub"),
            "summary": str(r / GREEDY / "summary.json"),
            "samples": str(r / BON / "samples.jsonl"), "cache": str(r / "cache" / "generations.sqlite"),
            "cache-dir": str(r / "cache"), "wrong-typed": str(r / "canned-wrong-typed"), "empty": "",
            "newline-dir": str(world.root / "odd\ndir"), "cr-file": str(world.root / "odd\rfile.txt"),
            "newline-missing": str(world.root / "no\nsuch")}[kind]


BAD_RUN_DIRS = ["missing", "file", "under-file", "plain-dir", "runs", "summary", "cache", "cache-dir", "wrong-typed",
                "newline-dir", "cr-file", "newline-missing"]
BAD_OUT_DIRS = ["file", "under-file", "record", "in-record", "summary", "cache", "cr-file"]


def _numbers(table: dict[str, list[str]]) -> st.SearchStrategy:
    return st.sampled_from(sorted(table)).flatmap(lambda flag: st.sampled_from(table[flag]).map(lambda v: (flag, v)))


RUN_NUMBERS = {**{flag: COUNTS_BAD for flag in ("--n", "--limit", "--max-tokens", "--batch-size", "--max-model-len",
                                                "--tensor-parallel-size", "--data-parallel-size", "--max-num-seqs",
                                                "--max-num-batched-tokens")},
               "--seed": SEEDS_BAD, "--temperature": NAN_INF + NEGATIVE, "--top-p": NAN_INF + ["0", "-0.1", "1.5"],
               "--kv-cache-gib": NAN_INF + ["0", "-1"]}
RUN_NAMES = ["--policy", "--task", "--sampler", "--grader", "--split", "--backend", "--dtype"]
AUGMENT_NUMBERS = {**{flag: COUNTS_BAD for flag in ("--n", "--rows", "--keep", "--max-tokens", "--max-model-len")},
                   "--seed": SEEDS_BAD, "--temperature": NAN_INF + NEGATIVE,
                   "--threshold": NAN_INF + ["0", "-0.5", "1.5"]}

def _flagged(world: World, command: str, fixed: list[str]) -> st.SearchStrategy[Case]:
    """Typer's usage errors: a word where a number goes, an unknown option, an option with no value."""
    numeric = {"run": ["--n", "--temperature", "--top-p", "--kv-cache-gib"], "augment": ["--n", "--threshold"],
               "report": ["--max-chars"]}.get(command, [])
    cases = [st.sampled_from(["--bogus", "--n=", "-z"]).map(lambda f: Case((command, *fixed, f)))]
    if numeric:
        cases.append(st.tuples(st.sampled_from(numeric), st.sampled_from(NOT_INTS + NOT_FLOATS)).filter(
            lambda fv: not (fv[0] in ("--temperature", "--top-p", "--kv-cache-gib", "--threshold")
                            and fv[1] in ("nan", "1e3", "1.5"))).map(
            lambda fv: Case((command, *fixed, fv[0], fv[1]))))
    return st.one_of(cases)


def invocations(world: World) -> dict[str, st.SearchStrategy[Case]]:
    runs, p = str(world.runs), lambda kind: _path(world, kind)
    record, bon, gsm8k, other = (str(world.record(n)) for n in (GREEDY, BON, GSM8K, "canned-gsm8k-other-data"))

    run_one = st.one_of(
        _numbers(RUN_NUMBERS).map(lambda fv: Case(("run", "-o", runs, *FEW, fv[0], fv[1]), fv[0])),
        st.tuples(st.sampled_from(RUN_NAMES), st.sampled_from(BLANK)).map(
            lambda fv: Case(("run", "-o", runs, *FEW, fv[0], fv[1]), fv[0].lstrip("-"))),
        st.tuples(st.sampled_from(RUN_NAMES), st.sampled_from(NAMES_BAD)).map(
            lambda fv: Case(("run", "-o", runs, *FEW, fv[0], fv[1]))),
        st.tuples(st.sampled_from(["--task-arg", "--verifier-arg", "--grader-arg"]), st.sampled_from(KV_BAD)).map(
            lambda fv: Case(("run", "-o", runs, *FEW, fv[0], fv[1]), kv_mention(*fv))),
        st.sampled_from(BAD_OUT_DIRS).map(lambda k: Case(("run", "-o", runs, *FEW, "-o", p(k)), "--output")),
        st.sampled_from(["list-manifest", "adapter-five", "model-five", "self-loop", "loop-b", p("missing"),
                         p("file"), p("plain-dir"), p("record"), p("newline-dir"), p("cr-file"),
                         p("newline-missing"), "odd\nname"]).map(
            lambda pol: Case(("run", "-o", runs, *FEW, "--policy", pol))),
    )
    run_many = st.lists(run_one, min_size=2, max_size=3).map(
        lambda cs: Case(("run", "-o", runs, *FEW, *[a for c in cs for a in c.args[3:]])))

    good_record = st.sampled_from([record, bon, gsm8k])
    score = st.one_of(
        st.sampled_from(BAD_RUN_DIRS).map(lambda k: Case(("score", p(k)))),
        st.tuples(good_record, st.sampled_from(["--verifier", "--grader"]), st.sampled_from(NAMES_BAD)).map(
            lambda t: Case(("score", t[0], "-o", str(world.work / "out"), t[1], t[2]))),
        st.tuples(good_record, st.sampled_from(["--verifier", "--grader"]), st.sampled_from(BLANK)).map(
            lambda t: Case(("score", t[0], "-o", str(world.work / "out"), t[1], t[2]), t[1])),
        st.tuples(good_record, st.sampled_from(["--verifier-arg", "--grader-arg"]), st.sampled_from(KV_BAD)).map(
            lambda t: Case(("score", t[0], "-o", str(world.work / "out"), t[1], t[2]), kv_mention(t[1], t[2]))),
        st.tuples(good_record, st.sampled_from(BAD_OUT_DIRS)).map(
            lambda t: Case(("score", t[0], "-o", p(t[1])), "--output")),
    )
    any_dir = st.sampled_from(BAD_RUN_DIRS).map(p)
    compare = st.one_of(
        st.tuples(any_dir, st.one_of(any_dir, good_record)).flatmap(lambda t: st.permutations(t)).map(
            lambda t: Case(("compare", *t))),
        st.sampled_from([(record, gsm8k), (gsm8k, other), (other, gsm8k), (bon, other)]).map(
            lambda t: Case(("compare", *t))),
    )
    leaderboard = st.one_of(
        st.sampled_from(["missing", "file", "under-file", "summary", "cache"]).map(
            lambda k: Case(("leaderboard", "-o", p(k)))),
        st.sampled_from(["", " ", "xml", "md ", "tables", "\n", "json\n"]).map(
            lambda f: Case(("leaderboard", "-o", runs, "--format", f), "format")),
    )
    bad_png = st.sampled_from(["summary", "samples", "plain-dir", "under-file", "empty", "newline-dir"]).map(p) | \
        st.sampled_from(
        [str(world.record(BON) / "curves.png"), str(world.record(GREEDY) / "x.png")])
    plot = st.one_of(
        st.lists(any_dir, min_size=1, max_size=2).map(lambda ds: Case(("plot", *ds, "--out",
                                                                        str(world.work / "x.png")))),
        st.tuples(any_dir, st.just(bon)).flatmap(st.permutations).map(
            lambda ds: Case(("plot", *ds, "--out", str(world.work / "x.png")))),
        bad_png.map(lambda out: Case(("plot", bon, "--out", out), "--out")),
    )
    report = st.one_of(
        st.sampled_from(["missing", "file", "under-file", "summary"]).map(lambda k: Case(("report", p(k)))),
        bad_png.map(lambda out: Case(("report", runs, "--out", out), "--out")),
        st.sampled_from(COUNTS_BAD).map(lambda v: Case(("report", runs, "--out", str(world.work / "r.html"),
                                                        "--max-chars", v), "--max-chars")),
    )
    plugins = st.sampled_from([("extra",), ("--json",), ("--task", "x")]).map(lambda a: Case(("plugins", *a)))

    from policies.recipe import METHODS

    def float_keys(method: str) -> list[str]:
        hints = typing.get_type_hints(METHODS[method].config)
        return sorted(f for f, t in hints.items() if t in (float, float | None))

    def count_keys(method: str) -> list[str]:
        hints = typing.get_type_hints(METHODS[method].config)
        return sorted(f for f, t in hints.items() if t is int and f not in ("seed", "k"))

    methods = st.sampled_from(sorted(METHODS))
    nobase = ("--base", str(world.root / "no-such-base"))
    train = st.one_of(
        st.sampled_from(["", " ", "ppo", "sft\n", " sft", "SFT"]).map(lambda m: Case(("train", m, *nobase))),
        st.tuples(methods, st.sampled_from(["", " ", "nope", "quick\n", "../quick"])).map(
            lambda t: Case(("train", t[0], "--recipe", t[1], *nobase))),
        st.tuples(methods, st.sampled_from([*BLANK, "sft\n", "../x", "a/b", "a b", ".hidden", "é\n"])).map(
            lambda t: Case(("train", t[0], "--name", t[1], *nobase), "--name")),
        st.tuples(methods, st.sampled_from([*NAMES_BAD, "list-manifest", "self-loop", "loop-a", "model-five",
                                            p("missing"), p("file"), p("record"), p("newline-dir"),
                                            p("cr-file")])).map(
            lambda t: Case(("train", t[0], "--base", t[1]))),
        st.sampled_from([*NAMES_BAD, "nope"]).map(lambda r: Case(("train", "rloo", "--reward", r, *nobase))),
        methods.flatmap(lambda m: st.tuples(st.just(m), st.sampled_from(float_keys(m)),
                                            st.sampled_from(YAML_NAN_INF))).map(
            lambda t: Case(("train", t[0], f"{t[1]}={t[2]}", *nobase), t[1])),
        methods.flatmap(lambda m: st.tuples(st.just(m), st.sampled_from(count_keys(m)),
                                            st.sampled_from(["0", "-1", "-1" + "0" * 30]))).map(
            lambda t: Case(("train", t[0], f"{t[1]}={t[2]}", *nobase), t[1])),
        st.tuples(methods, st.sampled_from(["steps", "=1", "1=1", "stepz=1", " =1", "steps=[1", "steps={a: 1}",
                                            "base=", "data=", "data=[{source: nope}]", "seed=-1",
                                            "learning_rate=fast", "lora_dropout=1", "warmup_ratio=1"])).map(
            lambda t: Case(("train", t[0], t[1], *nobase))),
        st.tuples(methods, st.sampled_from(BAD_OUT_DIRS)).map(
            lambda t: Case(("train", t[0], "-o", p(t[1]), *nobase), "output")),
    )
    policies_cmd = st.sampled_from([("extra",), ("--json=1",), ("--nope",)]).map(lambda a: Case(("policies", *a)))
    nopolicy = ("--policy", str(world.root / "no-such-policy"), "--rows", "2")
    augment = st.one_of(
        _numbers(AUGMENT_NUMBERS).map(lambda fv: Case(("augment", *nopolicy, fv[0], fv[1]), fv[0])),
        st.tuples(st.sampled_from(["--policy", "--task", "--verifier", "--backend"]), st.sampled_from(BLANK)).map(
            lambda fv: Case(("augment", *nopolicy, fv[0], fv[1]), fv[0])),
        st.tuples(st.sampled_from(["--policy", "--task", "--verifier", "--backend"]), st.sampled_from(NAMES_BAD)).map(
            lambda fv: Case(("augment", *nopolicy, fv[0], fv[1]))),
        st.sampled_from(KV_BAD).map(lambda v: Case(("augment", *nopolicy, "--task-arg", v),
                                                   kv_mention("--task-arg", v))),
        st.sampled_from(["file", "under-file", "record", "summary", "samples", "cache", "empty", "plain-dir"]).map(
            lambda k: Case(("augment", *nopolicy, "-o", p(k)), "output")) | st.sampled_from(
            [str(world.record(GREEDY) / "rft.jsonl"), str(world.root / "afile.txt" / "x.jsonl"), ".jsonl",
             str(world.work / "dir.jsonl")]).map(lambda o: Case(("augment", *nopolicy, "-o", o), "output")),
        st.sampled_from(["list-manifest", "self-loop", "loop-b", "model-five", p("file"), p("record"),
                         p("newline-dir"), p("cr-file")]).map(
            lambda pol: Case(("augment", "--rows", "2", "--policy", pol))),
    )
    bad_studies = st.sampled_from(["study-list.yaml", "study-garbage.yaml", "study-empty.yaml", "study-text.yaml",
                                   "study-number.yaml"]).map(lambda n: str(world.root / n)) | st.sampled_from(
        ["missing", "plain-dir", "file", "summary", "cache", "empty"]).map(p)
    study = st.one_of(
        st.tuples(bad_studies, st.sampled_from([(), ("--dry-run",), ("--executor", "local"), ("--dry-run", "-o", runs)])
                  ).map(lambda t: Case(("study", t[0], *t[1]))),
        st.tuples(bad_studies, st.sampled_from(["", " ", "nope", "ray\n"])).map(
            lambda t: Case(("study", t[0], "--dry-run", "--executor", t[1]))),
        st.tuples(bad_studies, st.sampled_from(BAD_OUT_DIRS)).map(
            lambda t: Case(("study", t[0], "--dry-run", "-o", p(t[1])))),
        st.just(Case(("study",))),
    )
    flagged_run = _flagged(world, "run", ["-o", runs, *FEW, "--policy", p("missing")])
    generators = {"study": study, "run": run_one | run_many | flagged_run, "score": score,
                  "compare": compare | st.just(Case(("compare", record))), "leaderboard": leaderboard,
                  "plot": plot | st.just(Case(("plot",))), "report": report | st.just(Case(("report",))),
                  "plugins": plugins, "train": train | st.just(Case(("train",))), "policies": policies_cmd,
                  "augment": augment | _flagged(world, "augment", list(nopolicy))}
    return {command: generators[command] for command in COMMANDS if command in generators}


GENERATORS = ("run", "score", "compare", "leaderboard", "plot", "report", "plugins", "train", "policies", "augment",
              "study")


_TABLES: dict[World, dict[str, st.SearchStrategy[Case]]] = {}


@st.composite
def _any_invocation(draw, world: World) -> Case:
    table = _TABLES.setdefault(world, invocations(world))
    command = draw(st.sampled_from(sorted(table)))
    return draw(table[command])


@settings(max_examples=GENERATED, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_generated_bad_invocation_fails_in_one_line_and_changes_nothing(world, data):
    case = data.draw(_any_invocation(world), label="invocation")
    check(world, list(case.args), case.mention)


# ---------------------------------------------------------------- stored state that must survive (exit 0)

def _quiet_run(args: list[str]):
    result = RUNNER.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def test_one_wrong_typed_record_leaves_the_rest_of_the_leaderboard(world):
    before = checksums(world)
    result = _quiet_run(["leaderboard", "-o", str(world.runs), "--format", "json"])
    assert result.exit_code == 0, result.output
    shown = {row["run"] for row in json.loads(result.stdout)}
    assert {GREEDY, BON, GSM8K} <= shown and "canned-wrong-typed" not in shown
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any("canned-wrong-typed" in line for line in warnings), result.stderr
    assert checksums(world) == before


def test_policies_lists_unreadable_manifests_as_rows(world):
    before = checksums(world)
    result = _quiet_run(["policies", "--json"])
    assert result.exit_code == 0, result.output
    listed = {Path(k).name: v for k, v in json.loads(result.stdout).items()}
    for name, says in (("list-manifest", "a JSON list, not an object"), ("data-string", "'data' is 'countdown'")):
        assert says in listed[name]["error"], listed[name]
    table = RUNNER.invoke(app, ["policies"], terminal_width=200)
    assert table.exit_code == 0 and table.exception is None and "data-string" in table.output, table.output
    assert checksums(world) == before


def test_repeating_a_score_reads_its_record_back(world, tmp_path):
    out = tmp_path / "rescored"
    first = _quiet_run(["score", str(world.record(GREEDY)), "-o", str(out)])
    assert first.exit_code == 0, first.output
    written = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert written
    again = _quiet_run(["score", str(world.record(GREEDY)), "-o", str(out)])
    assert again.exit_code == 0, again.output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == written


def _damaged_page(path: Path) -> None:
    """A cache as the harness writes one (WAL, the samples table), whose table's root page is then overwritten."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE samples (key TEXT PRIMARY KEY, text TEXT NOT NULL, tokens INTEGER NOT NULL, logprob "
               "REAL NOT NULL, finish_reason TEXT NOT NULL, seconds REAL NOT NULL) WITHOUT ROWID")
    db.executemany("INSERT INTO samples VALUES (?, ?, 1, 0.0, 'stop', 0.0)", [(f"k{i}", "x" * 500)
                                                                              for i in range(200)])
    db.commit()
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'samples'").fetchone()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(path.read_bytes())
    page = 4096 * (root - 1)
    data[page:page + 512] = b"\xff" * 512
    path.write_bytes(bytes(data))


def _other_schema(path: Path) -> None:
    """Someone else's database (rollback journal, as sqlite3 makes one by default) where the cache would be."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE samples (id INTEGER, body BLOB)")
    db.execute("INSERT INTO samples VALUES (1, x'00')")
    db.commit()
    db.close()


CORRUPTIONS = {"garbage": _corrupt_cache, "damaged-page": _damaged_page, "directory": lambda p: p.mkdir(parents=True),
               "other-schema": _other_schema}


class _Canned:
    """An engine with one canned answer, standing in for vLLM."""

    name = "fake"

    def generate(self, requests, sampling):
        from harness.types import Completion

        for i, r in enumerate(requests):
            yield i, [Completion("<answer> 1 + 2 </answer>", 5, -1.0, "stop") for _ in range(r.n)]

    def describe(self):
        return {"name": self.name}

    def close(self):
        pass


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_cache_is_set_aside_and_the_run_generates_afresh(tiny_llama, tmp_path, monkeypatch, corruption):
    import harness.pipeline

    runs = tmp_path / "runs"
    cache = runs / "cache" / "generations.sqlite"
    cache.parent.mkdir(parents=True)
    CORRUPTIONS[corruption](cache)
    kept = {p.relative_to(runs / "cache"): p.read_bytes() for p in (runs / "cache").rglob("*") if p.is_file()}
    monkeypatch.setattr(harness.pipeline, "load_engine", lambda *a, **k: _Canned())
    result = _quiet_run(["run", "--policy", str(tiny_llama), "--task-arg", "numbers=3", "--limit", "2",
                         "--backend", "hf", "-o", str(runs)])
    if corruption == "directory":  # someone's folder, not a corrupt file: refused in one line, left where it is
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and str(cache) in lines[0]
        assert cache.is_dir() and not list(runs.glob("*/summary.json"))
        return
    assert result.exit_code == 0, result.output
    assert any("cache" in line for line in result.stderr.splitlines() if line.startswith("warning: ")), result.stderr
    assert list(runs.glob("*/summary.json")), "the run wrote no record"
    contents = {p.read_bytes() for p in (runs / "cache").rglob("*") if p.is_file()}
    assert all(data in contents for data in kept.values()), "the corrupt cache's bytes were lost, not set aside"

