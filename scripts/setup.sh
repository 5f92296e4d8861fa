#!/usr/bin/env bash
# Installs what building and running De-LightSAM Annotator needs on Debian/Ubuntu, if missing:
# cmake + g++ (CharLS and libjpeg-turbo are built from source), the Vulkan loader and mesa's
# drivers (wgpu; lavapipe where there is no GPU), and the X11/xkb libraries the window loads.
# Uses sudo when not root. Elsewhere it names what to install and stops.
set -euo pipefail

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is missing; install Rust 1.95 or newer from https://rustup.rs first" >&2
    exit 1
fi

commands=(cmake g++)
packages=(cmake g++ libvulkan1 mesa-vulkan-drivers libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2 libx11-xcb1)

if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
    missing=()
    for c in "${commands[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: not a Debian/Ubuntu system; install ${missing[*]} and a Vulkan loader (libvulkan) with your package manager" >&2
        exit 1
    fi
    exit 0
fi

need=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0

echo "setup: installing ${need[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "setup: run as root, or install these first: apt-get install ${need[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}"
