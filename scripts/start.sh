#!/usr/bin/env bash
# Sets up what is missing (scripts/setup.sh), builds, and starts the application:
#   scripts/start.sh [FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release -- "$@"
