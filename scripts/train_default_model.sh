#!/usr/bin/env bash
# The recipe of the shipped model, v2 (vla_ros/models/MODEL_CARD.md), from a set-up checkout:
#   scripts/train_default_model.sh [--teacher WEIGHTS] [DATA_DIR]      (default: data/v2)
# Stage 1, the privileged teacher (docs/TRAINING.md, "Model v2"); --teacher skips it, starting
# stage 2 from a teacher trained before (another data folder, another machine):
#   1. the expert drives 900 episodes without cameras (training seeds 100000+, training
#      wording); its own future labels every kept state, and every 10th state is also labelled
#      under two other instructions (counterfactuals),
#   2. the teacher trains on them (vla_ros/config/train_teacher.yaml),
#   3. a DAgger round: the teacher drives 300 episodes through the safety monitor and the
#      controller, the expert labels every 3rd state it reaches (every 15th under two other
#      instructions too); the teacher is fine-tuned on all of it, now reading instructions
#      through its training wording's intent centroids (vla_ros/config/train_teacher_dagger.yaml,
#      vla_model/instruction_grounding.py),
#   4. a second DAgger round: that teacher drives 300 more episodes, and is fine-tuned on all
#      three data sets (vla_ros/config/train_teacher_dagger2.yaml).
# Stage 2, the camera student: `vla distill` (steps 5-7 below).
# Then the evaluation (held-out seeds 100+, test wording), after all training so that no stage
# waits for it: the expert and the teacher drive the nominal and long-tail sets, then the model
# shipped when the folder was begun ("baseline": v1 for the folder v2 came from, map-free as
# its card measured it; copied to DATA_DIR/baseline on the first run) and each student, mapped and map-free, through
# the whole pipeline, all set side by side by `vla sim compare`. Each evaluation shares its
# episodes among two processes (`--workers 2`: the expert and the teacher use one core each).
# Last, the student the model card ships is exported to ONNX and its SHA-256 pins printed for
# vla_ros/config/model.yaml: the first one (student/train0). The on-policy round's
# (student/train1) was measured and is not shipped (the model card, "The on-policy round").
# Every step resumes: recorded episodes are skipped, training continues from its last
# checkpoint, an evaluation written is not run again. Each step's begin and wall time are appended
# to DATA_DIR/recipe_times.log (a resumed step logs the rest it ran); each stage's data and wall
# time on two cores: vla_ros/models/MODEL_CARD.md, "Recipe and data".
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
vla="$root/.venv/bin/vla"
given_teacher=
if [ "${1:-}" = --teacher ]; then
  given_teacher=$(realpath -e "${2:?--teacher needs the teacher weights}")
  shift 2
fi
data=$(mkdir -p "${1:-data/v2}" && cd "${1:-data/v2}" && pwd)
config="$root/vla_ros/config"
teacher="$data/teacher/train2/teacher.safetensors"
# The model shipped when this folder was begun (config/model.yaml's weights), kept to compare with.
shipped=$(sed -n 's/^weights_path: *//p' "$root/vla_ros/config/model.yaml")
if [ ! -d "$data/baseline" ]; then
  mkdir -p "$data/baseline"
  cp "$root/vla_ros/$shipped" "$data/baseline/"
fi
baseline=$(compgen -G "$data/baseline/*.safetensors")

timed() {  # name command...: run one step; its begin and wall time go to $data/recipe_times.log
  local name=$1 start=$SECONDS
  shift
  echo "$(date -u +%FT%TZ) begun $name" >> "$data/recipe_times.log"
  "$@"
  echo "$(date -u +%FT%TZ) done $name in $((SECONDS - start)) s" >> "$data/recipe_times.log"
}

if [ -z "$given_teacher" ]; then
  timed r0 "$vla" teacher record "$data/teacher/r0" --episodes 900 --seed-start 100000 \
    --no-progress
  cp "$config/train_teacher.yaml" "$data/train_teacher.yaml"
  timed train0 "$vla" teacher train "$data/train_teacher.yaml" --no-progress

  timed r1 "$vla" teacher record "$data/teacher/r1" --episodes 300 --seed-start 200000 \
    --keep-every 3 --counterfactual-every 15 \
    --driver-weights "$data/teacher/train0/teacher.safetensors" --no-progress
  cp "$config/train_teacher_dagger.yaml" "$data/train_teacher_dagger.yaml"
  timed train1 "$vla" teacher train "$data/train_teacher_dagger.yaml" --no-progress

  timed r2 "$vla" teacher record "$data/teacher/r2" --episodes 300 --seed-start 250000 \
    --keep-every 3 --counterfactual-every 15 \
    --driver-weights "$data/teacher/train1/teacher.safetensors" --no-progress
  cp "$config/train_teacher_dagger2.yaml" "$data/train_teacher_dagger2.yaml"
  timed train2 "$vla" teacher train "$data/train_teacher_dagger2.yaml" --no-progress
fi

# Stage 2, `vla distill` (vla_tools/distillation.py, docs/TRAINING.md "Model v2, stage 2"): it
# copies a given teacher to $teacher, refusing a folder that holds another, then
#   5. the expert drives 250 episodes with the cameras rendered where states are kept (every
#      0.5 s; seeds 300000+), then the stage-1 teacher drives 150 (seeds 400000+), and the
#      expert 40 held-out ones (500000+),
#   6. the student distils from the teacher (vla_ros/config/train_student_v2.yaml), and its
#      neural map is measured on the held-out states,
#   7. its on-policy round (Learning by Cheating's stage 2): the student drives 150 episodes
#      through the whole pipeline, half map-free (seeds 600000+) and half mapped (700000+); it is
#      fine-tuned on all four data sets, the teacher labelling every state at training time
#      (vla_ros/config/train_student_v2_r1.yaml), and its map measured again.
timed distill "$vla" distill "$data" --teacher "${given_teacher:-$teacher}" --no-progress

evaluate() {  # driver name scenarios... (20 episodes each, held-out seeds and wording)
  local driver=$1 name=$2
  shift 2
  local weights=()
  [ "$driver" = teacher ] && weights=(--weights "$teacher")
  [ -f "$data/eval/${driver}_$name.json" ] && return 0  # evaluated already
  timed "eval ${driver}_$name" "$vla" sim eval --driver "$driver" "${weights[@]}" \
    --scenarios "$@" --episodes 20 --seed-start 100 --split test --workers 2 \
    --json "$data/eval/${driver}_$name.json"
}
mkdir -p "$data/eval"
for driver in expert teacher; do
  evaluate "$driver" nominal highway merge roundabout intersection exit
  evaluate "$driver" long_tail cut_in hard_braking_lead stalled_vehicle slow_truck \
    dense_traffic pull_over stop_behind_lead debris crossing_pedestrian
done
for part in nominal long_tail; do  # the side-by-side tables of the model card
  "$vla" sim compare "$data/eval/expert_$part.json" "$data/eval/teacher_$part.json" \
    --markdown "$data/eval/compare_$part.md" --plot "$data/eval/compare_$part.png"
done

drive_pipeline() {  # name weights prior: nominal and long tail, 10 episodes each
  local name=$1 model=$2 prior=$3
  [ -f "$data/eval/${name}_nominal_map_$prior.json" ] ||
    timed "eval ${name}_nominal_map_$prior" "$vla" sim eval --driver pipeline \
      --weights "$model" --map-prior "$prior" \
      --scenarios highway merge roundabout intersection exit --episodes 10 --seed-start 100 \
      --split test --workers 2 --json "$data/eval/${name}_nominal_map_$prior.json"
  [ -f "$data/eval/${name}_long_tail_map_$prior.json" ] ||
    timed "eval ${name}_long_tail_map_$prior" "$vla" sim eval --driver pipeline \
      --weights "$model" --map-prior "$prior" \
      --scenarios cut_in hard_braking_lead stalled_vehicle slow_truck dense_traffic pull_over \
      stop_behind_lead debris crossing_pedestrian --episodes 10 --seed-start 100 \
      --split test --workers 2 --json "$data/eval/${name}_long_tail_map_$prior.json"
}
drive_pipeline baseline "$baseline" off

measure_student() {  # name weights: closed loop, mapped and map-free, beside the baseline
  local name=$1
  drive_pipeline "$name" "$2" on
  drive_pipeline "$name" "$2" off
  for part in nominal long_tail; do
    "$vla" sim compare "$data/eval/expert_$part.json" "$data/eval/teacher_$part.json" \
      "baseline=$data/eval/baseline_${part}_map_off.json" \
      "$name-mapped=$data/eval/${name}_${part}_map_on.json" \
      "$name-map-free=$data/eval/${name}_${part}_map_off.json" \
      --markdown "$data/eval/compare_${name}_$part.md" --plot "$data/eval/compare_${name}_$part.png"
  done
}

measure_student student "$data/student/train0/student.safetensors"
measure_student student_r1 "$data/student/train1/student.safetensors"

final="$data/student/train0/student.safetensors"
"$vla" export "$final" --onnx "${final%.safetensors}.onnx"
