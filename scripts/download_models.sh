#!/usr/bin/env bash
# Downloads the RWKV-7 checkpoints the paper uses and the World vocab file into models/.
# Needs network access (never run in CI). Usage:
#   scripts/download_models.sh [0.1b|1.5b|7.2b|13.3b|vocab|all] ...   (default: vocab 1.5b)
# Each file is checked against its expected size (within 1%) and, for checkpoints, loaded by
# `eggroll info` so a truncated or wrong file is caught at once.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${EGGROLL_MODELS_DIR:-models}
mkdir -p "$dest"
hf=https://huggingface.co/BlinkDL/rwkv7-g1/resolve/main
vocab_url=https://raw.githubusercontent.com/BlinkDL/ChatRWKV/main/tokenizer/rwkv_vocab_v20230424.txt

# name | file | url | expected bytes (approximate sizes of the released files)
entries=(
  "vocab|rwkv_vocab_v20230424.txt|$vocab_url|1093733"
  "0.1b|rwkv7-g1a-0.1b-20250728-ctx4096.pth|$hf/rwkv7-g1a-0.1b-20250728-ctx4096.pth|382000000"
  "1.5b|rwkv7-g1-1.5b-20250429-ctx4096.pth|$hf/rwkv7-g1-1.5b-20250429-ctx4096.pth|3060000000"
  "7.2b|rwkv7-g0-7.2b-20250722-ctx4096.pth|$hf/rwkv7-g0-7.2b-20250722-ctx4096.pth|14400000000"
  "13.3b|rwkv7-g0a3-13.3b-20251031-ctx4096.pth|$hf/rwkv7-g0a3-13.3b-20251031-ctx4096.pth|26500000000"
)
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(vocab 1.5b)
[ "${want[0]}" = all ] && want=(vocab 0.1b 1.5b 7.2b 13.3b)

eggroll=${EGGROLL_BIN:-build/eggroll}
for w in "${want[@]}"; do
  found=0
  for e in "${entries[@]}"; do
    IFS='|' read -r name file url size <<<"$e"
    [ "$name" = "$w" ] || continue
    found=1
    out="$dest/$file"
    if [ -f "$out" ]; then
      echo "have $out"
    else
      echo "downloading $url"
      curl -fL --retry 3 -C - -o "$out.part" "$url"
      mv "$out.part" "$out"
    fi
    got=$(stat -c %s "$out")
    lo=$((size - size / 100)); hi=$((size + size / 100))
    if [ "$got" -lt "$lo" ] || [ "$got" -gt "$hi" ]; then
      echo "error: $out is $got bytes, expected about $size: delete it and download again" >&2
      exit 1
    fi
    if [ "$name" != vocab ] && [ -x "$eggroll" ]; then "$eggroll" info --model "$out"; fi
  done
  [ $found -eq 1 ] || { echo "error: unknown item '$w' (vocab 0.1b 1.5b 7.2b 13.3b all)" >&2; exit 2; }
done
