#!/usr/bin/env bash
# Usage: .ci/host_tests.sh PYTHON
#
# IPython's own tests for async, the shell, magics and embed (from the sdist of the IPython
# that PYTHON has), run twice: as IPython ships them, then with autoawait_runners loaded in
# their test shell (host_tests/autoawait_loaded.py). Fails if a test passes without the
# extension and fails with it: loaded into a host, the extension takes nothing away (F7).
set -euo pipefail
python=${1:?usage: $0 PYTHON}
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"  # it runs elsewhere
here="$(cd "$(dirname "$0")" && pwd)"
work="$here/host-tests"
rm -rf "$work"
mkdir -p "$work"
version=$("$python" -c 'import IPython; print(IPython.__version__)')
"$python" -m pip download -q --no-binary :all: --no-deps "ipython==$version" -d "$work"
tar xzf "$work/ipython-$version.tar.gz" -C "$work"
source_dir="$work/ipython-$version"
# The test files, and what IPython's tests need besides IPython (its "test" extra).
files=(tests/test_async_helpers.py tests/test_interactiveshell.py tests/test_magic.py tests/test_embed.py)
"$python" -m pip install -q testpath pytest-asyncio 2>/dev/null || true

run() {  # run NAME [PYTEST ARGS...]: the outcome of each test, one "nodeid outcome" a line
  local name=$1
  shift
  (cd "$source_dir" && rm -rf tmp-ipython-pytest-profiledir &&
    PYTHONPATH="$here/host_tests" "$python" -m pytest -q -p no:cacheprovider -rA "$@" \
      "${files[@]}" >"$work/$name.log" 2>&1) || true
  { grep -E '^(PASSED|FAILED|ERROR) ' "$work/$name.log" || true; } | awk '{print $2, $1}' |
    sort >"$work/$name.outcomes"
}

run plain
run loaded -p autoawait_loaded
passed_plain=$(grep -c ' PASSED$' "$work/plain.outcomes" || true)
passed_loaded=$(grep -c ' PASSED$' "$work/loaded.outcomes" || true)
echo "IPython $version's own tests (${files[*]}): $passed_plain passed as shipped, $passed_loaded with autoawait_runners loaded"
if [ "$passed_plain" -eq 0 ]; then
  echo "IPython's tests did not run:" >&2
  tail -30 "$work/plain.log" >&2
  exit 1
fi
lost=$(join <(grep ' PASSED$' "$work/plain.outcomes" | cut -d' ' -f1) \
  <(grep -v ' PASSED$' "$work/loaded.outcomes" | cut -d' ' -f1) || true)
if [ -n "$lost" ]; then
  echo "passing as shipped, failing with autoawait_runners loaded:" >&2
  echo "$lost" >&2
  grep -E '^(FAILED|ERROR) ' "$work/loaded.log" >&2 || true
  exit 1
fi
echo "none fails with the extension that passes without it"
