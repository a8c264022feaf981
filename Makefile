# The two commands the README starts with:
#   make run   — set up and start the whole stack on embedded defaults
#   make test  — set up and run every test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test setup system-deps viewer viewer-build bench-ingest bench-dicomweb bench-viewer clean

run: setup viewer-build
	$(VENV)/bin/l3net serve

test: setup system-deps viewer
	scripts/ensure-postgres.sh
	$(VENV)/bin/pytest -ra

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,gpu]'
	touch $(STAMP)

# The DICOM tools the tests use as real peers and validators. Installed when run as root;
# otherwise the tests that need them fail with a message saying what to install.
system-deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  command -v storescu >/dev/null || missing="$$missing dcmtk"; \
	  command -v dciodvfy >/dev/null || missing="$$missing dicom3tools"; \
	  command -v pg_ctlcluster >/dev/null || missing="$$missing postgresql"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi; \
	else echo "not root: skipping apt-get; needs dcmtk dicom3tools postgresql chromium nodejs"; fi

# The OHIF build (pinned, integrity-checked; skipped when already unpacked) that l3net serves at /.
viewer-build:
	$(PY) viewer/fetch_ohif.py

# The build plus the browser-test tools (playwright-core, cognito-local) from viewer/package-lock.json.
viewer: viewer-build viewer/node_modules/.installed

viewer/node_modules/.installed: viewer/package-lock.json
	cd viewer && npm ci --no-audit --no-fund
	touch $@

bench-ingest: setup system-deps
	$(PY) bench/ingest/run.py

# Orthanc and its DICOMweb plugin are the peer of this benchmark only; the tests don't need them.
bench-dicomweb: setup
	@if [ "$$(id -u)" = 0 ] && ! command -v Orthanc >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb; fi
	$(PY) bench/dicomweb/run.py

bench-viewer: setup system-deps viewer
	$(PY) bench/viewer/run.py

clean:
	rm -rf $(VENV) l3net-data .pytest_cache
