#!/usr/bin/env bash
# The include graph reads bottom-up (docs/ARCHITECTURE.md, "Layers"):
#   base -> os -> device, telemetry -> policy -> core -> host -> api -> spirv -> opencl
# Each layer includes only itself and what this table allows; every header of src/ says its
# layer's line as its first line. Run by CTest (layers.includes); prints each violation.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)/src"
declare -A allowed=(
  [base]=""
  [os]="base"
  [device]="base os telemetry"
  [telemetry]="base os"
  [policy]="base os core/va_block.hpp"
  [core]="base os device telemetry policy"
  [host]="base os device core"
  [api]="base os device telemetry policy core host"
  [spirv]="base os device telemetry policy core host api"
  [opencl]="spirv"
)
bad=0
for dir in "$src"/*/; do
  layer="$(basename "$dir")"
  if [[ -z "${allowed[$layer]+x}" ]]; then
    echo "src/$layer: a folder with no layer (add it to scripts/check-layers.sh)"; bad=1; continue
  fi
  while IFS= read -r line; do
    file="${line%%:*}"
    inc="$(sed -E 's/.*#include "([^"]+)".*/\1/' <<< "$line")"
    top="${inc%%/*}"
    [[ "$inc" == */* ]] || continue       # a file beside it
    [[ "$top" == "$layer" || "$top" == "hetmm" ]] && continue  # the public API is below all
    ok=0
    for a in ${allowed[$layer]}; do
      if [[ "$a" == "$top" || "$a" == "$inc" ]]; then ok=1; fi
    done
    if (( ! ok )); then echo "${file#"$src"/}: includes $inc (layer $layer may include: ${allowed[$layer]:-nothing of hetmm})"; bad=1; fi
  done < <(grep -rHE '^#include "' "$dir" || true)
  while IFS= read -r h; do
    if ! head -n 1 "$h" | grep -q "^// Layer $layer:"; then
      echo "${h#"$src"/}: the first line does not name its layer (// Layer $layer: ...)"; bad=1
    fi
  done < <(find "$dir" -name '*.hpp')
done
if (( bad )); then exit 1; fi
echo "layers: every include of src/ goes down the graph"
