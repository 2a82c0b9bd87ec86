#!/bin/sh
# Runs the encoder benchmark and the same receipt through python-escpos
# (installed from PyPI into a virtualenv under target/), one after another
# on the same machine.
set -eu
cd "$(dirname "$0")/../.."
venv="${CARGO_TARGET_DIR:-target}/python-escpos-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'python-escpos==3.1'
fi
cargo bench -p posbridge-drivers --bench escpos -- --noplot
"$venv/bin/python" drivers/benches/python_escpos.py "${ROUNDS:-300}"
