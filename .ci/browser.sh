#!/usr/bin/env bash
# The browser tests (tests/test_browser.py, marker browser): JupyterLab on 127.0.0.1 and
# headless Chromium through Selenium, a cell awaiting a slider moved by the keyboard and a
# button clicked by the mouse under every runner. Debian's chromium and chromium-driver are
# installed if missing, the browser extra into the given environment; the tests must run
# there (AUTOAWAIT_REQUIRE_BROWSER=1: a missing piece fails them, never skips them).
# A failed test's screenshot, page and server log are kept in .ci/logs/browser (or in
# AUTOAWAIT_BROWSER_ARTIFACTS if set); the failure names the folder.
#   usage: browser.sh PYTHON   (the python of a venv with the project installed)
#          browser.sh --install-chromium   (the Debian packages only)
set -euo pipefail
python=$1
cd "$(dirname "$0")/.."
start=$SECONDS
mkdir -p .ci/logs
if [ "${1:-}" = --install-chromium ]; then python=; fi  # only that (.ci/run: early, in the background)
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  t=$SECONDS
  apt_log=.ci/logs/chromium-apt.log
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >"$apt_log" 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$apt_log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >>"$apt_log" 2>&1
  } || { cat "$apt_log" >&2; echo "chromium and chromium-driver could not be installed" >&2; exit 1; }
  echo "browser: chromium and chromium-driver installed in $((SECONDS - t))s"
fi
[ -n "$python" ] || exit 0
if ! "$python" -c "import jupyterlab, selenium, ipywidgets, pytest" 2>/dev/null; then
  t=$SECONDS
  "$python" -m pip install -q -e ".[test,browser]"
  echo "browser: the browser extra installed in $((SECONDS - t))s"
fi
# IPython's and Jupyter's folders of the run's own (the tests' server makes its own too).
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
mkdir -p "$home/ipython" "$home/jupyter-config" "$home/jupyter-data" "$home/jupyter-runtime"
artifacts=${AUTOAWAIT_BROWSER_ARTIFACTS:-$(pwd)/.ci/logs/browser}
t=$SECONDS
status=0
AUTOAWAIT_REQUIRE_BROWSER=1 AUTOAWAIT_BROWSER_ARTIFACTS="$artifacts" \
  IPYTHONDIR="$home/ipython" JUPYTER_CONFIG_DIR="$home/jupyter-config" \
  JUPYTER_DATA_DIR="$home/jupyter-data" JUPYTER_RUNTIME_DIR="$home/jupyter-runtime" \
  "$python" -m pytest -p no:cacheprovider -m browser --basetemp="$home/tmp" --durations=10 \
  tests/test_browser.py || status=$?
# pytest exits 5 when it collected no test: a failure here, never a pass.
if [ "$status" -eq 5 ]; then echo "pytest collected no browser tests" >&2; fi
echo "browser: the tests took $((SECONDS - t))s, the whole step $((SECONDS - start))s"
exit "$status"
