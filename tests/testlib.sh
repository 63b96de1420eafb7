# testlib.sh -- what the shell tests share; each sources it first:
#   . "$(dirname "$0")/testlib.sh"      (or ../testlib.sh from a test area)
#
#   pass, fail      counters, printed by the test at its end
#   ok [NAME]       count a passed check (and say so when named)
#   bad MESSAGE     count a failed one, the message on stderr
#   check NAME WANT_RC PATTERN -- CMD...
#                   run CMD: its exit status must be WANT_RC and its output
#                   (stdout and stderr) match PATTERN (grep -E; "" for any);
#                   returns 1 when it failed
#   make_tmp NAME   a fresh folder for the test in $T (searchable by all,
#                   as some checks need), removed when the test exits
#   PY              the first python3 that has msgpack: Debian's (the
#                   set-up script installs python3-msgpack), else the one
#                   on PATH
pass=0 fail=0
ok() {
  pass=$((pass + 1))
  [ $# -gt 0 ] && echo "PASS $1"
  return 0
}
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() {
  local name=$1 want=$2 pat=$3; shift 4
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$want" ]; then bad "$name: exit $rc, wanted $want; output: $out"; return 1; fi
  if [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then bad "$name: output lacks /$pat/: $out"; return 1; fi
  ok "$name"
}
PY=python3
for p in /usr/bin/python3 python3; do "$p" -c 'import msgpack' 2>/dev/null && { PY=$p; break; }; done
make_tmp() {
  T=$(mktemp -d "${TMPDIR:-/tmp}/tftx-$1-XXXXXX") || exit 1
  chmod 755 "$T"
  trap 'rm -rf "$T"' EXIT
}
