#!/usr/bin/env bash
# The recipe of the shipped student (vla_ros/models/MODEL_CARD.md), from a set-up checkout:
#   scripts/train_default_model.sh [DATA_DIR]      (default: data/)
# 1. records expert demonstrations (training seeds, training paraphrases),
# 2. trains the student on them (vla_ros/config/train_student.yaml),
# 3. two closed-loop data aggregation (DAgger) rounds: the current student drives (monitor
#    enforcing, map-free, the expert on 20 % of the frames) while the expert labels every state
#    it reaches; the student is fine-tuned on everything so far (vla_ros/config/train_dagger.yaml),
# 4. records held-out bags and scores the model open-loop,
# 5. drives it closed-loop on held-out seeds and the held-out paraphrases,
# 6. exports ONNX and prints the SHA-256 pins for vla_ros/config/model.yaml.
# Every step resumes: a re-run skips recorded episodes and continues training from its last
# checkpoint. Needs about 80 GB of disk (bags and their cache) and, on 2 CPU cores, ~3 hours.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
vla="$root/.venv/bin/vla"
data=$(mkdir -p "${1:-data}" && cd "${1:-data}" && pwd)

record() {  # scenario episodes seed_start split out_dir
  "$vla" sim record --scenario "$1" --episodes "$2" --seed-start "$3" --split "$4" \
    --out "$5/$1" --no-progress
}

for item in highway:5 merge:5 roundabout:5 intersection:4 exit:4 \
  cut_in:3 hard_braking_lead:3 stalled_vehicle:3 slow_truck:3 dense_traffic:3 \
  pull_over:3 stop_behind_lead:3; do
  record "${item%%:*}" "${item##*:}" 0 train "$data/bags"
done

cp "$root/vla_ros/config/train_student.yaml" "$data/train_student.yaml"
(cd "$data" && "$vla" train train_student.yaml)

dagger_round() {  # round seed_start scenario:episodes...
  local round=$1 seed=$2 previous=student/vla-student.safetensors bags="bags/*/*_seed*" item
  shift 2
  [ "$round" -gt 1 ] && previous=dagger$((round - 1))/student/vla-student.safetensors
  for item in "$@"; do
    "$vla" sim record --driver pipeline --weights "$data/$previous" --monitor enforce \
      --map-prior off --expert-share 0.2 --scenario "${item%%:*}" --episodes "${item##*:}" \
      --seed-start "$seed" --split train --out "$data/dagger$round/${item%%:*}" --no-progress
  done
  for ((r = 1; r <= round; r++)); do bags="$bags, dagger$r/*/*_seed*"; done
  sed -e "s#^bags: .*#bags: [$bags]#" -e "s#^out_dir: .*#out_dir: dagger$round/student#" \
    -e "s#^init_weights: .*#init_weights: $previous#" -e "s#^seed: .*#seed: $round#" \
    "$root/vla_ros/config/train_dagger.yaml" > "$data/train_dagger$round.yaml"
  (cd "$data" && "$vla" train "train_dagger$round.yaml")
}
dagger_round 1 200 highway:2 merge:2 roundabout:2 intersection:2 exit:2 stalled_vehicle:2 \
  hard_braking_lead:2 cut_in:2
dagger_round 2 210 highway:1 merge:1 roundabout:3 intersection:3 exit:3 stalled_vehicle:1 \
  hard_braking_lead:1 cut_in:1
final="$data/dagger2/student/vla-student.safetensors"

for scenario in highway merge roundabout intersection exit; do
  record "$scenario" 1 100 test "$data/held_out"
done
"$vla" eval-bags "$data"/held_out/*/*_seed* --weights "$final" \
  --cache "$data/student/cache" --json "$data/open_loop.json" --no-progress

for monitor in enforce log-only; do
  "$vla" sim eval --driver pipeline --weights "$final" \
    --scenarios nominal --episodes 5 --seed-start 100 --split test --monitor "$monitor" \
    --map-prior off --json "$data/closed_loop_$monitor.json" --report "$data/report_$monitor"
done

"$vla" export "$final" --onnx "$data/dagger2/student/vla-student.onnx"
