#!/usr/bin/env bash
# System packages the test suite needs beyond Python: headless Chromium, to check the HTML
# report of a sweep the way a person would see it. Installed with apt where we are root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "[test-deps] installing chromium (headless HTML report check)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  echo "[test-deps] chromium is missing and cannot be installed here (not root or no apt-get);" \
       "install it with your package manager: the HTML report test needs it" >&2
fi
