#!/usr/bin/env bash
# Installs everything cxr-triage needs on a fresh Debian 12 + Node 20 machine, and nothing twice:
# Debian packages only when missing, npm dependencies only when package-lock.json changed,
# and the Mesa 25 software Vulkan driver (for the WebGPU paths without a GPU) into .cache/mesa.
# Nothing is fetched from outside the npm registry and the Debian mirror: onnxruntime-node's download is
# skipped, and better-sqlite3 is compiled (python3, make, g++ from Debian; Node's own headers) instead of
# fetching its prebuilt binary from GitHub.
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL=skip DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(orthanc orthanc-dicomweb dcmtk dicom3tools libgdcm-tools chromium fonts-dejavu-core ca-certificates python3 make g++ postgresql python3-hl7)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian orthanc package starts a system service on port 4242/8042; the project runs its own.
  $SUDO service orthanc stop >/dev/null 2>&1 || true
  # Likewise Debian's postgresql starts a cluster on 5432; the tests start private ones (test/helpers/postgres.ts).
  $SUDO service postgresql stop >/dev/null 2>&1 || true
fi

stamp=node_modules/.cxr-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  # node-gyp takes the headers of the running Node (official and NodeSource builds ship them) instead of
  # downloading them from nodejs.org.
  node_prefix=$(dirname "$(dirname "$(node -p process.execPath)")")
  if [ ! -f "$node_prefix/include/node/node.h" ]; then
    echo "setup: Node's headers are missing ($node_prefix/include/node/node.h); better-sqlite3 is built against them" >&2
    exit 1
  fi
  echo "setup: npm ci" >&2
  npm_config_build_from_source=better-sqlite3 npm_config_nodedir=$node_prefix npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

bash scripts/setup-mesa.sh
npx tsx src/viewer-extension/build.ts  # builds the viewer page (vite) only when its dist is missing or built from other sources
