#!/usr/bin/env bash
# Install what the end-to-end browser test needs: Debian's chromium and the
# playwright-core npm package (no browser download: we drive /usr/bin/chromium).
# Idempotent: does nothing that is already done. Usage: .ci/install-browser.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

if ! command -v chromium >/dev/null 2>&1; then
    echo "install-browser: installing Debian chromium"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
else
    echo "install-browser: chromium present ($(chromium --version 2>/dev/null || echo unknown))"
fi

if ! command -v node >/dev/null 2>&1; then
    echo "install-browser: node is missing; install nodejs (>= 18) first" >&2
    exit 1
fi

cd "$ROOT/tests/browser"
if [ ! -d node_modules/playwright-core ]; then
    echo "install-browser: installing playwright-core (npm ci)"
    # playwright-core never downloads browsers; the env var makes that explicit.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
else
    echo "install-browser: playwright-core present"
fi
