#!/bin/sh
# cli_pull.sh — `nexus pull` against tests/mock_hub.py, a stand-in for the
# Hugging Face Hub that this test starts on a free loopback port (no network):
# a full pull and the huggingface_hub cache layout (blobs / snapshots / refs,
# relative symlinks), `nexus info` on the snapshot, a second pull that fetches
# nothing, --include, --revision, --out, datasets, a dropped connection
# resumed with Range, a server that ignores Range, a Ctrl-C in the middle
# (exit 130, partial file kept) resumed by the next run, a corrupted blob
# detected and fetched again, a blob corrupted every time (clear failure,
# nothing left), a 403 from the CDN retried, waiting on huggingface_hub's blob lock, 401/403 for private and gated repos, the token never sent to
# another host, HF_HUB_OFFLINE, an unreachable endpoint, usage errors.
. tests/lib.sh
check() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2' want '$3'"; fi; }
has() { case "$2" in *"$3"*) ok "$1";; *) bad "$1: no '$3' in: $2";; esac; }
T=$(mktemp -d /tmp/nx_cli_pull_XXXXXX)
MOCK=
trap '[ -n "$MOCK" ] && kill $MOCK 2>/dev/null; rm -rf "$T"' EXIT
FX=tests/fixtures/tiny-llama

python3 tests/mock_hub.py --port-file "$T/port" --log "$T/hub.log" 2>"$T/mock.err" &
MOCK=$!
for i in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
if [ ! -s "$T/port" ]; then bad "mock hub did not start: $(cat "$T/mock.err")"; echo "$pass passed, $fail failed"; exit 1; fi
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HUB_OFFLINE HF_TOKEN_PATH HUGGINGFACE_HUB_CACHE \
      http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY  # curl would send loopback through them
export HF_ENDPOINT="http://127.0.0.1:$(cat "$T/port")" HF_HUB_CACHE="$T/cache" HF_HOME="$T/hfhome"
eval "$(python3 tests/mock_hub.py --print-facts)"  # COMMIT_<repo>=..., GITSHA_<file>=...
sha256() { sha256sum "$1" | cut -d' ' -f1; }
requests() { wc -l < "$T/hub.log" | tr -d ' '; }
ST_SHA=$(sha256 $FX/model.safetensors)
CFG_SHA=$GITSHA_config_json

# ---- a full pull and the cache layout
R=$T/cache/models--nexus-test--tiny-llama
C=$COMMIT_tiny_llama
snap=$($NEXUS pull nexus-test/tiny-llama 2>"$T/err"); rc=$?
check "full pull exit 0" "$rc" "0"
check "prints the snapshot path" "$snap" "$R/snapshots/$C"
check "refs/main holds the commit" "$(cat $R/refs/main)" "$C"
check "LFS blob named by sha256" "$(sha256 $R/blobs/$ST_SHA)" "$ST_SHA"
cmp -s $R/blobs/$CFG_SHA $FX/config.json && ok "git blob named by git sha1" || bad "git blob $CFG_SHA"
check "snapshot file is a relative symlink" "$(readlink "$snap/model.safetensors")" "../../blobs/$ST_SHA"
check "nested file links one level further up" "$(readlink "$snap/extra/notes.txt")" \
      "../../../blobs/$GITSHA_extra_notes_txt"
cmp -s "$snap/config.json" $FX/config.json && ok "config.json content" || bad "config.json content"
cmp -s "$snap/model.safetensors" $FX/model.safetensors && ok "model.safetensors content" || bad "model.safetensors content"
[ -z "$(ls $R/blobs | grep incomplete)" ] && ok "no .incomplete left" || bad "no .incomplete left"
[ -e "$T/cache/.locks/models--nexus-test--tiny-llama/$ST_SHA.lock" ] && ok "huggingface_hub's lock file" || bad "lock file"
has "per-file log on stderr" "$(cat "$T/err")" "fetched model.safetensors (13.2 KiB)"
info=$($NEXUS info "$snap" 2>&1); rc=$?
check "nexus info loads the pulled snapshot" "$rc" "0"
has "nexus info shape" "$info" "V=32 C=16 L=2 NH=2 KVH=1 HS=8 F=32"

# ---- a second pull fetches nothing (only the API call)
n0=$(requests)
out=$($NEXUS pull nexus-test/tiny-llama 2>&1 >/dev/null); rc=$?
check "second pull exit 0" "$rc" "0"
check "second pull makes one request (the API)" "$(( $(requests) - n0 ))" "1"
has "second pull reports the files cached" "$out" "(0 fetched, 0 B; 4 cached)"

# ---- --revision by commit sha, --include, --out, -o
snap2=$($NEXUS pull nexus-test/tiny-llama --revision "$C" 2>/dev/null)
check "--revision COMMIT: same snapshot" "$snap2" "$snap"
[ ! -e "$R/refs/$C" ] && ok "no refs entry for a commit sha" || bad "refs entry for a commit sha"
snap3=$(HF_HUB_CACHE="$T/cache-inc" $NEXUS pull nexus-test/tiny-llama --include '*.json' --include 'extra/' 2>/dev/null)
check "--include: only the matching files" "$(cd "$snap3" && find . ! -type d | sort | tr '\n' ' ')" \
      "./config.json ./extra/notes.txt "
$NEXUS pull nexus-test/tiny-llama --include '*.bin' >/dev/null 2>"$T/err"; rc=$?
check "--include matching nothing exit 1" "$rc" "1"
has "--include matching nothing lists the files" "$(cat "$T/err")" "has no file matching the --include patterns: nothing to pull; it holds: README.md, config.json"
$NEXUS pull nexus-test/tiny-llama --out "$T/plain" >/dev/null 2>&1; rc=$?
check "--out exit 0" "$rc" "0"
[ -f "$T/plain/model.safetensors" ] && [ ! -L "$T/plain/model.safetensors" ] && ok "--out writes plain files" \
    || bad "--out writes plain files"
cmp -s "$T/plain/model.safetensors" $FX/model.safetensors && [ "$(cat "$T/plain/extra/notes.txt")" = "a nested file" ] \
    && ok "--out content" || bad "--out content"
$NEXUS info "$T/plain" >/dev/null 2>&1 && ok "nexus info loads the --out copy" || bad "nexus info on --out"
$NEXUS pull nexus-test/tiny-llama -o "$T/plain2" --include config.json >/dev/null 2>&1
[ -f "$T/plain2/config.json" ] && [ ! -e "$T/plain2/model.safetensors" ] && ok "-o with --include" || bad "-o with --include"
$NEXUS pull nexus-test/tiny-llama --revision nope >/dev/null 2>"$T/err"; rc=$?
check "unknown revision exit 1" "$rc" "1"
has "unknown revision named" "$(cat "$T/err")" "revision 'nope' not found in nexus-test/tiny-llama"

# ---- another process (huggingface_hub, another nexus) holds the blob's lock: wait for it
L=$T/cache-lock/.locks/models--nexus-test--tiny-llama
mkdir -p "$L"
# the locker holds the lock until nexus says it waits (10 s at most), so a loaded machine cannot make
# the lock come too late or go too early
rm -f "$T/locked" "$T/err"
flock "$L/$ST_SHA.lock" sh -c "touch '$T/locked'; for i in \$(seq 100); do grep -q 'waiting for another' '$T/err' 2>/dev/null && break; sleep 0.1; done" &
LOCKER=$!
for i in $(seq 100); do [ -e "$T/locked" ] && break; sleep 0.05; done
snap=$(HF_HUB_CACHE="$T/cache-lock" $NEXUS pull nexus-test/tiny-llama 2>"$T/err"); rc=$?
wait $LOCKER
check "blob locked by another process: exit 0" "$rc" "0"
has "blob locked by another process: waits" "$(cat "$T/err")" "waiting for another download of it"
cmp -s "$snap/model.safetensors" $FX/model.safetensors && ok "blob locked: content after the wait" || bad "blob locked: content"

# ---- a dataset repo
ds=$($NEXUS pull nexus-test/tiny-data --repo-type dataset 2>/dev/null); rc=$?
check "dataset pull exit 0" "$rc" "0"
check "dataset cache folder" "$ds" "$T/cache/datasets--nexus-test--tiny-data/snapshots/$COMMIT_tiny_data"
check "dataset nested file" "$(cat "$ds/val/val.txt")" "validation text"
$NEXUS pull nexus-test/tiny-data >/dev/null 2>"$T/err"
has "a dataset pulled as a model: hint" "$(cat "$T/err")" "401"

# ---- a connection dropped halfway: retried with Range, resumed
snap=$($NEXUS pull nexus-test/flaky 2>"$T/err"); rc=$?
check "dropped connection: exit 0" "$rc" "0"
has "dropped connection: retried" "$(cat "$T/err")" "retrying"
half=$(( $(wc -c < $FX/model.safetensors) / 2 ))
grep -q "GET /cdn/nexus-test/flaky/$ST_SHA range=bytes=$half-" "$T/hub.log" && ok "dropped connection: resumed with Range" \
    || bad "dropped connection: no 'Range: bytes=$half-' in $(grep flaky/ "$T/hub.log")"
cmp -s "$snap/model.safetensors" $FX/model.safetensors && ok "dropped connection: content" || bad "dropped connection: content"
snap=$($NEXUS pull nexus-test/norange 2>/dev/null); rc=$?
check "server ignoring Range: exit 0" "$rc" "0"
cmp -s "$snap/model.safetensors" $FX/model.safetensors && ok "server ignoring Range: content (restarted from byte 0)" \
    || bad "server ignoring Range: content"

# ---- Ctrl-C in the middle of a file: exit 130, partial kept, resumed by the next run
B=$T/cache/models--nexus-test--slow/blobs
$NEXUS pull nexus-test/slow >/dev/null 2>"$T/err.slow" &
PID=$!
for i in $(seq 100); do
    [ -s "$B/$ST_SHA.incomplete" ] && break
    sleep 0.05
done
kill -INT $PID
wait $PID; rc=$?
check "Ctrl-C exit 130" "$rc" "130"
part=$(wc -c < "$B/$ST_SHA.incomplete" 2>/dev/null | tr -d ' ')
[ -n "$part" ] && [ "$part" -gt 0 ] && [ "$part" -lt "$(wc -c < $FX/model.safetensors)" ] \
    && ok "Ctrl-C keeps the partial file ($part bytes)" || bad "Ctrl-C partial file: '$part'"
[ ! -e "$B/$ST_SHA" ] && ok "no blob from an interrupted download" || bad "blob from an interrupted download"
has "Ctrl-C says how to resume" "$(cat "$T/err.slow")" "run the same command to resume"
snap=$($NEXUS pull nexus-test/slow 2>"$T/err"); rc=$?
check "resumed pull exit 0" "$rc" "0"
grep -q "GET /cdn/nexus-test/slow/$ST_SHA range=bytes=$part-" "$T/hub.log" && ok "resumed at the partial file's size" \
    || bad "resume: no 'Range: bytes=$part-' in $(grep slow/ "$T/hub.log")"
cmp -s "$snap/model.safetensors" $FX/model.safetensors && ok "resumed content" || bad "resumed content"
[ ! -e "$B/$ST_SHA.incomplete" ] && ok "resumed: .incomplete renamed" || bad "resumed: .incomplete left"

# ---- sha256: a corrupted download is deleted and fetched again; twice is a failure
snap=$($NEXUS pull nexus-test/corrupt-once 2>"$T/err"); rc=$?
check "corrupted once: exit 0" "$rc" "0"
has "corrupted once: detected" "$(cat "$T/err")" "sha256 mismatch"
check "corrupted once: fetched twice" "$(grep -c "GET /cdn/nexus-test/corrupt-once/" "$T/hub.log")" "2"
cmp -s "$snap/model.safetensors" $FX/model.safetensors && ok "corrupted once: good content" || bad "corrupted once: content"
$NEXUS pull nexus-test/corrupt >/dev/null 2>"$T/err"; rc=$?
check "corrupted always: exit 1" "$rc" "1"
has "corrupted always: clear message" "$(cat "$T/err")" "model.safetensors: sha256 mismatch again"
B=$T/cache/models--nexus-test--corrupt/blobs
[ ! -e "$B/$ST_SHA" ] && [ ! -e "$B/$ST_SHA.incomplete" ] && ok "corrupted always: nothing left" \
    || bad "corrupted always: $(ls $B)"
[ ! -e "$T/cache/models--nexus-test--corrupt/snapshots/$COMMIT_corrupt/model.safetensors" ] \
    && ok "corrupted always: no snapshot entry" || bad "corrupted always: snapshot entry"

# ---- the CDN answers 403 (its signed URL expired): a new HEAD, a new URL
snap=$($NEXUS pull nexus-test/expired 2>"$T/err"); rc=$?
check "expired CDN URL: exit 0" "$rc" "0"
has "expired CDN URL: retried, with the CDN's reason" "$(cat "$T/err")" "HTTP 403 from"
has "expired CDN URL: the CDN's page" "$(cat "$T/err")" "Request has expired"
cmp -s "$snap/model.safetensors" $FX/model.safetensors && ok "expired CDN URL: content" || bad "expired CDN URL: content"

# ---- tokens: private and gated repos
$NEXUS pull nexus-test/private >/dev/null 2>"$T/err"; rc=$?
check "private without token: exit 1" "$rc" "1"
has "private without token: 401" "$(cat "$T/err")" "401 Unauthorized for nexus-test/private"
has "private without token: says to pass a token" "$(cat "$T/err")" "--token TOKEN or HF_TOKEN"
$NEXUS pull nexus-test/private --token wrong >/dev/null 2>"$T/err"
has "private, wrong token: refused" "$(cat "$T/err")" "the token was refused"
n0=$(requests)
$NEXUS pull nexus-test/private --token hf_test_token >/dev/null 2>&1; rc=$?
check "private with --token: exit 0" "$rc" "0"
check "token sent to the Hub" "$(tail -n +$((n0 + 1)) "$T/hub.log" | grep -c '^GET /api/.*auth=Bearer hf_test_token')" "1"
check "token not sent to the CDN on another host" \
      "$(tail -n +$((n0 + 1)) "$T/hub.log" | grep '^GET /cdn/' | grep -c 'auth=-')" "1"
rm -rf "$T/cache/models--nexus-test--private"
HF_TOKEN=hf_test_token $NEXUS pull nexus-test/private >/dev/null 2>&1; check "private with HF_TOKEN: exit 0" "$?" "0"
rm -rf "$T/cache/models--nexus-test--private"
mkdir -p "$T/hfhome" && printf 'hf_test_token\n' > "$T/hfhome/token"
$NEXUS pull nexus-test/private >/dev/null 2>&1; check "private with \$HF_HOME/token: exit 0" "$?" "0"
rm "$T/hfhome/token"
$NEXUS pull nexus-test/gated >/dev/null 2>"$T/err"; rc=$?
check "gated without token: exit 1" "$rc" "1"
has "gated without token: accept the licence" "$(cat "$T/err")" "gated; pass a token (--token or HF_TOKEN), and accept its licence at $HF_ENDPOINT/nexus-test/gated"
$NEXUS pull nexus-test/gated --token hf_test_token >/dev/null 2>"$T/err"; rc=$?
check "gated, licence not accepted: exit 1" "$rc" "1"
has "gated, licence not accepted: 403" "$(cat "$T/err")" "403 Forbidden"
has "gated, licence not accepted: says what to do" "$(cat "$T/err")" "accept the licence at $HF_ENDPOINT/nexus-test/gated"
$NEXUS pull nexus-test/no-such-model >/dev/null 2>"$T/err"; rc=$?
check "unknown repo exit 1" "$rc" "1"
has "unknown repo named" "$(cat "$T/err")" "nexus-test/no-such-model"

# ---- offline, unreachable
n0=$(requests)
snap=$(HF_HUB_OFFLINE=1 $NEXUS pull nexus-test/tiny-llama 2>/dev/null); rc=$?
check "HF_HUB_OFFLINE: exit 0" "$rc" "0"
check "HF_HUB_OFFLINE: the cached snapshot" "$snap" "$R/snapshots/$C"
check "HF_HUB_OFFLINE: no request" "$(( $(requests) - n0 ))" "0"
HF_HUB_OFFLINE=1 $NEXUS pull nexus-test/tiny-llama --out "$T/plain3" >/dev/null 2>&1
cmp -s "$T/plain3/model.safetensors" $FX/model.safetensors && ok "HF_HUB_OFFLINE with --out" || bad "HF_HUB_OFFLINE with --out"
HF_HUB_OFFLINE=1 $NEXUS pull nexus-test/not-pulled >/dev/null 2>"$T/err"; rc=$?
check "HF_HUB_OFFLINE, not cached: exit 1" "$rc" "1"
has "HF_HUB_OFFLINE, not cached: says so" "$(cat "$T/err")" "is not in the cache"
HF_ENDPOINT=http://127.0.0.1:1 $NEXUS pull nexus-test/tiny-llama >/dev/null 2>"$T/err"; rc=$?
check "unreachable endpoint: exit 1" "$rc" "1"
has "unreachable endpoint: says so" "$(cat "$T/err")" "cannot reach http://127.0.0.1:1"

# ---- usage
$NEXUS pull >/dev/null 2>&1; check "no repo: usage error" "$?" "2"
$NEXUS pull a/b/c >/dev/null 2>&1; check "bad repo id: usage error" "$?" "2"
$NEXUS pull ../x >/dev/null 2>&1; check "'..' repo id: usage error" "$?" "2"
$NEXUS pull org/name --repo-type space >/dev/null 2>&1; check "bad --repo-type: usage error" "$?" "2"
$NEXUS pull org/name --jobs 0 >/dev/null 2>&1; check "bad --jobs: usage error" "$?" "2"
$NEXUS pull --help >/dev/null 2>&1; check "--help exit 0" "$?" "0"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
