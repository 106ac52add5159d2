#!/usr/bin/env bash
# Reproduce the default checkpoint (qwen2.5-coder-1.5b, lmhead mode) and its MBPP evaluation.
#
#   bash scripts/reproduce_default.sh [train|ship|eval-init|eval|table3|no-tests|all]  (default: all)
#
# Every step is resumable: run the script again after an interruption and it goes on where it
# stopped (finished collect / featurize shards and eval problems are kept; phi and theta resume
# from their last checkpoint). Progress goes to $RUNS/logs/<step>.log. RUNS (default: runs) holds
# the run directories. results/runs/ holds the small parts of earlier runs (the collected programs,
# eval records), copied into RUNS first so that the script goes on from them; RECOLLECT=1
# starts from nothing instead (the same programs: collect and eval are seeded).
# LIMIT (default 500: all of MBPP test, task ids 11-510) is the number of test problems whose
# checkpoint-policy candidates are sampled and ranked; TRAINED_LIMIT (default 300) the number the
# trained policy samples (about 25 s a problem on 2 cores), TABLE3_LIMIT (default 300) smollm2's,
# NO_TESTS_LIMIT (default 300) the MBPP test problems of the no-tests protocol (no assert shown; the
# model writes tests: about a minute more a problem).
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=qwen2.5-coder-1.5b-lmhead
RUNS=${RUNS:-runs}
RUN=$RUNS/$CONFIG
SHIPPED=bcoder/checkpoints/$CONFIG  # what `ship` writes and a fresh install ranks with
LIMIT=${LIMIT:-500}
TRAINED_LIMIT=${TRAINED_LIMIT:-300}
TABLE3_LIMIT=${TABLE3_LIMIT:-300}
NO_TESTS_LIMIT=${NO_TESTS_LIMIT:-300}
LOGS=$RUNS/logs
case "${1:-all}" in
  train|ship|eval-init|eval|table3|no-tests|all) ;;
  *) echo "usage: $0 [train|ship|eval-init|eval|table3|no-tests|all]" >&2; exit 2 ;;
esac
mkdir -p "$LOGS"
EVAL=(-d mbpp --split test -M 8 --temperature 0.6 --k 1,5)  # each call adds its --limit

log() { echo "$(date +%H:%M:%S) $*" | tee -a "$LOGS/steps.log" >&2; }

if [ "${RECOLLECT:-0}" = 0 ]; then  # never overwrites what RUNS holds
  for dir in results/runs/*/; do cp -rn "$dir" "$RUNS/"; done
fi

train() {
  log "train: collect -> featurize -> phi -> theta -> select in $RUN"
  bcoder train all -c "$CONFIG" --set run.dir="$RUN" --resume 2>&1 | tee -a "$LOGS/train.log"
}

ship() {
  log "ship: $RUN/checkpoint -> bcoder/checkpoints"
  python3 scripts/ship_checkpoint.py "$RUN"
}

eval_init() {  # needs no training: can run before (or beside) train
  log "eval: the checkpoint policy's candidates (no trained heads) on MBPP test"
  bcoder eval "${EVAL[@]}" --limit "$LIMIT" --checkpoint none --out "$RUNS/eval-init" --resume \
    2>&1 | tee -a "$LOGS/eval-init.log"
}

evaluate() {
  local ckpt=$SHIPPED
  eval_init
  bcoder eval export "$RUNS/eval-init" -o "$RUNS/eval-init/candidates.jsonl"
  log "eval: the same candidates ranked by the trained Q-function"
  bcoder eval "${EVAL[@]}" --limit "$LIMIT" --rank-only "$RUNS/eval-init/candidates.jsonl" \
    --checkpoint "$ckpt" --out "$RUNS/eval-ranked" --resume 2>&1 | tee -a "$LOGS/eval-ranked.log"
  log "eval: the trained policy's own candidates, ranked by it"
  # --policy trained: the checkpoint may sample from the base policy (select's choice)
  bcoder eval "${EVAL[@]}" --limit "$TRAINED_LIMIT" --checkpoint "$ckpt" --policy trained \
    --out "$RUNS/eval-trained" --resume \
    2>&1 | tee -a "$LOGS/eval-trained.log"
}

table3() {
  log "table 3: smollm2-135m's candidates ranked by the default model's Q-function"
  bcoder eval "${EVAL[@]}" --limit "$TABLE3_LIMIT" -m smollm2-135m --checkpoint none \
    --out "$RUNS/eval-smollm2" --resume 2>&1 | tee -a "$LOGS/eval-smollm2.log"
  bcoder eval export "$RUNS/eval-smollm2" -o "$RUNS/eval-smollm2/candidates.jsonl"
  bcoder eval "${EVAL[@]}" --limit "$TABLE3_LIMIT" --rank-only "$RUNS/eval-smollm2/candidates.jsonl" \
    --checkpoint "$SHIPPED" --out "$RUNS/eval-smollm2-ranked" --resume \
    2>&1 | tee -a "$LOGS/eval-smollm2-ranked.log"
}

no_tests() {  # ranking without tests (README "Ranking without tests")
  log "no tests: MBPP test problems as stubs, no assert shown; the model writes tests"
  bcoder eval "${EVAL[@]}" --limit "$NO_TESTS_LIMIT" --protocol no-tests \
    --out "$RUNS/mbpp-no-tests" --resume 2>&1 | tee -a "$LOGS/mbpp-no-tests.log"
  # HumanEval's prompt is the same under both protocols and sampling is seeded, so a run of the
  # tests protocol resumed under no-tests (it keeps its candidates) gives the same records
  log "no tests: HumanEval, the model's tests beside its docstring examples"
  bcoder eval -d humaneval --split test -M 8 --temperature 0.6 --k 1,5 --protocol no-tests \
    --out "$RUNS/humaneval-no-tests" --resume 2>&1 | tee -a "$LOGS/humaneval-no-tests.log"
  python3 scripts/results_no_tests.py --runs "$RUNS" --out docs/results-no-tests
}

case "${1:-all}" in
  train) train ;;
  ship) ship ;;
  eval-init) eval_init ;;
  eval) evaluate ;;
  table3) table3 ;;
  no-tests) no_tests ;;
  all) train && ship && evaluate && table3 && no_tests ;;
esac
