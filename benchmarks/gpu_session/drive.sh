#!/usr/bin/env bash
# Every GPU protocol and benchmark in one timeline, started detached so that it outlives one
# 10-minute device call; collect.sh brings finished jobs back call by call. The protocol jobs share
# the GPU first; the speed benchmarks run alone at the end. Needs .device/ as in benchmarks/RESULTS.md
# (site.tar.xz, mlff_data/, shared/). The bundle (~44 MB after dropping chgnet/pretrained/{0.2.0,r2scan},
# pyxtal/database/test.db, ase/test, ase/gui, plotly/package_data/datasets and vesin_torch's other torch-* builds):
#   DEVICE_BUNDLE_ONLY="ray==2.60.0 pydantic pydantic-core annotated-types typing-inspection jsonschema
#     jsonschema-specifications referencing rpds-py attrs ase vesin vesin-torch pymatgen-core monty spglib
#     ruamel.yaml tabulate uncertainties palettable orjson joblib bibtexparser<2 lxml chgnet pyxtal plotly
#     narwhals" ../shared/tools/device-bundle   # plotly: pymatgen's phase_diagram imports it (E_hull)
# shared/ for gen/csp: mp_binary_smact/mp_binary_docs.jsonl.gz, mp_id_lists/{mp_ids_union_DERIVED.csv.gz
# (= tests/data/gen_subset/mp_ids_union_VO.csv.gz), matbench-discovery…elemental-reference-entries.json.gz},
# structures_small/{mp_binary_le20sites_mp20format,mp_20_resplit_test_subset}.csv.gz. First call:
#   mkdir -p /tmp/site && tar -xJf .device/site.tar.xz -C /tmp/site && \
#     (setsid nohup bash benchmarks/gpu_session/drive.sh >/tmp/drive.log 2>&1 </dev/null &); bash benchmarks/gpu_session/collect.sh 530
# Arguments pick the jobs (default all): gen csp md tune speed; vae (not in the default) trains the
# full-length gen model, sweeps VAE variants (VAE_VARIANTS, JSON list) and evaluates the best one.
# Later calls, sent within the machine's 30 s idle release:  bash benchmarks/gpu_session/collect.sh 540
# Lesson: each job's results leave the machine only once packed; pack early, keep the MD per model.
set -u
JOBS=" ${*:-gen csp md tune speed} "
R=$PWD; W=/tmp/w; mkdir -p $W/logs $W/done
export PYTHONPATH=/tmp/site:$R RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1 CRYSTALSPACE_DATA=$R/.device/shared OMP_NUM_THREADS=2
D=$R/.device/mlff_data
REF=$R/tests/data/md_reference/LGPS.parquet,$R/tests/data/md_reference/Li3PS4.parquet,$R/tests/data/md_reference/Li4GeS4.parquet
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
pack() {  # name dirs...: one tarball per finished job, small enough to come back (16 MiB per file)
  local n=$1; shift
  local skip=(--exclude=ray --exclude='*checkpoint*' --exclude=weights.pt --exclude='*.pkl')
  (cd $W && tar -czf done/$n.tar.gz "${skip[@]}" --exclude='*-a[0-9]-*.parquet' "$@" logs/$n.* 2>/dev/null)
  if [ $(stat -c %s $W/done/$n.tar.gz) -gt 15000000 ]; then  # too big: drop all tables and CIFs
    (cd $W && tar -czf done/$n.tar.gz "${skip[@]}" --exclude='*.parquet' --exclude='*.cif' "$@" logs/$n.* 2>/dev/null)
  fi
}
job() {  # name cmd...: run, log, time
  local n=$1; shift
  echo "start $(el)" > $W/logs/$n.time
  "$@" > $W/logs/$n.log 2>&1
  local rc=$?
  echo "end $(el) rc=$rc" >> $W/logs/$n.time
}
(while true; do echo "$(el) $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader) load $(cut -d' ' -f1 /proc/loadavg)" >> $W/logs/monitor.txt; sleep 20; done) &
MON=$!

want() { [[ " $JOBS " == *" $1 "* ]]; }
G=; C=; M=; U=; V=
GEN_SET=${GEN_SET:-'{}'}  # JSON overrides for the generation protocol (its --set)
want gen && { ( job gen python benchmarks/gen_gpu_protocol.py --out $W/gen --num-cpus ${GEN_CPUS:-5} --set "$GEN_SET"
  job gen_sample python -c 'from crystalspace.cli import app; app()' gen sample --n 1000 --method slerp \
    --config pipelines/configs/gen_full.yaml --set data_dir=$W/gen/data --set model_dir=$W/gen/model --set out_dir=$W/gen/accept
  pack gen gen/eval gen/accept gen/RESULTS_gen.md logs/gen_sample.log logs/gen_sample.time ) & G=$!; }
GF="--config pipelines/configs/gen_full.yaml --set data_dir=$W/vae/data --set model_dir=$W/vae/model --set energy_device=cuda"
want vae && { ( job vae python benchmarks/gen_vae_sweep.py $GF ${VAE_BASE:-} --num-cpus ${GEN_CPUS:-14} --out $W/vae/sweep \
    --variants "${VAE_VARIANTS:-[]}"
  pack vae_sweep vae/sweep/vae_sweep.md vae/sweep/best.txt logs/vae.log logs/vae.time
  E="$GF --set model_dir=$(cat $W/vae/sweep/best.txt) --set reconstruct_max=500 --set relax_max=20 --set relax_steps=60 --set baseline_budget=200 --set n_samples=1000"
  job vae_eval python -c 'from crystalspace.cli import app; app()' gen evaluate $E --out $W/vae/eval
  job vae_sample python -c 'from crystalspace.cli import app; app()' gen sample --n 1000 --method slerp $E --set out_dir=$W/vae/accept
  pack vae vae/sweep/vae_sweep.md vae/eval vae/accept logs/vae_* ) & V=$!; }
# genfull: build, train (gen_full.yaml), bring the model back (split under 16 MiB per file), then
# evaluate (every table) and run the acceptance sample on it.
want genfull && { ( job gf_data python -c 'from crystalspace.cli import app; app()' gen build-data $GF --num-cpus ${GEN_CPUS:-14}
  job gf_train python -c 'from crystalspace.cli import app; app()' gen train $GF --num-cpus ${GEN_CPUS:-14}
  (cd $W/vae && tar -czf - model/config.json model/weights.pt model/latents.npz model/metrics.json data/labelled.parquet data/build.json data/references.json 2>/dev/null \
    | split -b 15000000 - $W/done/gf_model.tar.gz.part-)
  E="$GF --set reconstruct_max=500 --set relax_max=20 --set relax_steps=60 --set baseline_budget=200 --set n_samples=1000"
  job gf_eval python -c 'from crystalspace.cli import app; app()' gen evaluate $E --out $W/vae/eval
  pack gf_eval vae/eval logs/gf_data.* logs/gf_train.* logs/gf_eval.*
  job gf_sample python -c 'from crystalspace.cli import app; app()' gen sample --n 1000 --method slerp $E --set out_dir=$W/vae/accept
  pack gf_sample vae/accept logs/gf_sample.* ) & V=$!; }
want csp && { ( job csp python benchmarks/csp_gpu_protocol.py --out $W/csp --cpus 7 --tables 3 --ga-runs 20 --relax-steps 30 --per-arity 10; pack csp csp ) & C=$!; }
if want md; then
  (
    for m in schnet dimenetpp nequip; do  # each model's MD starts as soon as its training is done
      actors=1; [ $m = dimenetpp ] && actors=3  # DimeNet++ steps slowest: more actors keep the GPU busy
      ( job train_$m python benchmarks/mlff_gpu_protocol.py --data $D --out $W/mlff_$m --models $m --budget 150 --no-eval
        job md_$m python benchmarks/md_gpu_protocol.py --models $W/mlff_$m/registry/$m-lgps-v1 --structures $D \
          --reference $REF --temperatures 800,1000,1200 --repeats 2 --ramp-ps 0.5 --production-ps 3 --actors $actors --out $W/md_$m
        pack md_$m md_$m/report md_$m/md_protocol.md md_$m/md/$m/summary.json mlff_$m logs/train_$m.* ) &
    done
    wait
    mkdir -p $W/md/md && for m in schnet dimenetpp nequip; do ln -sfn $W/md_$m/md/$m $W/md/md/$m; done
    job md_report python benchmarks/md_gpu_protocol.py --reuse --models $W/mlff_schnet/registry/schnet-lgps-v1,$W/mlff_nequip/registry/nequip-lgps-v1,$W/mlff_dimenetpp/registry/dimenetpp-lgps-v1 \
        --structures $D --labelled $D --reference $REF --temperatures 800,1000,1200 --repeats 2 --ramp-ps 0.5 --production-ps 3 --out $W/md
    pack md_report md/report md/md_protocol.md logs/train_*
  ) & M=$!
fi
want tune && { ( sleep 200; job tune python benchmarks/mlff_tune_gpu.py --data $D --out $W/tune; pack tune tune ) & U=$!; }
# speed benchmarks alone once the protocols are done (at the latest 14 min in)
running() { for p in $G $C $M $U $V; do kill -0 $p 2>/dev/null && echo -n "$p "; done; }
if want speed; then
  while [ $(el) -lt 840 ] && [ -n "$(running)" ]; do sleep 5; done
  echo "speed benchmarks start at $(el); still running: $(running)" >> $W/logs/monitor.txt
  job throughput python benchmarks/bench_mlff_throughput.py --data $D --out $W/throughput --no-scaling
  pack throughput throughput
  job mdspeed python benchmarks/bench_md_speed.py --paths new --replicas 1,8,64,256 --budget 2 --out $W/mdspeed
  pack mdspeed mdspeed
fi
for p in $G $C $M $U $V; do wait $p; done
kill $MON
echo "all done $(el)" >> $W/logs/monitor.txt
touch $W/ALLDONE
