#!/usr/bin/env bash
# Toy reproductions on CPU: every method's recipe under recipes/toy/ at the same budget
# (40 steps x 32 prompts x 8 completions, eval on 350 held-out problems x 4 samples), then
# `laconic compare` draws the accuracy-vs-tokens Pareto plot and writes the table.
#
#   bash scripts/toy_pareto.sh                       # all methods, 2 runs at a time
#   METHODS="dler laser hapo" JOBS=1 OUT=runs/pareto bash scripts/toy_pareto.sh
#   EXTRA="train.max_steps=2 eval.num_examples=8" bash scripts/toy_pareto.sh   # overrides for every run
#
# About 10-12 minutes per method on 2 cores with JOBS=2 (one torch thread per run); finished
# runs (those with a summary.json) are skipped, so an interrupted sweep continues where it was.
# Outputs: $OUT/<method>/ (each run), $OUT/compare/{pareto.png,curves.png,compare.md,compare.json}.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/toy_pareto}
JOBS=${JOBS:-2}
METHODS=${METHODS:-"dler da_dler laser laser_d laser_de hapo pear ceeh kimi cosine dapo_overlong concise_r grpo_lambda l1_exact l1_max adactrl"}
PY=python LACONIC=laconic
if [ -x .venv/bin/python ]; then PY=.venv/bin/python LACONIC=.venv/bin/laconic; fi
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
# Build the toys the methods start from once, before parallel runs could race to build them:
# builtin:toy, AdaCtrl's builtin:toy-tagged, L1's builtin:toy-budget (rl/toy.py).
case "$EXTRA" in
  *model.name_or_path=*) ;;
  *) variants=plain
     case " $METHODS " in *" adactrl "*) variants="$variants tagged" ;; esac
     case " $METHODS " in *" l1_exact "*|*" l1_max "*) variants="$variants budget" ;; esac
     for v in $variants; do "$PY" -c "from rl.toy import ensure_toy; ensure_toy(variant='$v')"; done ;;
esac

run_one() {
  local m=$1
  if [ -f "$OUT/$m/summary.json" ]; then echo "skip $m (done)"; return; fi
  echo "start $m"
  # The starting model is evaluated once, in dler's run; laconic compare gives that "before" to
  # every run with the same model and eval settings. L1 (budget in the eval prompt) and AdaCtrl
  # (the tagged toy) start elsewhere and evaluate their own.
  local before=false
  case $m in dler|l1_exact|l1_max|adactrl) before=true ;; esac
  # shellcheck disable=SC2086  # EXTRA holds several overrides
  "$LACONIC" train "recipes/toy/$m.yaml" "train.output_dir=$OUT/$m" train.torch_threads=1 "eval.before=$before" $EXTRA \
      > "$OUT/$m.log" 2>&1 || { echo "FAILED $m (see $OUT/$m.log)"; return 1; }
  echo "done $m: $(tail -n 3 "$OUT/$m.log" | head -n 1)"
}
export -f run_one
export OUT LACONIC EXTRA
# shellcheck disable=SC2086
printf '%s\n' $METHODS | xargs -P "$JOBS" -I{} bash -c 'run_one {}' || echo "some runs failed; comparing the rest"

runs=()
for m in $METHODS; do [ -f "$OUT/$m/summary.json" ] && runs+=("$OUT/$m"); done
"$LACONIC" compare "${runs[@]}" --out "$OUT/compare" --title "Overthinking toy: 40 steps x 32 prompts x 8"
cat "$OUT/compare/compare.md"
