#!/usr/bin/env bash
# Debian tools the tests use beyond Python: sox (generates edge-case audio) and, through
# install-browser.sh, chromium + playwright-core for the page test. Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
if ! command -v sox >/dev/null 2>&1; then
    echo "install-test-tools: installing sox"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends sox
fi
exec bash "$(dirname "${BASH_SOURCE[0]}")/install-browser.sh"
