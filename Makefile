# The two commands of the README: `make run` and `make test`. Both install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOME_DIR ?= var
# Debian packages: the virtual environment and the C extensions it compiles (pymilter needs
# libmilter), Postfix, which the tests and `make run` use as a private loopback instance, and
# poppler-utils' pdftotext, the DLP engine's PDF reader (run isolated under util-linux prlimit).
SYSTEM_PACKAGES := python3 python3-venv python3-dev gcc libmilter-dev postfix m4 poppler-utils \
	util-linux openssl
# Only for `make test`: Debian's Chromium, which the browser tests drive headless (Playwright
# never downloads a browser; its dependencies bring a font for screenshots), and GnuPG and
# OpenSSL, which decrypt what Sealgate encrypts with PGP and S/MIME (never our own code).
TEST_SYSTEM_PACKAGES := chromium gnupg libmail-dkim-perl openssl spamassassin

.PHONY: run test lint typecheck unit bench install clean

# As root, `run` also starts the private loopback Postfix (the lab) wired to the milter.
LAB := $(shell [ "$$(id -u)" = 0 ] && echo --lab)

run: $(VENV)/.installed
	@[ -f $(HOME_DIR)/sealgate.toml ] || $(BIN)/sealgate --home $(HOME_DIR) init
	@[ -n "$(LAB)" ] || echo "note: the private Postfix lab needs root; run 'sudo make run' to include it"
	$(BIN)/sealgate --home $(HOME_DIR) run $(LAB)

# The integration tests run private Postfix instances, and Postfix's master needs root:
# a normal user's `make test` runs pytest through sudo.
AS_ROOT := $(shell [ "$$(id -u)" = 0 ] || echo sudo --preserve-env)

test: $(VENV)/.installed
	scripts/system-packages.sh $(TEST_SYSTEM_PACKAGES)
	scripts/ensure-postgres.sh
	scripts/sendmail-prefix.sh  # Debian's sendmail, unpacked privately for the Sendmail tests
	$(BIN)/ruff check sealgate tests bench deploy
	$(BIN)/mypy sealgate
	# The Outlook add-in's JavaScript: node's own test runner, with office-addin-mock and
	# @microsoft/office-js from npm (pinned in addin/package-lock.json); Debian's Node when
	# there is none. The browser tests below load office.js from addin/node_modules.
	command -v npm >/dev/null || scripts/system-packages.sh nodejs npm
	npm ci --prefix addin --no-audit --no-fund
	npm test --prefix addin
	$(AS_ROOT) $(BIN)/pytest -p no:cacheprovider

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt scripts/system-packages.sh
	scripts/system-packages.sh $(SYSTEM_PACKAGES)
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check sealgate tests bench deploy

typecheck: $(VENV)/.installed
	$(BIN)/mypy sealgate

bench: $(VENV)/.installed
	$(BIN)/python bench/vault.py
	$(BIN)/python bench/portal.py
	$(BIN)/python bench/dlp.py
	$(AS_ROOT) $(BIN)/python bench/milter.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
