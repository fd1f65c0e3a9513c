#!/bin/sh
# `make OPENMP=0` must give the same logits, bit for bit, as the OpenMP build with several threads
# (docs/design.md, "Bitwise determinism"). Builds both CLI variants and compares their .npy output.
set -e
DATA=data/fashion-mnist/t10k-images-idx3-ubyte.gz
make --no-print-directory OPENMP=1 build/omp/bin/vitq >/dev/null
make --no-print-directory OPENMP=0 build/noomp/bin/vitq >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checked=0
for model in models/fmnist-vit models/fmnist-vit-hf models/fmnist-deit-distilled models/fmnist-swin; do
    if [ ! -f "$model/model.safetensors" ]; then
        echo "FAIL: $model/model.safetensors is missing"
        exit 1
    fi
    build/omp/bin/vitq logits "$model" --data "$DATA" --limit 300 --threads 2 --out "$tmp/omp.npy" 2>/dev/null
    build/noomp/bin/vitq logits "$model" --data "$DATA" --limit 300 --out "$tmp/noomp.npy" 2>/dev/null
    if ! cmp -s "$tmp/omp.npy" "$tmp/noomp.npy"; then
        echo "FAIL: $model: logits of the OpenMP and OPENMP=0 builds differ"
        exit 1
    fi
    checked=$((checked + 1))
done
# Quantization too: the same calibration in both builds gives the same file, and its simulated
# quantization the same logits.
CALIB=data/fashion-mnist/calib1000-images-idx3-ubyte.gz
for model in models/fmnist-deit-distilled models/fmnist-swin; do
    build/omp/bin/vitq quantize "$model" --calib "$CALIB" --calib-n 16 --scheme percentile --wbits 4 --abits 6 \
        --threads 2 --out "$tmp/omp.safetensors" >/dev/null 2>&1
    build/noomp/bin/vitq quantize "$model" --calib "$CALIB" --calib-n 16 --scheme percentile --wbits 4 --abits 6 \
        --out "$tmp/noomp.safetensors" >/dev/null 2>&1
    if ! cmp -s "$tmp/omp.safetensors" "$tmp/noomp.safetensors"; then
        echo "FAIL: $model: quantized files of the OpenMP and OPENMP=0 builds differ"
        exit 1
    fi
    build/omp/bin/vitq logits "$tmp/omp.safetensors" --data "$DATA" --limit 200 --threads 2 --out "$tmp/omp.npy" 2>/dev/null
    build/noomp/bin/vitq logits "$tmp/omp.safetensors" --data "$DATA" --limit 200 --out "$tmp/noomp.npy" 2>/dev/null
    if ! cmp -s "$tmp/omp.npy" "$tmp/noomp.npy"; then
        echo "FAIL: $model: quantized logits of the OpenMP and OPENMP=0 builds differ"
        exit 1
    fi
    checked=$((checked + 1))
done
echo "OK: $checked models (2 of them quantized) give identical results with and without OpenMP"
