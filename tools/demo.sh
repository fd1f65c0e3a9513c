#!/bin/sh
# make demo: evaluate every bundled model on the bundled Fashion-MNIST test set and print a table
# beside PyTorch's accuracy (tests/golden/*.json).
set -e
DATA=data/fashion-mnist/t10k-images-idx3-ubyte.gz
printf '%-30s %-10s %9s %14s %14s %10s\n' model layout params "vitq top-1" "PyTorch top-1" "ms/image"
for entry in fmnist-vit:fmnist-vit fmnist-vit-hf:fmnist-vit fmnist-deit-distilled:fmnist-deit-distilled \
    fmnist-swin:fmnist-swin fmnist-swin-timm-old:fmnist-swin fmnist-swin-hf:fmnist-swin; do
    model=models/${entry%%:*}
    golden=tests/golden/${entry#*:}.json
    [ -f "$model/model.safetensors" ] || continue
    info=$(bin/vitq info "$model")
    layout=$(echo "$info" | sed -n 's/^architecture.*, \(.*\) layout$/\1/p' | sed 's/Hugging Face transformers/HF/')
    params=$(echo "$info" | sed -n 's/^parameters *\([0-9]*\).*/\1/p')
    out=$(bin/vitq eval "$model" --data "$DATA" 2>"$model.demo.log" || { cat "$model.demo.log" >&2; exit 1; })
    top1=$(echo "$out" | sed -n 's/^top1 = \([0-9.]*\).*/\1/p')
    ms=$(sed -n 's/.*(\([0-9.]*\) ms\/image).*/\1/p' "$model.demo.log")
    rm -f "$model.demo.log"
    torch=$(sed -n 's/.*"top1": *\([0-9.]*\).*/\1/p' "$golden")
    printf '%-30s %-10s %9s %14s %14.4f %10s\n' "$model" "$layout" "$params" "$top1" "$torch" "$ms"
done
