#!/usr/bin/env bash
# Optional system tools for speech recipes: speech synthesis voices/tools
# (espeak-ng, flite, festival) and sox.  Safe to re-run: installs only what is
# missing.  Needs root and apt-get; otherwise it says what it would install and
# exits 0.
set -euo pipefail

PACKAGES=(espeak-ng flite festival sox)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "extras: already installed: ${PACKAGES[*]}"
    exit 0
fi

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "extras: not installing (needs root and apt-get). Would run:"
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    exit 0
fi

echo "extras: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "extras: done"
