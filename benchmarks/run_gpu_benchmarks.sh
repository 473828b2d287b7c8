#!/usr/bin/env bash
# Run the GPU benchmarks of benchmarks/RESULTS.md on one CUDA machine, one after another, and write
# every result into one folder.
#
#   bash benchmarks/run_gpu_benchmarks.sh [--out DIR] [--only LIST] [--data DIR] [--cpus N] [--python PY]
#   bash benchmarks/run_gpu_benchmarks.sh --list
#
# --out DIR    results folder (default gpu-results/): one subfolder per benchmark with its tables,
#              figures and run.log, plus machine.txt, summary.md and gpu_utilisation.csv
# --only LIST  comma-separated benchmarks (default: every one marked "default" by --list)
# --data DIR   the shared data folder (default $CRYSTALSPACE_DATA, else ../shared/data): needs
#              mlff_reference/ (force fields, MD, Tune), mp_binary_smact/ and mp_id_lists/ (generation),
#              structures_small/ (structure prediction)
# --cpus N     CPUs for the Ray jobs (default: all but two)
# --python PY  interpreter (default .venv/bin/python when present, else python3)
#
# Runs from a checkout without installing. A benchmark that fails is recorded in summary.md and the
# next one starts; the exit status is 1 if any failed. `md` uses the models that `mlff` trains and
# runs `mlff` first when they are missing; `vae` reuses the dataset and model of `gen`.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEFAULT_JOBS="space,throughput,mdspeed,mlff,md,tune,csp,gen"
ALL_JOBS="$DEFAULT_JOBS,gen-protocol,vae,probe"

usage() { sed -n '2,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

list_jobs() {
  cat <<'EOF'
space         default  bench_space_count.py: the whole quaternary count, numba vs torch on CUDA
throughput    default  bench_mlff_throughput.py: training struct/s, force latency, batched throughput
mdspeed       default  bench_md_speed.py (1-256 replicas) and bench_md_neighbors.py
mlff          default  bench_mlff_protocol.py: SchNet, DimeNet++, NequIP-style on LGPS, transfer table
md            default  bench_md_protocol.py: MD of the mlff models, 3 materials x 800/1000/1200 K x 2
tune          default  bench_mlff_tune.py: 12-trial Ray Tune sweep with ASHA
csp           default  bench_csp_protocol.py: Table 5 (distance-model sweep) and Table 3 (CSP vs random)
gen           default  gen_full.yaml: build the VO dataset, train, evaluate, sample (1,000 and study size)
gen-protocol           bench_gen_protocol.py: the reduced iMatGen protocol in one command
vae                    bench_gen_vae_sweep.py: VAE-only retrains of VAE_VARIANTS (JSON list), best evaluated
probe                  bench_gen_cell_ae_probe.py: the cell autoencoder alone at several sizes
EOF
}

OUT=gpu-results
ONLY=$DEFAULT_JOBS
DATA=${CRYSTALSPACE_DATA:-$ROOT/../shared/data}
CPUS=
PY=
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --cpus) CPUS=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --list) list_jobs; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$ONLY" = all ] && ONLY=$ALL_JOBS
for j in ${ONLY//,/ }; do
  [[ ",$ALL_JOBS," == *",$j,"* ]] || { echo "unknown benchmark: $j (see --list)" >&2; exit 2; }
done
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
fi
if [ -z "$CPUS" ]; then
  CPUS=$(nproc)
  [ "$CPUS" -gt 4 ] && CPUS=$((CPUS - 2))
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DATA=$(cd "$DATA" 2>/dev/null && pwd) || { echo "no data folder: give --data DIR" >&2; exit 2; }
MLFF=$DATA/mlff_reference
REF=$ROOT/tests/data/md_reference/LGPS.parquet,$ROOT/tests/data/md_reference/Li3PS4.parquet,$ROOT/tests/data/md_reference/Li4GeS4.parquet
MODELS="schnet dimenetpp nequip"

cd "$ROOT" || exit 2
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
export CRYSTALSPACE_DATA=$DATA
export RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null)
if [ "${GPUS:-0}" -lt 1 ]; then
  echo "no CUDA device visible to $PY (torch.cuda.is_available() is False)" >&2
  exit 2
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
  echo "cpu cores: $(nproc); memory: $(free -g | awk '/^Mem:/ {print $2}') GiB; Ray CPUs: $CPUS"
  echo "python: $("$PY" -c 'import platform, torch; print(platform.python_version(), "torch", torch.__version__)')"
  echo "benchmarks: $ONLY"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 20 > "$OUT/gpu_utilisation.csv" 2>/dev/null &
MONITOR=$!
trap 'kill $MONITOR 2>/dev/null' EXIT

cs() { "$PY" -c 'from crystalspace.cli import app; app()' "$@"; }
need() { for f in "$@"; do [ -e "$f" ] || { echo "missing input: $f"; return 1; }; done; }

# --- one function per benchmark; each writes under $OUT/<name>/ ---------------------------------

job_space() {
  "$PY" benchmarks/bench_space_count.py
}

job_throughput() {
  need "$MLFF" || return 1
  local scaling=--no-scaling
  [ "$GPUS" -ge 2 ] && scaling=  # Ray Train DimeNet++ on 1 and 2 GPU workers
  "$PY" benchmarks/bench_mlff_throughput.py --data "$MLFF" --out "$OUT/throughput" $scaling
}

job_mdspeed() {
  "$PY" benchmarks/bench_md_speed.py --paths new --replicas 1,8,64,256 --budget 1 --max-steps 40 \
    --out "$OUT/mdspeed" &&
    "$PY" benchmarks/bench_md_neighbors.py --out "$OUT/mdspeed"
}

job_mlff() {  # 150 s of training per model, then force MAE / R² on LGPS (seen), Li3PS4, Li4GeS4
  need "$MLFF" || return 1
  "$PY" benchmarks/bench_mlff_protocol.py --data "$MLFF" --out "$OUT/mlff" --models "${MODELS// /,}" --budget 150
}

job_md() {
  local m models=
  for m in $MODELS; do
    [ -e "$OUT/mlff/registry/$m-lgps-v1" ] || { echo "no trained $m model: running mlff first"; job_mlff || return 1; break; }
  done
  for m in $MODELS; do
    local actors=1
    [ $m = dimenetpp ] && actors=3  # DimeNet++ steps slowest: more actors keep the GPU busy
    "$PY" benchmarks/bench_md_protocol.py --models "$OUT/mlff/registry/$m-lgps-v1" --structures "$MLFF" \
      --reference "$REF" --temperatures 800,1000,1200 --repeats 2 --ramp-ps 0.5 --production-ps 3 \
      --actors $actors --out "$OUT/md" || return 1
    models=${models:+$models,}$OUT/mlff/registry/$m-lgps-v1
  done
  # one report over the three models' finished runs
  "$PY" benchmarks/bench_md_protocol.py --reuse --models "$models" --structures "$MLFF" --labelled "$MLFF" \
    --reference "$REF" --temperatures 800,1000,1200 --repeats 2 --ramp-ps 0.5 --production-ps 3 --out "$OUT/md"
}

job_tune() {
  need "$MLFF" || return 1
  "$PY" benchmarks/bench_mlff_tune.py --data "$MLFF" --out "$OUT/tune"
}

job_csp() {
  "$PY" benchmarks/bench_csp_protocol.py --out "$OUT/csp" --cpus "$CPUS" --tables 5,3 --ga-runs 20 \
    --relax-steps 30 --per-arity 10
}

GF=(--config pipelines/configs/gen_full.yaml --set "data_dir=$OUT/gen/data" --set "model_dir=$OUT/gen/model"
  --set energy_device=cuda)
EVAL=(--set reconstruct_max=500 --set relax_max=20 --set relax_steps=60 --set baseline_budget=200
  --set n_samples=1000)

job_gen() {  # the shipped full-size model: dataset, training, every table, acceptance and study-size samples
  [ -e "$OUT/gen/data/labelled.parquet" ] || cs gen build-data "${GF[@]}" --num-cpus "$CPUS" || return 1
  cs gen train "${GF[@]}" --num-cpus "$CPUS" || return 1
  cs gen evaluate "${GF[@]}" "${EVAL[@]}" --out "$OUT/gen/eval" || return 1
  cs gen sample --n 1000 --method slerp "${GF[@]}" --set "out_dir=$OUT/gen/sample_1000" || return 1
  cs gen sample --n 8835 --method slerp "${GF[@]}" --set "out_dir=$OUT/gen/sample_study" || return 1
  cs gen sample --n 10000 --method random "${GF[@]}" --set "out_dir=$OUT/gen/sample_study"
}

job_gen_protocol() {
  "$PY" benchmarks/bench_gen_protocol.py --out "$OUT/gen-protocol" --num-cpus "$CPUS"
}

job_vae() {  # VAE_VARIANTS: JSON list of train-setting overrides, e.g. '[{"cell_weight": 30}]'
  local variants='[{}]' best
  [ -n "${VAE_VARIANTS:-}" ] && variants=$VAE_VARIANTS
  "$PY" benchmarks/bench_gen_vae_sweep.py "${GF[@]}" --num-cpus "$CPUS" --out "$OUT/vae" --variants "$variants" ||
    return 1
  best=$(cat "$OUT/vae/best.txt") || return 1
  cs gen evaluate "${GF[@]}" --set "model_dir=$best" "${EVAL[@]}" --out "$OUT/vae/eval"
}

job_probe() {
  "$PY" benchmarks/bench_gen_cell_ae_probe.py --out "$OUT/probe"
}

# --- run the selection in order --------------------------------------------------------------------

printf '| benchmark | status | wall s |\n|---|---|---|\n' > "$OUT/summary.md"
failed=0
for j in ${ALL_JOBS//,/ }; do
  [[ ",$ONLY," == *",$j,"* ]] || continue
  mkdir -p "$OUT/$j"
  echo "== $j ($(date -u +%H:%M:%S)): log in $OUT/$j/run.log"
  t0=$(date +%s)
  "job_${j//-/_}" > "$OUT/$j/run.log" 2>&1
  rc=$?
  dt=$(($(date +%s) - t0))
  if [ $rc -eq 0 ]; then status=ok; else status="failed (exit $rc)"; failed=1; tail -5 "$OUT/$j/run.log"; fi
  echo "| $j | $status | $dt |" >> "$OUT/summary.md"
  echo "   $status in $dt s"
done
cat "$OUT/summary.md"
exit $failed
