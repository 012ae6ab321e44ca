# Sourced by bench/gpu.sh and bench/gpu-train.sh (bash, after `set -euo pipefail`): the Vulkan environment
# for Dawn on a GPU machine that has no network and only the NVIDIA driver, or on Mesa's lavapipe.
# Needs REPO (the repo root), SCRIPT (the caller's name, for messages), WORK (the caller's scratch folder)
# and LAVAPIPE (1: Mesa's software Vulkan from .cache/mesa). Exports XDG_RUNTIME_DIR, LD_LIBRARY_PATH and
# VK_ICD_FILENAMES, and sets DEVICE to the GPU's name and driver version.
#
# The Vulkan loader (libvulkan.so.1) comes from .cache/mesa, written by scripts/setup-mesa.sh on a machine
# with network. The NVIDIA Vulkan driver comes with the NVIDIA driver (libGLX_nvidia.so.0); when a
# container exposes the library but not its ICD json, one is written to $WORK.
MESA_LIB=$REPO/.cache/mesa/root/usr/lib/x86_64-linux-gnu
[ -e "$MESA_LIB/libvulkan.so.1" ] || { echo "$SCRIPT: $MESA_LIB/libvulkan.so.1 is missing; run scripts/setup-mesa.sh where there is network and bring .cache/mesa" >&2; exit 1; }

mkdir -p "$WORK/xdg" && chmod 700 "$WORK/xdg"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$WORK/xdg}
if ((LAVAPIPE)); then
  # shellcheck disable=SC1091
  source "$REPO/.cache/mesa/env.sh"
  DEVICE="lavapipe (Mesa software Vulkan)"
else
  export LD_LIBRARY_PATH="$MESA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  ICD=""
  for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json; do
    [ -f "$f" ] && { ICD=$f; break; }
  done
  if [ -z "$ICD" ]; then
    glx=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia\.so\.0/ { print $NF; exit }')
    [ -n "$glx" ] || glx=$(ls /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 /usr/lib64/libGLX_nvidia.so.0 2>/dev/null | head -1 || true)
    if [ -z "$glx" ]; then
      echo "$SCRIPT: no NVIDIA Vulkan driver: neither nvidia_icd.json nor libGLX_nvidia.so.0 found (a container needs NVIDIA_DRIVER_CAPABILITIES to include graphics)" >&2
      exit 1
    fi
    ICD=$WORK/nvidia_icd.json
    printf '{ "file_format_version": "1.0.0", "ICD": { "library_path": "%s", "api_version": "1.3.0" } }\n' "$glx" > "$ICD"
  fi
  export VK_ICD_FILENAMES=$ICD
  DEVICE=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo "NVIDIA GPU (nvidia-smi unavailable)")
fi
echo "$SCRIPT: Vulkan ICD $VK_ICD_FILENAMES; device: $DEVICE" >&2
