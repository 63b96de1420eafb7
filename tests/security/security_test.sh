#!/usr/bin/env bash
# security_test.sh -- inputs tftx must refuse: a plugin file or folder that
# another user could have written (group/other-writable, someone else's),
# experiment files whose name or output would climb out of the output
# folder, links planted where tftx creates its log; and nothing tftx
# creates is world-writable, whatever the umask.
set -u
. "$(dirname "$0")/../testlib.sh"
: "${TFTX_BIN:?} ${TFTX_TEST_PLUGINS:?}"
make_tmp sec
export TFTX_PLUGIN_PATH=$TFTX_TEST_PLUGINS
cd "$T"

# plugins: a copy of a test plugin in a folder of its own
mkdir -m 755 pl && cp "$TFTX_TEST_PLUGINS/tftx_optimizer_tsgd.so" pl/ && chmod 755 pl/tftx_optimizer_tsgd.so
P=$T/pl/tftx_optimizer_tsgd.so
check plugin-safe 0 'optimizer tsgd' -- env TFTX_PLUGIN_PATH="$T/pl" "$TFTX_BIN" describe optimizer tsgd
chmod g+w "$P"
check plugin-group-writable 2 "^tftx: $P: refusing to load a plugin whose file is writable by its group \(mode 0775" -- \
  env TFTX_PLUGIN_PATH="$T/pl" "$TFTX_BIN" describe optimizer tsgd
check plugin-allow-unsafe 0 'optimizer tsgd' -- env TFTX_PLUGIN_PATH="$T/pl" "$TFTX_BIN" describe optimizer tsgd --allow-unsafe-plugins
check plugin-list-unsafe 1 "tsgd .*broken .*writable by its group" -- env TFTX_PLUGIN_PATH="$T/pl" "$TFTX_BIN" plugins optimizer
chmod 755 "$P"; chmod o+w pl
check plugin-dir-writable 2 "$P: refusing to load a plugin whose directory $T/pl is writable by others \(mode 0757" -- \
  env TFTX_PLUGIN_PATH="$T/pl" "$TFTX_BIN" describe optimizer tsgd
chmod 755 pl
if [ "$(id -u)" = 0 ]; then
  chown 65534 "$P"
  check plugin-foreign-owner 2 "$P: refusing to load a plugin whose file is owned by another user" -- \
    env TFTX_PLUGIN_PATH="$T/pl" "$TFTX_BIN" describe optimizer tsgd
  chown 0 "$P"
else echo "SKIP plugin-foreign-owner: needs root to give a file away"; fi

# experiment files that would write outside their output folder
cfg() { printf 'experiment = { %s };\ntokenizer = { plugin = "probe"; };\ntrain = { backend = "tback"; };\noptimizer = { plugin = "tsgd"; };\n' "$1" >"$2"; }
cfg 'name = "../../etc";' name.cfg
check name-dotdot 2 'name.cfg:1: experiment.name = "../../etc": a name is one path component' -- "$TFTX_BIN" validate name.cfg
cfg 'name = "/tmp/abs";' abs.cfg
check name-absolute 2 'abs.cfg:1: experiment.name = "/tmp/abs"' -- "$TFTX_BIN" validate abs.cfg
cfg 'output = "results/../../escape";' out.cfg
check output-dotdot 2 "out.cfg:1: experiment.output = \"results/../../escape\": a '..' component is not allowed" -- \
  "$TFTX_BIN" validate out.cfg
check set-output-dotdot 2 "experiment.output = \"../x\": a '..'" -- "$TFTX_BIN" validate name.cfg --set experiment.name=ok --set experiment.output=../x
[ ! -e "$T/../escape" ] && ok nothing-written || bad "nothing-written: ../escape exists"

# links planted where tftx creates the log
cfg 'name = "s"; output = "planted";' run.cfg
mkdir -m 755 elsewhere && ln -s "$T/elsewhere/victim" planted-log
mkdir -m 755 planted && ln -s "$T/elsewhere/victim" planted/results.msgpack
check log-symlink 1 'planted/results.msgpack: cannot open the results log for writing: Too many levels of symbolic links' -- \
  "$TFTX_BIN" run run.cfg -q
[ ! -e elsewhere/victim ] && ok log-symlink-untouched || bad "log-symlink-untouched: the link's target was created"
rm -rf planted
if [ "$(id -u)" = 0 ]; then
  # a link owned by another user in place of the output folder
  ln -s "$T/elsewhere" planted && chown -h 65534 planted
  check dir-symlink-foreign 1 'planted/results.msgpack: cannot create the directory planted: Too many levels of symbolic links' -- \
    "$TFTX_BIN" run run.cfg -q
  [ -z "$(ls -A elsewhere)" ] && ok dir-symlink-untouched || bad "dir-symlink-untouched: $(ls elsewhere)"
  rm planted
fi
# a world-writable folder in the way (no sticky bit): anyone could swap what is inside
mkdir -m 777 open && chmod 777 open
check dir-world-writable 1 'open/x/log.msgpack: cannot create the directory open/x: Operation not permitted' -- \
  "$TFTX_BIN" run run.cfg -q --out open/x/log.msgpack

# nothing created is world-writable, even with umask 000
out=$(umask 000; "$TFTX_BIN" run run.cfg -q --out made/sub/log.msgpack 2>&1); rc=$?
modes="$(stat -c %a made made/sub made/sub/log.msgpack | tr '\n' ' ')"
[ $rc = 0 ] && [ "$modes" = "755 755 644 " ] && ok umask-000 || bad "umask-000: rc $rc, modes '$modes': $out"
out=$(umask 022; "$TFTX_BIN" run run.cfg -q --out made2/log.msgpack 2>&1); rc=$?
modes="$(stat -c %a made2 made2/log.msgpack | tr '\n' ' ')"
[ $rc = 0 ] && [ "$modes" = "755 644 " ] && ok umask-022 || bad "umask-022: rc $rc, modes '$modes': $out"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
