#!/usr/bin/env bash
# Makes the release archive and the Debian package from this checkout, into dist/:
#   dist/delightsam-VERSION-x86_64-linux.tar.xz   unpack anywhere, run ./delightsam
#   dist/delightsam_VERSION-1_amd64.deb           sudo apt install ./dist/delightsam_…deb
# Both hold the binary, the shipped models, the desktop entry and the icons; nothing is fetched
# at install or run time. Needs what scripts/setup.sh installs, and cargo-deb (installed here
# from crates.io if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/delightsam-target}"
if ! cargo deb --version >/dev/null 2>&1; then
    echo "package: installing cargo-deb"
    cargo install cargo-deb --locked
fi

# build.rs stamps the commit into the binary (`delightsam --version`); a tree with changes that
# are not committed is named so.
commit=$(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit+changes"
fi
export DELIGHTSAM_GIT_COMMIT="$commit"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(uname -m)

cargo build --release --bin delightsam
binary="$CARGO_TARGET_DIR/release/delightsam"
for model in models/litemedsam.bpk models/delightsam-default.bpk models/delightsam-default.json; do
    [ -s "$model" ] || { echo "package: $model is missing or empty (git lfs? a partial clone?)" >&2; exit 1; }
done

rm -rf dist
mkdir -p dist

# The archive: the binary finds models/ beside itself (model/weights.rs: shipped_path).
name="delightsam-$version-$arch-linux"
stage="dist/$name"
mkdir -p "$stage/models" "$stage/icons"
cp "$binary" "$stage/delightsam"
strip "$stage/delightsam"
cp models/litemedsam.bpk models/delightsam-default.bpk models/delightsam-default.json models/MODEL_CARD.md "$stage/models/"
cp assets/delightsam.desktop assets/SOURCES.md README.md LICENSE "$stage/"
cp assets/icons/*.png "$stage/icons/"
cat > "$stage/INSTALL.txt" <<TXT
De-LightSAM Annotator $version (commit $commit), $arch Linux.

Run it from this folder:  ./delightsam        (or ./delightsam FILE)
It needs a Vulkan loader (Debian/Ubuntu: apt install libvulkan1 mesa-vulkan-drivers) and an
X11 or Wayland desktop. Keep models/ beside the binary; the folder can live anywhere.
Menu entry (optional): copy delightsam.desktop to ~/.local/share/applications/ with Exec= set to
this folder's delightsam, and icons/delightsam-256.png to
~/.local/share/icons/hicolor/256x256/apps/delightsam.png.
Research use only; not a medical device (models/MODEL_CARD.md).
TXT
tar -C dist -cJf "dist/$name.tar.xz" "$name"
rm -rf "$stage"

# The Debian package (assets and dependencies: [package.metadata.deb] in Cargo.toml).
cargo deb --no-build --output dist/

ls -l dist
