#!/usr/bin/env bash
# Installs (apt-get) what building and testing Portico needs on Debian 12. Idempotent: only
# missing packages are installed, so it is quick when nothing is missing. Runs as root, or
# through sudo otherwise.
set -euo pipefail

PACKAGES=(
    # build
    build-essential cmake pkg-config git clang-format
    # fuzzing and sanitizers (libFuzzer and the ASan/UBSan runtimes for clang)
    clang libclang-rt-14-dev
    # libraries
    libyaml-dev libpcre2-dev libssl-dev libnghttp2-dev
    # TLS test tooling (certificates, s_client) and the TLS scanner test_testssl.py runs
    openssl testssl.sh
    # integration tests (pytest via Debian's /usr/bin/python3)
    python3 python3-pytest python3-httpx python3-h2 python3-cryptography python3-websockets curl
    ca-certificates
    # HTTP/2 test client (nghttp) and load generator (h2load)
    nghttp2-client
    # test helpers: ps/pgrep, ss
    procps iproute2
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps: missing ${missing[*]}; run as root (sudo is not installed)" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
