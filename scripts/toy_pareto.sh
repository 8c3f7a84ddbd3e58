#!/usr/bin/env bash
# Toy reproductions on CPU: every method's recipe under recipes/$TOY/ at the same budget (on
# recipes/toy/: 40 steps x 32 prompts x 8 completions, eval on 350 held-out problems x 4 samples),
# once per seed, then `laconic compare` draws the accuracy-vs-tokens Pareto plot and writes the table
# (with several seeds: each method at its mean over seeds with ±1 sd error bars, `mean ± sd` cells,
# and accuracy / tokens by difficulty).
#
#   bash scripts/toy_pareto.sh                         # all methods of recipes/toy/, seed 0, 2 runs at a time
#   SEEDS="0 1 2" bash scripts/toy_pareto.sh           # three seeds per method (train.seed=0, 1, 2)
#   TOY=toy_think bash scripts/toy_pareto.sh           # the recipes under recipes/toy_think/ (all of them)
#   METHODS="dler laser hapo" JOBS=1 OUT=runs/pareto bash scripts/toy_pareto.sh
#   EXTRA="train.max_steps=2 eval.num_examples=8" bash scripts/toy_pareto.sh   # overrides for every run
#
# TOY: a directory under recipes/ (default toy); METHODS: recipe names in it (default on toy: the
# methods with a measured point in docs/reproductions.md; on another TOY: every recipe there).
# A method "a+b" is a chain: b starts from a's final model of the same seed (model.name_or_path) and evaluates
# that start (eval.before=true), e.g. METHODS="thinkdial_phase1+thinkdial_phase2"; by default the recipes
# <name>_phase1, <name>_phase2, ... of a TOY other than toy are chained so.
# SEEDS: space-separated train.seed values (default "0"). OUT: default runs/toy_pareto (TOY=toy),
# else runs/<TOY>_pareto. JOBS: runs at a time. EXTRA: overrides added to every run.
#
# About 10-12 minutes per method and seed on 2 cores with JOBS=2 (one torch thread per run; the
# toy-think recipes are faster: 30 runs in 62 min);
# finished runs (those with a summary.json) are skipped and a run killed part-way resumes from its
# newest checkpoint, so an interrupted sweep continues where it was. The runs go first seed first,
# so the sweep has one seed of every method before the next.
# The starting model is evaluated once per distinct start (model, prompt template and eval
# settings): in the first seed of the first method using it; `laconic compare` gives that "before"
# to the others (the evaluation is seeded apart from train.seed, so it would give the same numbers).
#
# Layout: $OUT/<method>/seed<s>/ (each run, also with the single default seed; a run from before
# seeds, $OUT/<method>/ itself, is not reused: move it to $OUT/<method>/seed0 to keep it),
# $OUT/<method>/seed<s>.log, $OUT/compare/{pareto.png,curves.png,compare.md,compare.json}.
set -euo pipefail
cd "$(dirname "$0")/.."

TOY=${TOY:-toy}
RECIPES=recipes/$TOY
if [ -z "$TOY" ] || [ ! -d "$RECIPES" ]; then
  echo "toy_pareto.sh: TOY=$TOY: no recipe directory $RECIPES/ (TOY names a directory under recipes/, e.g. toy)" >&2
  exit 2
fi
if [ "$TOY" = toy ]; then
  DEFAULT_METHODS="dler da_dler laser laser_d laser_de hapo pear ceeh kimi cosine dapo_overlong concise_r grpo_lambda l1_exact l1_max adactrl"
  DEFAULT_TITLE="Overthinking toy: 40 steps x 32 prompts x 8"
else
  # every recipe; <name>_phase1, <name>_phase2, ... chained in phase order into one method "<name>_phase1+<name>_phase2"
  DEFAULT_METHODS=$(for f in "$RECIPES"/*.yaml; do
      [ -f "$f" ] || continue
      m=$(basename "$f" .yaml)
      case $m in
        *_phase1) chain=$m k=2
                  while [ -f "$RECIPES/${m%_phase1}_phase$k.yaml" ]; do chain+="+${m%_phase1}_phase$k"; k=$((k + 1)); done
                  printf '%s ' "$chain" ;;
        *_phase[0-9]*) ;;  # part of its phase-1 chain
        *) printf '%s ' "$m" ;;
      esac
    done)
  DEFAULT_TITLE="recipes/$TOY"
fi
METHODS=${METHODS:-$DEFAULT_METHODS}
SEEDS=${SEEDS:-0}
OUT=${OUT:-runs/$([ "$TOY" = toy ] && echo toy_pareto || echo "${TOY}_pareto")}
JOBS=${JOBS:-2}
EXTRA=${EXTRA:-}
if [ -z "${METHODS// /}" ]; then echo "toy_pareto.sh: no recipes in $RECIPES/ and METHODS is empty" >&2; exit 2; fi
PARTS=$(for m in $METHODS; do echo "${m//+/ }"; done | tr '\n' ' ')  # every recipe, chains split
for m in $PARTS; do
  if [ ! -f "$RECIPES/$m.yaml" ]; then
    echo "toy_pareto.sh: METHODS has '$m' but there is no $RECIPES/$m.yaml" >&2
    exit 2
  fi
done
for s in $SEEDS; do
  case $s in ''|*[!0-9]*) echo "toy_pareto.sh: SEEDS must be non-negative integers, got '$s'" >&2; exit 2 ;; esac
done
if [ -z "${SEEDS// /}" ]; then echo "toy_pareto.sh: SEEDS is empty" >&2; exit 2; fi
FIRST_SEED=$(set -- $SEEDS; echo "$1")
TITLE=${TITLE:-$DEFAULT_TITLE}
nseeds=$(set -- $SEEDS; echo $#)
if [ "$nseeds" -gt 1 ]; then TITLE="$TITLE, seeds $(echo $SEEDS | tr ' ' ',')"; fi

PY=python LACONIC=laconic
if [ -x .venv/bin/python ]; then PY=.venv/bin/python LACONIC=.venv/bin/laconic; fi
mkdir -p "$OUT"
recipes=()
for m in $PARTS; do recipes+=("$RECIPES/$m.yaml"); done
# Build the toys the methods start from once, before parallel runs could race to build them:
# builtin:toy (plain) and its variants builtin:toy-<variant> (rl/models/toy.py), as the recipes name them.
case "$EXTRA" in
  *model.name_or_path=*) ;;
  *) variants=$(sed -nE 's/^[[:space:]]*name_or_path:[[:space:]]*builtin:toy(-([A-Za-z0-9_]+))?([[:space:]#].*)?$/\2/p' \
                  "${recipes[@]}" | sed 's/^$/plain/' | sort -u)
     for v in $variants; do "$PY" -c "from rl.models.toy_build import ensure_toy; ensure_toy(variant='$v')"; done ;;
esac
# The methods whose first seed evaluates the starting model: the first of each distinct start.
# shellcheck disable=SC2086  # EXTRA holds several overrides
EVALUATORS=" $("$PY" -m rl.eval.seeds "${recipes[@]}" -- $EXTRA) "

for m in $PARTS; do
  if [ -f "$OUT/$m/summary.json" ]; then
    echo "note: $OUT/$m is a run from before seeds; move it to $OUT/$m/seed0 to reuse it as seed 0"
  fi
done

run_one() {  # one method and seed; a chain "a+b": its parts in order, b from a's final model
  local chain=$1 s=$2 m prev="" dir before start
  for m in ${chain//+/ }; do
    dir="$OUT/$m/seed$s"
    if [ -f "$dir/summary.json" ]; then echo "skip $m seed$s (done)"; prev=$m; continue; fi
    echo "start $m seed$s"
    before=false start=()
    if [ -n "$prev" ]; then  # a later phase: this seed's previous phase is its start, evaluated here
      before=true start=("model.name_or_path=$OUT/$prev/seed$s/final")
    elif [ "$s" = "$FIRST_SEED" ]; then case $EVALUATORS in *" $m "*) before=true ;; esac; fi
    mkdir -p "$OUT/$m"
    # shellcheck disable=SC2086  # EXTRA holds several overrides
    # train.resume=latest: a run killed part-way continues from its newest checkpoint (or starts over without one)
    "$LACONIC" train "$RECIPES/$m.yaml" "train.output_dir=$dir" "train.seed=$s" train.torch_threads=1 \
        "eval.before=$before" train.resume=latest $EXTRA "${start[@]}" > "$OUT/$m/seed$s.log" 2>&1 \
        || { echo "FAILED $m seed$s (see $OUT/$m/seed$s.log)"; return 1; }
    echo "done $m seed$s: $(tail -n 3 "$OUT/$m/seed$s.log" | head -n 1)"
    prev=$m
  done
}
export -f run_one
export OUT LACONIC EXTRA RECIPES FIRST_SEED EVALUATORS
# first seed of every method, then the next seed
# shellcheck disable=SC2086
for s in $SEEDS; do for m in $METHODS; do echo "$m $s"; done; done \
  | xargs -P "$JOBS" -I{} bash -c 'run_one {}' || echo "some runs failed; comparing the rest"

runs=()
for s in $SEEDS; do for m in $PARTS; do
  [ -f "$OUT/$m/seed$s/summary.json" ] && runs+=("$OUT/$m/seed$s")
done; done
if [ ${#runs[@]} -eq 0 ]; then echo "toy_pareto.sh: no finished run to compare under $OUT" >&2; exit 1; fi
"$LACONIC" compare "${runs[@]}" --out "$OUT/compare" --title "$TITLE"
cat "$OUT/compare/compare.md"
