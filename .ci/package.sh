#!/usr/bin/env bash
# The package as a user gets it from an index: the sdist and the wheel built from it
# (python -m build), their metadata checked (twine check --strict), the LICENSE in both,
# and the wheel installed alone in a clean venv, where IPython runs an .ipy file with a
# top-level await through autoawait-ipython, away from the source tree.
#   usage: package.sh PYTHON
set -euo pipefail
python=$1
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$python" -m pip install -q build twine
"$python" -m build -q --outdir "$out/dist" . >/dev/null
"$python" -m twine check --strict "$out"/dist/*
# (grep reads to the end: with -q it stops early, the lister dies of SIGPIPE, and pipefail
# takes that for a failure.)
tar -tzf "$out"/dist/*.tar.gz | grep '/LICENSE$' >/dev/null \
  || { echo "LICENSE is not in the sdist" >&2; exit 1; }
"$python" -m zipfile -l "$out"/dist/*.whl | grep 'licenses/LICENSE' >/dev/null \
  || { echo "LICENSE is not in the wheel" >&2; exit 1; }
"$python" -m venv "$out/venv"
"$out/venv/bin/pip" install -q "$out"/dist/*.whl
printf 'import asyncio\nprint(await asyncio.sleep(0, "the wheel runs an await cell"))\n' >"$out/smoke.ipy"
(cd "$out" && IPYTHONDIR="$out/ipython" "$out/venv/bin/autoawait-ipython" --quick smoke.ipy) \
  | tee "$out/smoke.log"
grep -q "the wheel runs an await cell" "$out/smoke.log"
echo "package: sdist and wheel checked, the wheel runs an await cell in a clean venv"
