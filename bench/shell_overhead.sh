#!/usr/bin/env bash
# Shell dispatch overhead: N `sh -c true` jobs, no deps, at concurrency J,
# through `tek run -j J`, `xargs -P J` and `make -j J` (each runs one /bin/sh
# per job), best of R runs each; prints wall times and tek's ratios.
# Usage: bench/shell_overhead.sh [N=2000] [J=8] [R=5]
# Target (issue 3): tek at most 1.15 x xargs.
set -euo pipefail
N=${1:-2000}
J=${2:-8}
R=${3:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TEK=${TEK:-$ROOT/.venv/bin/tek}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TEK_HOME=$tmp/home

{ echo "id,command"; for i in $(seq "$N"); do echo "t$i,true"; done; } >"$tmp/plan.csv"
{
  printf 'all:'; for i in $(seq "$N"); do printf ' t%d' "$i"; done; echo
  for i in $(seq "$N"); do printf 't%d:\n\t@sh -c true\n' "$i"; done
  printf '.PHONY: all'; for i in $(seq "$N"); do printf ' t%d' "$i"; done; echo
} >"$tmp/Makefile"

ms() {  # best wall time in ms of R runs of "$@"
  local best=999999999 s e d
  for _ in $(seq "$R"); do
    s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
    d=$(((e - s) / 1000000)); ((d < best)) && best=$d
  done
  echo "$best"
}

cd "$tmp"  # every tool runs its jobs in the plan's folder (tek's default cwd)
xargs_ms=$(ms sh -c "seq $N | xargs -P$J -I{} sh -c true")
make_ms=$(ms make -s -j"$J" -f "$tmp/Makefile" -C "$tmp")
tek_ms=$(ms "$TEK" run --plain -j "$J" "$tmp/plan.csv")
tek_nj_ms=$(ms "$TEK" run --plain --no-journal -j "$J" "$tmp/plan.csv")
echo "load: $(uptime | sed 's/.*load average: //')"
printf '%-22s %6d ms\n' xargs "$xargs_ms" make "$make_ms" "tek (journal on)" "$tek_ms" \
  "tek --no-journal" "$tek_nj_ms"
awk -v t="$tek_ms" -v n="$tek_nj_ms" -v x="$xargs_ms" -v m="$make_ms" 'BEGIN {
  printf "tek/xargs %.2f x   tek/make %.2f x   (target tek/xargs <= 1.15)\n", t / x, t / m
  printf "without the journal: tek/xargs %.2f x   tek/make %.2f x\n", n / x, n / m }'
