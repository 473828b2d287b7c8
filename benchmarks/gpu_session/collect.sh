#!/usr/bin/env bash
# Wait up to $1 s (or until drive.sh is done), then copy the finished jobs not yet brought back
# into $OUT (at most 7 tarballs + status.txt: the device returns 8 files per call).
# A fresh machine (the driver's work dir is gone) answers at once instead of waiting.
W=/tmp/w
[ -d $W/logs ] || { echo "no driver on this machine (fresh start): nothing to collect"; exit 3; }
end=$(( $(date +%s) + $1 ))
while [ $(date +%s) -lt $end ] && [ ! -e $W/ALLDONE ]; do sleep 5; done
mkdir -p $W/sent; n=0
for f in $W/done/*.tar.gz $W/done/*.tar.gz.part-*; do
  [ -e "$f" ] || continue; b=$(basename $f)
  if [ ! -e $W/sent/$b ] && [ $n -lt 7 ]; then cp $f $OUT/ && touch $W/sent/$b && n=$((n+1)); fi
done
# Tables written while a job still runs come back on every call (the VAE sweep's, after each variant).
for f in $W/vae/sweep/vae_sweep.md; do [ -e $f ] && cp $f $OUT/; done
{ date; tail -30 $W/logs/monitor.txt; for t in $W/logs/*.time; do echo "$(basename $t): $(tr '\n' ' ' < $t)"; done
  for l in $W/logs/*.log; do echo "== $l"; tail -4 $l; done; } > $OUT/status.txt 2>&1
tail -c 6000 $OUT/status.txt
