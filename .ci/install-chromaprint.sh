#!/usr/bin/env bash
# libchromaprint (the AcoustID fingerprint library) for near-duplicate grouping: soundseek calls
# it in-process through ctypes (src/soundseek/audio/fingerprint.py), so only the shared library
# is needed; fpcalc (libchromaprint-tools) comes along as a command-line check. Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
if ! ldconfig -p 2>/dev/null | grep -q 'libchromaprint\.so\.1'; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "install-chromaprint: installing libchromaprint1 libchromaprint-tools"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            libchromaprint1 libchromaprint-tools
    else
        echo "install-chromaprint: no apt-get; install Chromaprint yourself (e.g. brew install chromaprint)" >&2
        exit 1
    fi
fi
