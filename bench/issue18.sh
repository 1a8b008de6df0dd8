#!/usr/bin/env bash
# Issue 18's measurements in one command, on an otherwise idle machine (2 torch threads; about 40 minutes on the
# project's 2-core CPU box). Everything is printed and kept in one log; paste the figures into docs/benchmarks.md.
#
#   bash bench/issue18.sh                 # log: bench-issue18-<date>.log in the checkout
#   bash bench/issue18.sh /tmp/b18.log    # log elsewhere
#   QUICK=1 bash bench/issue18.sh         # every bench at tiny size (mnist_mini), a check that they all run
#   FROM=3 bash bench/issue18.sh          # start at item 3; a failing item is printed and the rest still run
#
# "before" trees are git worktrees of main before the work they measure (created once, outside the checkout):
#   before-shared-reads  ecc9506~1  (lock waits: main before Trunk.reading)
#   before-warm          df029fa    (a cell's in-run cost: main before the warm agent and its in-run changes)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python}"  # the environment's python (the checkout's .venv when there is one)
if [[ -z "${PYTHON:-}" && -x .venv/bin/python ]]; then py=.venv/bin/python; fi
log="${1:-bench-issue18-$(date +%Y-%m-%d_%H-%M).log}"
quick=()
if [[ -n "${QUICK:-}" ]]; then quick=(--quick); fi

step() {  # step COMMAND...: run one bench; a failure is printed and the others still run (a 40-minute run)
    "$@" || echo "!! FAILED (exit $?): $*"
}

from="${FROM:-1}"  # FROM=3 bash bench/issue18.sh: start at item 3 (after a failure, or to redo the later items)
want() { [[ "$1" -ge "$from" ]]; }

tree() {  # tree NAME COMMIT: a worktree of COMMIT at /tmp/koopsweep-NAME, made once
    local path="/tmp/koopsweep-$1"
    [[ -d "$path" ]] || git worktree add --detach "$path" "$2" >/dev/null
    echo "$path"
}

{
    echo "== issue 18 benchmarks, $(date -Is), $(getconf _NPROCESSORS_ONLN) cores, commit $(git rev-parse --short HEAD)"
    uptime
    if want 1; then echo; echo "== 1. reused MnistNet cell: cold process vs warm agent (goal: warm <= 5 % of fine-tuning)"
        step "$py" bench/bench_warm.py cell --threads 2 --repeats 3 "${quick[@]}"; fi
    if want 2; then echo; echo "== 2. the same for ResNet-20 on CIFAR-10 (200 iterations of fine-tuning)"
        if [[ -n "${QUICK:-}" ]]; then echo "(skipped with QUICK)"; else
            step "$py" bench/bench_warm.py cell --model resnet20 --threads 2 --repeats 2; fi; fi
    if want 3; then echo; echo "== 3a. 48-cell store grid vs its ideal, in-process cells and the warm agent's loop (goal: within 5 %)"
        step "$py" bench/bench_store.py --store-only --threads 2 "${quick[@]}"
        step "$py" bench/bench_store.py --store-only --warm --threads 2 "${quick[@]}"
        echo; echo "== 3b. a 6-cell sweep: koopsweep sweep local vs --warm, against its cells' own work (goal: within 5 %)"
        step "$py" bench/bench_warm.py grid --threads 2 --repeats 2 "${quick[@]}"; fi
    if want 4; then echo; echo "== 4. lock waits of a timing grid, 2 trunks x 4 times, 2 jobs (goal: no wait on a stored state)"
        step "$py" bench/bench_locks.py --tree "before=$(tree before-shared-reads ecc9506~1)" --tree after=. "${quick[@]}"; fi
    if want 5; then echo; echo "== 5. a reused cell's in-run time outside fine-tuning and evaluations, before and after (goal: <= 5 %)"
        if [[ -n "${QUICK:-}" ]]; then echo "(bench_cell.py skipped with QUICK: full MNIST only)"; else
            step "$py" bench/bench_cell.py --tree "before=$(tree before-warm df029fa)" --tree after=. --repeats 3; fi
        step "$py" bench/profile_cell.py --threads 2 "${quick[@]}"; fi
    if want 6; then echo; echo "== 6. the warm agent's memory after 1, 10 and 50 cells"
        step "$py" bench/bench_warm.py memory --cells 50 --threads 2 2>/dev/null | grep -v "\]\[" || true; fi
    echo; echo "== done $(date -Is)"
} 2>&1 | tee "$log"
