#!/usr/bin/env bash
# Copy what a fresh machine needs to continue a run (weights, EMA, optimizer, schedule, RNG,
# step: training_state.safetensors) and what it has measured so far (logs, curves) from a run
# folder outside the work tree into training/NAME/ for a commit. Latent caches and old sample
# grids stay behind: they are rebuilt or were only for looking at.
#   training/snapshot.sh ~/lrf-runs/ae-f4c8 ae-f4c8
# Continue on any machine: cp -r training/NAME ~/lrf-runs/NAME, then the run's command + --resume.
set -euo pipefail
src="$1"; name="$2"
dst="$(dirname "$0")/$name"
mkdir -p "$dst"
for f in training_state.safetensors config.json diffusion_pytorch_model.safetensors train_log.jsonl val_log.jsonl \
         metrics.json loss.png reconstruction.png samples.png; do
    [ -f "$src/$f" ] && cp "$src/$f" "$dst/$f"
done
if [ -d "$src/denoiser" ]; then mkdir -p "$dst/denoiser" && cp "$src/denoiser/"* "$dst/denoiser/"; fi
latest="$(ls "$src"/samples_step*.png 2>/dev/null | tail -1 || true)"
[ -n "$latest" ] && cp "$latest" "$dst/"
du -sh "$dst"
