#!/bin/sh
# Run every benchmark with its defaults; each takes well under 3 minutes and
# writes only to temp dirs. Usage (from the repo root): sh bench/run_all.sh
set -e
cd "$(dirname "$0")/.."
PY=.venv/bin/python
echo "# $(date -u +%Y-%m-%dT%H:%MZ)  $(python3 --version)  sqlite $($PY -c 'import sqlite3; print(sqlite3.sqlite_version)')  $(nproc) CPUs"
$PY bench/enqueue.py "$@"
echo
$PY bench/campaign.py
