#!/usr/bin/env bash
# The non-RL baselines of the toy tables, seeded: `laconic sample` draws 8 completions of 512 training prompts
# from the start model once, then `laconic baseline` trains shortest-correct SFT (trl.SFTTrainer) and DPO on
# Kimi k1.5's long2short pairs (trl.DPOTrainer) once per seed (trl.seed), each evaluated like the RL runs.
#
#   SEEDS="0 1 2" bash scripts/toy_baselines.sh                 # on builtin:toy    -> runs/toy_baselines/
#   TOY=toy_think SEEDS="0 1 2" bash scripts/toy_baselines.sh   # on builtin:toy-think -> runs/toy_think_baselines/
#   METHODS="sft_shortest dpo_kimi simpo" OUT=runs/b bash scripts/toy_baselines.sh
#
# TOY: toy | toy_think (the start model); METHODS: recipes/baselines/toy_<method>.yaml (default: sft_shortest
# dpo_kimi); SEEDS (default "0"); OUT. Runs go to $OUT/<method>/seed<s>/ (skipped when done), logs beside them;
# the start model is evaluated once (the first method's first seed). Then:
#   laconic compare runs/toy_think_baselines/*/seed* runs/toy_think_pareto/*/seed* --out runs/compare
set -euo pipefail
cd "$(dirname "$0")/.."

TOY=${TOY:-toy}
case $TOY in
  toy) MODEL=builtin:toy ;;
  toy_think) MODEL=builtin:toy-think ;;
  *) echo "toy_baselines.sh: TOY must be toy or toy_think, got '$TOY'" >&2; exit 2 ;;
esac
METHODS=${METHODS:-"sft_shortest dpo_kimi"}
SEEDS=${SEEDS:-0}
OUT=${OUT:-runs/${TOY}_baselines}
LACONIC=laconic
if [ -x .venv/bin/laconic ]; then LACONIC=.venv/bin/laconic; fi
for m in $METHODS; do
  [ -f "recipes/baselines/toy_$m.yaml" ] || { echo "toy_baselines.sh: no recipes/baselines/toy_$m.yaml" >&2; exit 2; }
done

mkdir -p "$OUT"
if [ ! -f "$OUT/samples/sft.jsonl" ]; then
  echo "sampling the start model ($MODEL) into $OUT/samples"
  "$LACONIC" sample "$MODEL" --data builtin:arithmetic --num-examples 512 --samples 8 --max-new-tokens 160 \
      --delimiter none --no-progress --overwrite --out "$OUT/samples" > "$OUT/sample.log" 2>&1
fi
first=1
for s in $SEEDS; do for m in $METHODS; do
  dir=$OUT/$m/seed$s
  before=false
  if [ $first = 1 ]; then before=true; first=0; fi
  if [ -f "$dir/summary.json" ]; then echo "skip $m seed$s (done)"; continue; fi
  case $m in sft*) file=$OUT/samples/sft.jsonl ;; *) file=$OUT/samples/pairs_kimi.jsonl ;; esac
  mkdir -p "$OUT/$m"
  echo "start $m seed$s"
  "$LACONIC" baseline "recipes/baselines/toy_$m.yaml" "model.name_or_path=$MODEL" "train_file=$file" \
      "output_dir=$dir" "trl.seed=$s" "eval.before=$before" > "$OUT/$m/seed$s.log" 2>&1 \
      || { echo "FAILED $m seed$s (see $OUT/$m/seed$s.log)"; continue; }
  echo "done $m seed$s"
done; done
