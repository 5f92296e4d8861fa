#!/usr/bin/env bash
# Makes (once) the Python environment whose readers check the volume exports in the tests
# (tests/reference/volume_exports.py): pydicom, highdicom and nibabel, pinned. Prints the
# interpreter's path. Needs python3 with venv (installed with apt-get where missing) and PyPI.
set -euo pipefail

venv="${DELIGHTSAM_REFERENCE_VENV:-$HOME/.cache/delightsam-reference-venv}"
packages=(pydicom==3.0.2 highdicom==0.28.2 nibabel==5.4.2)

if "$venv/bin/python" -c "import pydicom, highdicom, nibabel" 2>/dev/null; then
    echo "$venv/bin/python"
    exit 0
fi
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    echo "reference_env: installing python3-venv" >&2
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq python3 python3-venv >&2
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check "${packages[@]}" >&2
echo "$venv/bin/python"
