# Helpers for the command-line tests (sourced). $EGG is the eggroll binary.
set -u
EGG=$1
FIX=$(cd "$(dirname "$0")/../../shared/fixtures" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect_error NAME PATTERN -- CMD...: exit status 2, exactly one line on stderr matching PATTERN
expect_error() {
  local name=$1 pat=$2; shift 3
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$TMP/err")
  if [ "$rc" -ne 2 ]; then bad "$name: exit status $rc, expected 2 (stderr: $(head -c 300 "$TMP/err"))"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$name: $lines lines on stderr, expected 1: $(head -c 500 "$TMP/err")"; return; fi
  if ! grep -qE -- "$pat" "$TMP/err"; then bad "$name: stderr '$(cat "$TMP/err")' does not match '$pat'"; return; fi
  ok
}
finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}
