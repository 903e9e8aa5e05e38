#!/usr/bin/env bash
# Create .venv (if missing) and install gamedyn with its test extra. Needs only Python 3.11 and pip.
# torch is pinned here (2.13.0) so that the CPU build is used where one is available; setup.cfg keeps
# an open range for users who install gamedyn into their own environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[test]'
