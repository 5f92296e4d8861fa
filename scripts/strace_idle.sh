#!/usr/bin/env bash
# Counts the file-system calls the window makes over 100 idle frames with a 200-image worklist
# open (issue 13): builds the ignored test tests/idle_frames.rs, runs it under strace, and counts
# the calls between its two marker stats (/tmp/IDLE_FRAMES_START, /tmp/IDLE_FRAMES_END).
#
#   scripts/strace_idle.sh                 build, trace, report   (honours CARGO_TARGET_DIR)
#   scripts/strace_idle.sh --report FILE   report on an earlier trace only
#
# Counted as file-system calls: strace's %file class (calls that take a path: openat, statx,
# newfstatat, access, readlink, ...), plus the %desc calls (read, fstat, lseek, close, ...) on a
# descriptor that names a path on disk (strace -y), i.e. reads of files. Descriptors of pipes,
# sockets, eventfds, /dev and /proc are listed apart and not counted.
set -euo pipefail
cd "$(dirname "$0")/.."

TEST=idle_frames_with_a_200_image_worklist
OUT=${STRACE_OUT:-/tmp/strace.out}

if [[ "${1:-}" == "--report" ]]; then
    OUT=$2
else
    command -v strace >/dev/null || apt-get install -y strace
    BIN=$(cargo test --release --test idle_frames --no-run --message-format json 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "idle_frames" and m.get("executable"):
        print(m["executable"])')
    [[ -x "$BIN" ]] || { echo "no test binary (run: cargo test --release --test idle_frames --no-run)" >&2; exit 1; }
    echo "binary: $BIN"
    strace -f -tt -y -e trace=%file,%desc -o "$OUT" "$BIN" --ignored --exact "$TEST" --nocapture --test-threads=1
fi

python3 - "$OUT" <<'EOF'
import collections, re, sys

FRAMES = 100
lines = open(sys.argv[1], errors="replace").read().splitlines()
start = next(i for i, l in enumerate(lines) if "/tmp/IDLE_FRAMES_START" in l)
end = next(i for i, l in enumerate(lines) if "/tmp/IDLE_FRAMES_END" in l)
ui_tid = lines[start].split()[0]

call = re.compile(r"^(\d+)\s+\S+\s+([a-z0-9_]+)\((.*)$")
FILE_CALLS = {  # strace's %file class (as of strace 6), the ones a program is likely to make
    "open", "openat", "openat2", "creat", "stat", "lstat", "newfstatat", "fstatat64", "statx", "statfs",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getcwd", "chdir", "mkdir", "mkdirat",
    "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
    "chmod", "fchmodat", "chown", "fchownat", "utimensat", "truncate", "execve", "execveat",
    "getxattr", "lgetxattr", "listxattr", "inotify_add_watch", "fanotify_mark", "name_to_handle_at",
}

def on_disk(path):
    return path.startswith("/") and not path.startswith(("/dev/", "/proc/", "/sys/"))

counted, by_call, by_thread, paths, patterns, other = 0, collections.Counter(), collections.Counter(), collections.Counter(), collections.Counter(), collections.Counter()
for line in lines[start + 1:end]:
    m = call.match(line)
    if not m:
        continue  # "<... resumed>" halves, signals, exits
    tid, name, args = m.groups()
    if name in FILE_CALLS:
        q = re.search(r'"((?:[^"\\]|\\.)*)"', args)
        path = q.group(1) if q else "?"
    else:
        fd = re.match(r"-?\d+<(.*?)>[,)]", args)
        if not (fd and on_disk(fd.group(1))):
            other[name] += 1
            continue
        path = fd.group(1)
    counted += 1
    by_call[name] += 1
    by_thread["UI thread" if tid == ui_tid else "other threads"] += 1
    paths[path] += 1
    patterns[re.sub(r"\d+", "#", re.sub(r"/\.tmp[^/]+", "/.tmpX", path))] += 1

print(f"\nfile-system calls over {FRAMES} idle frames: {counted} total, {counted / FRAMES:.1f} per frame")
for k, v in sorted(by_thread.items()):
    print(f"  {k}: {v}")
print("by call:")
for k, v in by_call.most_common():
    print(f"  {v:8d}  {k}")
print("top paths:")
for k, v in paths.most_common(15):
    print(f"  {v:8d}  {k}")
print("top path patterns (digits as #, temp dirs as .tmpX):")
for k, v in patterns.most_common(15):
    print(f"  {v:8d}  {k}")
print("not counted (descriptors of pipes, sockets, eventfds, /dev, /proc):", dict(other.most_common()) or "none")
EOF
