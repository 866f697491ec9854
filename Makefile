# The two commands: `make run` and `make test`. Everything else is what they are made of.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: axe-core bench bench-smoke browser install run test lint typecheck unit catalogs bench-eligibility bench-http clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Re-extract the N_()/_() msgids (babel.cfg) into the .pot, merge them into the zh_CN/es/en catalogs, then
# compile .po -> .mo. Translate every new or fuzzy entry of the .po files and run it again: fuzzy entries are
# not compiled. The .po and .mo files are committed; tests/unit/test_i18n.py checks both are complete and fresh.
LOCALES := src/aftersales/locales
# The service's error classes take a translatable template as their first argument (Invalid("… {limit}", limit=…)),
# and so does i18n.translate("…", lang) (the workbench's notices and page messages): extract it like N_().
ERROR_KEYWORDS := -k ServiceError -k Invalid -k Conflict -k Forbidden -k Unauthorized -k EvidenceTooLarge \
	-k UnsupportedEvidence -k RefusedTarget -k translate
catalogs: install
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k _ $(ERROR_KEYWORDS) --no-location --sort-output --no-wrap --add-comments=TRANSLATORS: \
		--project=aftersales --version=0.1.0 -o $(LOCALES)/messages.pot src
	for lang in zh_CN es en; do \
		$(BIN)/pybabel update -i $(LOCALES)/messages.pot -d $(LOCALES) -D messages -l $$lang \
			--init-missing --no-wrap --ignore-obsolete || exit 1; \
	done
	$(BIN)/pybabel compile -d $(LOCALES) -D messages --statistics

# Debian's Chromium for the browser tests (tests/e2e): never a downloaded browser.
browser:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) || \
		(sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)
	@# A CJK font, so that zh-CN pages render (and their screenshots show) Chinese, not boxes.
	@test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-wqy-microhei || \
		 (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-wqy-microhei)) || \
		echo "warning: fonts-wqy-microhei not installed: zh-CN screenshots will show boxes"

# axe-core for the accessibility browser test (tests/e2e/test_e2e_a11y.py), vendored: the tests never fetch it.
# Re-vendor (pinned version) with `make axe-core`, then commit tests/e2e/vendor/axe-core/.
AXE_VERSION := 4.10.3
AXE_DIR := tests/e2e/vendor/axe-core
axe-core:
	rm -rf build/axe && mkdir -p build/axe
	cd build/axe && npm pack --silent axe-core@$(AXE_VERSION) && tar xzf axe-core-$(AXE_VERSION).tgz
	mkdir -p $(AXE_DIR)
	cp build/axe/package/axe.min.js build/axe/package/LICENSE $(AXE_DIR)/
	sed -i 's/^Version: .*/Version: $(AXE_VERSION)/' $(AXE_DIR)/README.md
	rm -rf build/axe

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: install lint browser
	$(BIN)/python -m pytest -n 2 --dist worksteal
	$(MAKE) --no-print-directory bench-smoke

run: install
	$(BIN)/aftersales run

# Every benchmark with its raw limit measured in the same run: bench/results/full/results.md and .json.
bench: install
	$(BIN)/python bench/run.py

# The same at small sizes (about 30 s): run by `make test` so that the benchmarks never rot; figures mean little.
bench-smoke: install
	$(BIN)/python bench/run.py --smoke

bench-eligibility: install
	$(BIN)/python bench/eligibility.py

# open → approve → refund cycles through a real server (SQLite; PostgreSQL with 1 and 2 uvicorn workers).
bench-http: install
	$(BIN)/python bench/http_cycle.py

clean:
	rm -rf $(VENV) var build *.egg-info
