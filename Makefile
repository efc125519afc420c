# a2i developer entry points. `make test` and `make demo` install into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install test demo serve lint format clean lock docker docker-check

INSTALL_LOG := $(VENV)/install.log
# Run a step quietly: its output goes to $(INSTALL_LOG), shown only if the step fails.
define logged
@$(1) >> $(INSTALL_LOG) 2>&1 || { cat $(INSTALL_LOG); echo "install: failed (pip's output above, also in $(INSTALL_LOG))"; exit 1; }
endef

# The exact versions of requirements.lock (pyproject.toml only bounds them, as a library should).
$(BIN)/a2i: pyproject.toml requirements.lock
	@echo "install: creating $(VENV) (pip's output: $(INSTALL_LOG))"
	@$(PYTHON) -m venv $(VENV) && : > $(INSTALL_LOG)
	@echo "install: upgrading pip"
	$(call logged,$(BIN)/pip install --upgrade pip)
	@echo "install: a2i and its dependencies (requirements.lock; minutes on a first install)"
	$(call logged,$(BIN)/pip install -c requirements.lock -e ".[dev]")
	@touch $(BIN)/a2i
	@echo "install: done; run $(BIN)/a2i (or activate: source $(BIN)/activate)"

install: $(BIN)/a2i

test: $(BIN)/a2i
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

demo: $(BIN)/a2i
	$(BIN)/python -m a2i.demo

# The web demo of the newest `make demo` runs (before any, the shipped tiny GAN) on
# http://127.0.0.1:7860 (SERVE_ARGS: see --help).
serve: $(BIN)/a2i
	$(BIN)/python -m a2i.commands.serve $(SERVE_ARGS)

lint: $(BIN)/a2i
	$(BIN)/ruff check a2i tests benchmarks
	$(BIN)/ruff format --check a2i tests benchmarks

format: $(BIN)/a2i
	$(BIN)/ruff format a2i tests benchmarks
	$(BIN)/ruff check --fix a2i tests benchmarks

# Re-resolve requirements.lock to the newest versions pyproject.toml's ranges allow (then test).
lock: $(BIN)/a2i
	$(BIN)/pip install --quiet --dry-run --ignore-installed --report $(VENV)/lock.json ".[dev]"
	{ grep '^#' requirements.lock; $(BIN)/python -c "import json; found = json.load(open('$(VENV)/lock.json'))['install']; print('\n'.join(sorted(f\"{i['metadata']['name']}=={i['metadata']['version']}\" for i in found if i['metadata']['name'] != 'a2i')))"; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

# The CUDA image of docker/Dockerfile (needs a Docker daemon that can pull python:3.11-slim).
docker:
	docker build -f docker/Dockerfile -t a2i .

# Build docker/Dockerfile without a daemon or a registry (buildah over a debootstrap base) and run
# `a2i --help` and a tiny predict in the image; skipped, with the reason, without the tools.
# Not part of `make test`: it downloads every wheel of the lock. See docs/container.md.
docker-check:
	$(PYTHON) benchmarks/docker_check.py $(DOCKER_CHECK_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
