#!/usr/bin/env bash
# Brings Mesa 25's software Vulkan driver (lavapipe, llvmpipe) into .cache/mesa/root without installing
# anything over the system. ORT's bundled Dawn (the webgpu execution provider) finds no adapter with
# bookworm's Mesa 22 lavapipe, but does with Mesa 25 from bookworm-backports; this lets the webgpu path
# run in CI on machines without a GPU.
#
# Idempotent: does nothing when .cache/mesa/env.sh exists and its ICD library is there.
# Relocatable: env.sh finds its own folder and the ICD json names the driver relative to itself (as the
# Vulkan loader allows), so .cache/mesa keeps working when the checkout is copied elsewhere (bench/gpu.sh).
# Apt runs with a PRIVATE source list and state (lists, cache) under .cache/mesa, reading the mirror
# URI from the machine's configured Debian source, so the system's apt configuration is untouched.
# Result: .cache/mesa/env.sh, to be sourced (sets VK_ICD_FILENAMES, LD_LIBRARY_PATH, XDG_RUNTIME_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$PWD
MESA=$ROOT_DIR/.cache/mesa
ENV_FILE=$MESA/env.sh
ICD_JSON=$MESA/lvp_icd.json
LIB_REL=root/usr/lib/x86_64-linux-gnu

# Writes lvp_icd.json and env.sh for the driver extracted under $MESA/root.
write_config() {
  local version src_icd
  version=$(zcat "$MESA/root/usr/share/doc/mesa-vulkan-drivers/changelog.Debian.gz" | sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p')
  # The packaged ICD json names the system path of the driver; point it at the extracted one.
  src_icd=$(ls "$MESA"/root/usr/share/vulkan/icd.d/lvp_icd*.json | head -1)
  sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$LIB_REL/libvulkan_lvp.so\"#" "$src_icd" > "$ICD_JSON"
  cat > "$ENV_FILE" <<EOF
# Written by scripts/setup-mesa.sh: Mesa $version lavapipe for ORT's webgpu provider without a GPU.
MESA_DIR=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)
export VK_ICD_FILENAMES="\$MESA_DIR/lvp_icd.json"
export LD_LIBRARY_PATH="\$MESA_DIR/$LIB_REL\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export XDG_RUNTIME_DIR="\${XDG_RUNTIME_DIR:-\$MESA_DIR/xdg-runtime}"
mkdir -p "\$XDG_RUNTIME_DIR" && chmod 700 "\$XDG_RUNTIME_DIR"
unset MESA_DIR
EOF
}

if [ -f "$MESA/$LIB_REL/libvulkan_lvp.so" ]; then
  # Written by an older version of this script with absolute paths: rewrite the two files, nothing else.
  if [ ! -f "$ENV_FILE" ] || [ ! -f "$ICD_JSON" ] || ! grep -q BASH_SOURCE "$ENV_FILE"; then write_config; fi
  exit 0
fi
if [ "$(dpkg --print-architecture)" != amd64 ]; then
  echo "setup-mesa: only amd64 is supported (ORT's webgpu provider is bundled for linux-x64 only); skipping" >&2
  exit 0
fi

# The mirror the machine already uses (deb822 first, then the one-line format).
MIRROR=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  MIRROR=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$MIRROR" ] && [ -f /etc/apt/sources.list ]; then
  MIRROR=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
if [ -z "$MIRROR" ]; then
  echo "setup-mesa: no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" >&2
  exit 1
fi

mkdir -p "$MESA/lists/partial" "$MESA/archives/partial" "$MESA/debs" "$MESA/root"
# bookworm itself is listed too: libvulkan1 and some libraries come from there, and the private state
# must see them to resolve versions.
cat > "$MESA/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm-backports main
EOF
APT_OPTS=(
  -o "Dir::Etc::SourceList=$MESA/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$MESA/lists"
  -o "Dir::Cache::Archives=$MESA/archives"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
  -o "APT::Default-Release=bookworm-backports"
  -o "APT::Sandbox::User=root"
  -q
)
echo "setup-mesa: apt-get update (private state in $MESA, mirror $MIRROR)" >&2
apt-get "${APT_OPTS[@]}" update >/dev/null

# Does the system already have package $1 at a version satisfying "$2 $3" (e.g. ">=" "2.4.121")?
system_satisfies() {
  local pkg=$1 op=${2:-} want=${3:-} have
  have=$(dpkg-query -W -f='${Status} ${Version}' "$pkg:amd64" 2>/dev/null || dpkg-query -W -f='${Status} ${Version}' "$pkg" 2>/dev/null || true)
  case "$have" in "install ok installed "*) have=${have#install ok installed } ;; *) return 1 ;; esac
  [ -z "$op" ] && return 0
  case "$op" in '>>') op=gt ;; '<<') op=lt ;; '>=') op=ge ;; '<=') op=le ;; '=') op=eq ;; esac
  dpkg --compare-versions "$have" "$op" "$want"
}

# mesa-vulkan-drivers and the Vulkan loader, plus (transitively) every dependency the system lacks or
# has too old (e.g. libdrm2 >= 2.4.121; bookworm has 2.4.114).
WANT=(mesa-vulkan-drivers libvulkan1)
declare -A SEEN=([mesa-vulkan-drivers]=1 [libvulkan1]=1)
queue=(mesa-vulkan-drivers libvulkan1)
while ((${#queue[@]})); do
  pkg=${queue[0]}; queue=("${queue[@]:1}")
  # The Depends of the version apt-get download will fetch (the candidate: backports where it has one).
  candidate=$(apt-cache "${APT_OPTS[@]}" policy "$pkg" | awk '/Candidate:/ { print $2; exit }')
  depends_field=$(apt-cache "${APT_OPTS[@]}" show "$pkg=$candidate" | awk '/^Depends:/ { sub(/^Depends: /, ""); print; exit }')
  IFS=',' read -ra clauses <<< "$depends_field"
  for clause in "${clauses[@]}"; do
    clause=$(echo "$clause" | sed 's/|.*//; s/^ *//; s/ *$//; s/:any//')
    name=${clause%% *}
    [ -n "$name" ] && [ -z "${SEEN[$name]:-}" ] || continue
    SEEN[$name]=1
    constraint=$(echo "$clause" | sed -n 's/.*(\(.*\)).*/\1/p')
    op=${constraint%% *}; ver=${constraint#* }
    if ! system_satisfies "$name" "$op" "$ver"; then WANT+=("$name"); queue+=("$name"); fi
  done
done

echo "setup-mesa: downloading ${WANT[*]}" >&2
# A clean folder each time this runs (it only runs when the result is incomplete).
rm -rf "$MESA/root" "$MESA"/debs/*.deb
mkdir -p "$MESA/root"
(cd "$MESA/debs" && apt-get "${APT_OPTS[@]}" download "${WANT[@]}" >/dev/null)
for deb in "$MESA"/debs/*.deb; do dpkg-deb -x "$deb" "$MESA/root"; done

LIBDIR=$MESA/root/usr/lib/x86_64-linux-gnu
# Only lavapipe and the loader are used; the hardware drivers (radeon, intel, ...; ~50 MB) are dropped so
# the folder stays small enough to travel with the repo (bench/gpu.sh needs the loader on GPU machines).
find "$LIBDIR" -maxdepth 1 -name 'libvulkan_*.so' ! -name libvulkan_lvp.so -delete
find "$MESA/root/usr/share/vulkan" -name '*.json' ! -name 'lvp_icd*' -delete
still=$(LD_LIBRARY_PATH=$LIBDIR ldd "$LIBDIR/libvulkan_lvp.so" | awk '/not found/ { print $1 }')
if [ -n "$still" ]; then
  echo "setup-mesa: $LIBDIR/libvulkan_lvp.so still misses: $still" >&2
  exit 1
fi

write_config
echo "setup-mesa: ready; source $ENV_FILE" >&2
