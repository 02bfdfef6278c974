#!/usr/bin/env bash
# Shell dispatch overhead: N `sh -c true` jobs, no deps, at concurrency J,
# through `tek run -j J` (journal on, and off), `xargs -P J` and `make -j J`
# (each runs one /bin/sh per job), R interleaved rounds; prints the best wall
# time of each and tek's ratios.
# Usage: bench/shell_overhead.sh [N=2000] [J=8] [R=5]
# Target (issue 3): tek at most 1.15 x xargs.
set -euo pipefail
N=${1:-2000}
J=${2:-8}
R=${3:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TEK=${TEK:-$ROOT/.venv/bin/tek}
# tek as it starts from its second run on: with its byte-code cached. (An
# editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set,
# as on the development VM, every start would compile tek's ~70 modules.)
"$(dirname "$TEK")/python" -m compileall -q "$ROOT/core" "$ROOT/tek_tui" >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TEK_HOME=$tmp/home

{ echo "id,command"; for i in $(seq "$N"); do echo "t$i,true"; done; } >"$tmp/plan.csv"
{
  printf 'all:'; for i in $(seq "$N"); do printf ' t%d' "$i"; done; echo
  for i in $(seq "$N"); do printf 't%d:\n\t@sh -c true\n' "$i"; done
  printf '.PHONY: all'; for i in $(seq "$N"); do printf ' t%d' "$i"; done; echo
} >"$tmp/Makefile"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
once() {  # wall ms of one run of "$@"
  local s; s=$(now_ms); "$@" >/dev/null 2>&1; echo $(($(now_ms) - s))
}

# Rounds interleave the tools, so load from elsewhere hits them alike; the
# best of each and the median of the per-round tek/xargs ratios are printed.
cd "$tmp"  # every tool runs its jobs in the plan's folder (tek's default cwd)
declare -a X M T TN
for r in $(seq "$R"); do
  X[r]=$(once sh -c "seq $N | xargs -P$J -I{} sh -c true")
  M[r]=$(once make -s -j"$J" -f "$tmp/Makefile" -C "$tmp")
  T[r]=$(once "$TEK" run --plain -j "$J" "$tmp/plan.csv")
  TN[r]=$(once "$TEK" run --plain --no-journal -j "$J" "$tmp/plan.csv")
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
median_ratio() {  # median over rounds of $1[r] / $2[r]
  local -n a=$1 b=$2
  for r in $(seq "$R"); do awk -v x="${a[r]}" -v y="${b[r]}" 'BEGIN { printf "%.3f\n", x / y }'; done |
    sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
xargs_ms=$(best "${X[@]}")
make_ms=$(best "${M[@]}")
tek_ms=$(best "${T[@]}")
tek_nj_ms=$(best "${TN[@]}")
echo "load: $(uptime | sed 's/.*load average: //')"
printf '%-22s %6d ms\n' xargs "$xargs_ms" make "$make_ms" "tek (journal on)" "$tek_ms" \
  "tek --no-journal" "$tek_nj_ms"
awk -v t="$tek_ms" -v n="$tek_nj_ms" -v x="$xargs_ms" -v m="$make_ms" 'BEGIN {
  printf "best/best: tek/xargs %.2f x   tek/make %.2f x   (target tek/xargs <= 1.15)\n", t / x, t / m
  printf "without the journal: tek/xargs %.2f x   tek/make %.2f x\n", n / x, n / m }'
echo "median of per-round tek/xargs: $(median_ratio T X) x (journal on), $(median_ratio TN X) x (off)"
