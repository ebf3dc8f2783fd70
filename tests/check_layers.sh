#!/usr/bin/env bash
# The layering check (ctest layering): every #include "dir/..." of a source file must point at
# its own layer or a layer below it:
#   core  <- cuda                      (the CUDA backend plugin: core only)
#   core  <- rwkv <- es <- tasks <- app (the command line may also use cuda)
#   tools: stand-alone programs (e.g. the oneDNN comparison), may use any layer
# Prints each upward or sideways include as FILE:LINE: INCLUDE (layer X may not include Y) and
# exits 1 when there is one. Usage: check_layers.sh [SOURCE_DIR]
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
declare -A allowed=(
  [core]="core"
  [cuda]="core cuda"
  [rwkv]="core rwkv"
  [es]="core rwkv es"
  [tasks]="core rwkv es tasks"
  [app]="core rwkv es tasks app cuda"
  [tools]="core rwkv es tasks app cuda tools"
)
bad=0
files=0
for layer in core cuda rwkv es tasks app tools; do
  [ -d "$layer" ] || continue
  while IFS= read -r f; do
    files=$((files + 1))
    while IFS=: read -r line inc; do
      target=${inc%%/*}
      [ -n "${allowed[$target]+x}" ] || continue  # not a project layer (e.g. fmt/format.h)
      case " ${allowed[$layer]} " in
        *" $target "*) ;;
        *) echo "$f:$line: #include \"$inc\" (layer $layer may not include $target)"; bad=$((bad + 1)) ;;
      esac
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
             sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1:\2/' || true)
  done < <(find "$layer" -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.in' \) | sort)
done
if [ "$bad" -gt 0 ]; then
  echo "layering: $bad include(s) point up or sideways ($files files checked)"
  exit 1
fi
echo "layering: $files files, every include points at its own layer or below"
