# The two commands: `make run` and `make test`. Needs only Python 3.11+ on the machine.
# Dependencies install from the hash-pinned lock files (`make lock` refreshes them).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
# The built-in demo LMS at $(LMS_BASE_URL)/demo/ (lms_plugin/demo): on under `make run`;
# `make run LMS_DEMO=0` leaves it off.
LMS_DEMO ?= 1
RUN_STEPS = $(if $(filter 0,$(LMS_DEMO)),5,6)
# What LMSs are told (login, launch, JWKS URLs): follows HOST/PORT unless set.
LMS_BASE_URL ?= http://$(if $(filter 0.0.0.0,$(HOST)),127.0.0.1,$(HOST)):$(PORT)

RUN_LOCK  = requirements.txt
TEST_LOCK = requirements-test.txt
# pip-tools lives in its own venv, so the project's venv holds exactly what the lock says.
LOCK_VENV ?= .venv-lock
LOCK_FLAGS = --quiet --generate-hashes --strip-extras --allow-unsafe --all-build-deps \
             --no-emit-index-url --no-emit-find-links
LOCK_ARGS ?=
# Installer output (pip's warnings included) goes here, not to the terminal.
INSTALL_LOG ?= instance/install.log
QUIETLY     = scripts/quietly $(INSTALL_LOG)
STEP       ?=

.PHONY: run test venv lint lock clean

$(BIN)/python:
	@$(QUIETLY) "$(STEP)Creating the virtual environment $(VENV)" \
	  sh -c '$(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet --upgrade pip'

# Reinstall when a lock (or the package's own metadata) changes. The lock pins every
# distribution by hash, setuptools and wheel included, so the project itself is installed
# without dependencies and without build isolation: nothing unpinned reaches the venv.
$(VENV)/.installed-run: $(RUN_LOCK) pyproject.toml | $(BIN)/python
	@$(QUIETLY) "$(STEP)Installing from $(RUN_LOCK) (a few minutes the first time)" \
	  sh -c '$(BIN)/python -m pip install --quiet --require-hashes -r $(RUN_LOCK) && \
	         $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .'
	@touch $@

$(VENV)/.installed-test: $(TEST_LOCK) pyproject.toml | $(BIN)/python
	@$(QUIETLY) "Installing from $(TEST_LOCK) (a few minutes the first time)" \
	  sh -c '$(BIN)/python -m pip install --quiet --require-hashes -r $(TEST_LOCK) && \
	         $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .'
	@touch $@ $(VENV)/.installed-run

venv: $(VENV)/.installed-run

# Numbered steps (install, migrate, admin, content, the demo LMS, serve + worker); the
# admin's one-time password and the next steps come last, once the server listens.
run:
	@if $(MAKE) --no-print-directory -q $(VENV)/.installed-run 2>/dev/null; then \
	  echo "[1/$(RUN_STEPS)] Dependencies are installed ($(RUN_LOCK) unchanged)"; \
	else \
	  $(MAKE) --no-print-directory $(VENV)/.installed-run STEP="[1/$(RUN_STEPS)] "; \
	fi
	@LMS_BASE_URL=$(LMS_BASE_URL) LMS_DEMO=$(LMS_DEMO) $(BIN)/lms-plugin run --setup --first-step 2 \
	  --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test
	scripts/ensure-chromium
	$(BIN)/ruff check .
	@# pytest's exit code 5 means "no tests collected" (a PYTEST_ARGS that selects nothing):
	@# a failure, said in words.
	$(BIN)/python -m pytest $(PYTEST_ARGS) || { status=$$?; [ $$status -ne 5 ] || \
	  echo "make test: pytest collected no tests (PYTEST_ARGS=$(PYTEST_ARGS))" >&2; \
	  exit $$status; }

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

# Re-resolve the locks from pyproject.toml, keeping existing pins where they still fit.
# `make lock LOCK_ARGS=--upgrade` moves everything to the newest allowed versions;
# `make lock LOCK_ARGS="--upgrade-package sqlalchemy"` just one.
lock: export CUSTOM_COMPILE_COMMAND = make lock
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/python -m pip install --quiet 'pip-tools>=7.5,<8'; }
	$(LOCK_VENV)/bin/pip-compile $(LOCK_FLAGS) $(LOCK_ARGS) \
	  --output-file $(RUN_LOCK) pyproject.toml
	$(LOCK_VENV)/bin/pip-compile $(LOCK_FLAGS) $(LOCK_ARGS) --extra test \
	  --output-file $(TEST_LOCK) pyproject.toml

clean:
	rm -rf $(VENV) $(LOCK_VENV) .pytest_cache .ruff_cache
