#!/usr/bin/env bash
# Usage: .ci/host_tests.sh PYTHON ipython|ipykernel
#
# A host's own tests, from the sdist of the version PYTHON has, run as the host ships them
# and then with autoawait_runners loaded (F7, K5): fails if a test passes as shipped and fails
# with the extension, unless host_tests/ipykernel_differences.txt lists it as a runner's
# deliberate difference (docs/jupyter.rst shows that list, with the reasons).
#
# - ipython: IPython's tests for async, the shell, magics and embed; the extension loaded in
#   their test shell (host_tests/autoawait_loaded.py).
# - ipykernel: ipykernel's kernel, message, async and subshell tests, against kernels whose
#   profile loads the extension and selects each runner in turn.
set -euo pipefail
python=${1:?usage: $0 PYTHON ipython|ipykernel}
host=${2:?usage: $0 PYTHON ipython|ipykernel}
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"  # it runs elsewhere
here="$(cd "$(dirname "$0")" && pwd)"
work="$here/host-tests/$host"
rm -rf "$work"
mkdir -p "$work"

case "$host" in
ipython)
  version=$("$python" -c 'import IPython; print(IPython.__version__)')
  files=(tests/test_async_helpers.py tests/test_interactiveshell.py tests/test_magic.py
    tests/test_embed.py)
  options=()
  # What IPython's tests need besides IPython (its "test" extra).
  "$python" -m pip install -q testpath pytest-asyncio 2>/dev/null || true
  "$python" -m pip download -q --no-binary :all: --no-deps "ipython==$version" -d "$work"
  ;;
ipykernel)
  version=$("$python" -c 'import ipykernel; print(ipykernel.__version__)')
  files=(tests/test_async.py tests/test_kernel.py tests/test_message_spec.py
    tests/test_subshells.py)
  # Its own pytest settings make every warning an error and want pytest-cov (for one
  # timing test it skips under coverage, deselected here: it fails on this machine as
  # shipped).
  options=(-o asyncio_default_fixture_loop_scope=function -W ignore::DeprecationWarning
    --deselect tests/test_subshells.py::test_run_concurrently_sequence)
  "$python" -m pip install -q flaky pytest-timeout psutil pytest-asyncio hatchling \
    2>/dev/null || true
  "$python" -m pip download -q --no-binary :all: --no-deps --no-build-isolation \
    "ipykernel==$version" -d "$work"
  ;;
*)
  echo "unknown host: $host" >&2
  exit 2
  ;;
esac
tar xzf "$work/$host-$version.tar.gz" -C "$work"
source_dir="$work/$host-$version"

tests=("${files[@]}")  # what run() runs: the files, or the tests a second run takes again
run() {  # run NAME [PYTEST ARGS...]: the outcome of each test, one "nodeid outcome" a line
  local name=$1
  shift
  (cd "$source_dir" && rm -rf tmp-ipython-pytest-profiledir &&
    PYTHONPATH="$here/host_tests" "$python" -m pytest -q -p no:cacheprovider -rA --color=no \
      "${options[@]}" "$@" "${tests[@]}" >"$work/$name.log" 2>&1) || true
  { grep -E '^(PASSED|FAILED|ERROR) ' "$work/$name.log" || true; } | awk '{print $2, $1}' |
    sort >"$work/$name.outcomes"
}

with_runner() {  # with_runner RUNNER [NAME]: ipykernel's tests, the kernels with RUNNER selected
  local profile="$work/ipython-$1/profile_default"
  mkdir -p "$profile"
  printf 'c.InteractiveShellApp.extensions = ["autoawait_runners"]\n' >"$profile/ipython_kernel_config.py"
  printf 'c.AutoawaitRunners.default = "%s"\n' "$1" >>"$profile/ipython_kernel_config.py"
  IPYTHONDIR="$work/ipython-$1" run "${2:-$1}"
}

with_extension() {  # with_extension NAME RUN-NAME: run NAME's way again (the tests in $tests)
  if [ "$host" = ipython ]; then run "$2" -p autoawait_loaded; else with_runner "$1" "$2"; fi
}

status=0
compare() {  # compare NAME: no test that passes as shipped fails in run NAME, but listed ones
  local name=$1 lost
  lost=$(join <(grep ' PASSED$' "$work/plain.outcomes" | cut -d' ' -f1) \
    <(grep -v ' PASSED$' "$work/$name.outcomes" | cut -d' ' -f1) || true)
  lost=$(grep -vxF -f <(awk -v r="$name" '$1 == r {print $2}' \
    "$here/host_tests/ipykernel_differences.txt") <<<"$lost" || true)
  echo "$host $version, $name: $(grep -c ' PASSED$' "$work/$name.outcomes" || true) passed"
  if [ -n "$lost" ]; then
    # A host's test can fail once for a reason of its own (ipykernel's test kernels listen on
    # TCP ports chosen free, and the runs here go side by side: "Kernel died before replying
    # to kernel_info"). Each one lost runs again, alone: lost only if it fails again.
    mapfile -t tests <<<"$lost"
    with_extension "$name" "$name-again"
    tests=("${files[@]}")
    local again passed_again
    again=$(grep -vxF -f <(grep ' PASSED$' "$work/$name-again.outcomes" | cut -d' ' -f1) \
      <<<"$lost" || true)
    passed_again=$(grep -vxF -f <(printf '%s\n' "$again") <<<"$lost" || true)
    if [ -n "$passed_again" ]; then
      echo "$host $version, $name: failed once, passed when run again alone:" \
        "$(tr '\n' ' ' <<<"$passed_again")"
      grep -E '^(FAILED|ERROR) ' "$work/$name.log" || true
    fi
    lost=$again
  fi
  if [ -n "$lost" ]; then
    echo "passing as shipped, failing with autoawait_runners ($name), twice:" >&2
    echo "$lost" >&2
    grep -E '^(FAILED|ERROR) ' "$work/$name-again.log" >&2 || true
    status=1
  fi
}

if [ "$host" = ipython ]; then
  run plain
else
  # Three at a time: each run mostly waits for its kernels.
  run plain &
  for runner in asyncio thread trio-guest; do with_runner "$runner" & done
  wait
  for runner in uvloop trio curio; do with_runner "$runner" & done
  wait
fi
passed_plain=$(grep -c ' PASSED$' "$work/plain.outcomes" || true)
echo "$host $version's own tests (${files[*]}): $passed_plain passed as shipped"
if [ "$passed_plain" -eq 0 ]; then
  echo "$host's tests did not run:" >&2
  tail -30 "$work/plain.log" >&2
  exit 1
fi
if [ "$host" = ipython ]; then
  run loaded -p autoawait_loaded
  compare loaded
else
  for runner in asyncio thread trio-guest uvloop trio curio; do compare "$runner"; done
fi
[ "$status" -eq 0 ] && echo "none fails with the extension that passes without it"
exit "$status"
