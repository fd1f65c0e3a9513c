#!/bin/sh
# tools/logit_snapshot.sh VITQ_BIN OUTDIR: hashes of the bundled models' logits (FP32) and of every
# built-in scheme's and method's W8A8 and W4A4 quantized files and their logits (integer and simulated
# execution), one line each, so that a refactoring can be checked bit for bit:
#   sh tools/logit_snapshot.sh old/vitq /tmp/a; sh tools/logit_snapshot.sh bin/vitq /tmp/b; diff /tmp/a/hashes /tmp/b/hashes
set -u
VITQ=${1:?usage: logit_snapshot.sh VITQ_BIN OUTDIR}
OUT=${2:?usage: logit_snapshot.sh VITQ_BIN OUTDIR}
DATA=data/fashion-mnist/t10k-images-idx3-ubyte.gz
CALIB=data/fashion-mnist/calib1000-images-idx3-ubyte.gz
[ -f "$CALIB" ] || CALIB=$DATA
N=${LIMIT:-64}
# Component schemes quantize one kind of tensor: they run under minmax on the points they take.
SCHEMES=${SCHEMES:-"minmax percentile omse percentile-mse twin-softmax twin-gelu log2 log-sqrt2 mpq ptq4vit apq-vit repq-vit noisyquant"}
component_set() {
    case $1 in
    twin-softmax|log2|log-sqrt2|mpq) echo "*.attn.softmax.out=scheme:$1" ;;
    twin-gelu) echo "*.mlp.fc2.input=symmetric:1,scheme:$1" ;;
    *) echo "" ;;
    esac
}
mkdir -p "$OUT"
: > "$OUT/hashes"
h() { if [ -f "$1" ]; then sha256sum "$1" | cut -c1-16; else echo missing; fi; }
for model in fmnist-vit fmnist-deit-distilled fmnist-swin; do
    "$VITQ" logits "models/$model" --data "$DATA" --limit "$N" --out "$OUT/$model.fp32.npy" >/dev/null 2>&1
    echo "$model fp32 logits $(h "$OUT/$model.fp32.npy")" >> "$OUT/hashes"
    for s in $SCHEMES; do
        for bits in 8 4; do
            q="$OUT/$model.$s.w${bits}a${bits}.safetensors"
            set_arg=$(component_set "$s")
            scheme=$s
            [ -n "$set_arg" ] && scheme=minmax
            if "$VITQ" quantize "models/$model" --calib "$CALIB" --calib-n 16 --scheme "$scheme" --wbits $bits --abits $bits \
                ${set_arg:+--set "$set_arg"} --out "$q" >"$q.log" 2>&1; then
                "$VITQ" logits "$q" --data "$DATA" --limit "$N" --out "$q.int.npy" >/dev/null 2>&1
                "$VITQ" logits "$q" --data "$DATA" --limit "$N" --execution simulated --out "$q.sim.npy" >/dev/null 2>&1
                echo "$model $s w${bits}a${bits} file $(h "$q") integer $(h "$q.int.npy") simulated $(h "$q.sim.npy")" >> "$OUT/hashes"
            else
                echo "$model $s w${bits}a${bits} refused: $(tail -1 "$q.log")" >> "$OUT/hashes"
            fi
        done
    done
done
cat "$OUT/hashes"
