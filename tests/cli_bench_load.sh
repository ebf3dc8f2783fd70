#!/usr/bin/env bash
# bench forward / bench es --competing-load: the loaded measurements run with the busy processes
# started by the bench, the JSON carries quiet and loaded rates, and no busy process outlives the
# bench (also when the bench is killed); EGGROLL_PARALLEL=openmp is reported; bad values exit 2.
. "$(dirname "$0")/lib_cli.sh"

"$EGG" bench forward --preset tiny --batch 1,8 --seconds 0.05 --competing-load 1 --repeat 2 >"$TMP/fwd" 2>"$TMP/err" &
bench=$!
seen=
while kill -0 $bench 2>/dev/null; do
  for p in $(pgrep -P $bench || true); do
    case " $seen " in *" $p "*) ;; *) seen="$seen $p" ;; esac
  done
  sleep 0.005
done
wait $bench || bad "bench forward --competing-load: exit $? ($(tail -c 300 "$TMP/err"))"
[ -n "$seen" ] && ok || bad "no busy process seen next to the bench"
left=
for p in $seen; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
[ -z "$left" ] && ok || { bad "busy processes left after the bench:$left"; kill -9 $left 2>/dev/null; }
python3 - "$TMP/fwd" <<'PY' && ok || bad "bench forward JSON: $(cat "$TMP/fwd")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["batch"] for r in rows] == [1, 8], rows
for r in rows:
    assert r["parallel"] == "pool" and r["competing_load"] == 1 and r["repeat"] == 2, r
    assert len(r["quiet_samples_tokens_per_s"]) == 2 and len(r["loaded_samples_tokens_per_s"]) == 2, r
    assert r["tokens_per_s"] == max(r["quiet_samples_tokens_per_s"]), r
    assert r["loaded_tokens_per_s"] == max(r["loaded_samples_tokens_per_s"]), r
    assert abs(r["loaded_vs_quiet"] - r["loaded_tokens_per_s"] / r["tokens_per_s"]) < 1e-9, r
    assert all(x > 0 for x in r["quiet_samples_tokens_per_s"] + r["loaded_samples_tokens_per_s"]), r
PY

# without the option: no loaded keys
"$EGG" bench forward --preset tiny --batch 2 --seconds 0.01 >"$TMP/plain" 2>/dev/null || bad "plain bench forward"
grep -q '"loaded_tokens_per_s"' "$TMP/plain" && bad "loaded keys without --competing-load" || ok
# the same-run memory bounds: one read of the products' bytes, the batch's WKV state read and written
python3 - "$TMP/plain" <<'PY' && ok || bad "bench forward bounds: $(cat "$TMP/plain")"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
flops_tok = r["gflops"] * 1e9 * r["ms_per_step"] / 1e3 / r["batch"]
assert abs(r["product_bytes"] - 2 * flops_tok) <= 1e-6 * r["product_bytes"] + 8, r  # f32: 4 bytes per 2 flops
assert r["state_bytes"] % (r["batch"] * 64 * 64 * 4) == 0 and r["state_bytes"] > 0, r
assert r["product_read_ms"] > 0 and r["state_rw_ms"] > 0, r
assert abs(r["read_bound_tokens_per_s"] - r["batch"] / (r["product_read_ms"] / 1e3)) < 1e-6 * r["read_bound_tokens_per_s"], r
assert r["ratio_vs_gemm"] > 0 and 0 < r["ratio_vs_gemm_bound"] <= 1, r
assert r["peak_rss_reset"] in (True, False) and r["peak_rss_bytes"] > 0, r
PY

# the OpenMP comparison mode is reported
EGGROLL_PARALLEL=openmp "$EGG" bench forward --preset tiny --batch 2 --seconds 0.01 --threads 2 >"$TMP/omp" 2>/dev/null ||
  bad "bench forward under EGGROLL_PARALLEL=openmp"
grep -q '"parallel":"openmp"' "$TMP/omp" && grep -q '"threads":2' "$TMP/omp" && ok || bad "openmp mode: $(cat "$TMP/omp")"

# bench es
"$EGG" bench es --preset tiny --population 4 --tokens 2 --repeat 1 --competing-load 1 >"$TMP/es" 2>"$TMP/err" ||
  bad "bench es --competing-load: $(tail -c 300 "$TMP/err")"
python3 - "$TMP/es" <<'PY' && ok || bad "bench es JSON: $(cat "$TMP/es")"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
assert r["competing_load"] == 1, r
for k in ("loaded_inference_tokens_per_s", "loaded_eggroll_keep_tokens_per_s", "loaded_vs_quiet_inference", "loaded_vs_quiet_keep"):
    assert r[k] > 0, (k, r)
PY

# the bench killed while its load runs (one loaded phase of 3 s after a quiet one): the busy
# processes die with it
"$EGG" bench forward --preset tiny --batch 1 --seconds 3.0517 --competing-load 2 >/dev/null 2>&1 &
bench=$!
kids=
for _ in $(seq 1 1500); do
  kids=$(pgrep -P $bench || true)
  [ "$(echo $kids | wc -w)" -eq 2 ] && break
  sleep 0.01
done
[ "$(echo $kids | wc -w)" -eq 2 ] && ok || bad "the bench's 2 busy processes never ran (children: $kids)"
kill -9 $bench
wait $bench 2>/dev/null
alive() { local n=0 p; for p in $kids; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done; echo $n; }
for _ in $(seq 1 300); do
  [ "$(alive)" -eq 0 ] && break
  sleep 0.01
done
[ "$(alive)" -eq 0 ] && ok || { bad "busy processes outlived a killed bench: $kids"; kill -9 $kids 2>/dev/null; }

expect_error "negative load" "--competing-load" -- "$EGG" bench forward --competing-load -1
expect_error "load with cuda" "--competing-load.*cpu" -- "$EGG" bench es --backend cuda --competing-load 1
finish
