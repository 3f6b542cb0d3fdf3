#!/bin/sh
# golden_serve.sh — the official `openai` npm client completes, chats and
# streams against `nexus serve` on teacher-19m (tests/openai_client.mjs);
# greedy text through the API equals `nexus generate --temperature 0`. The
# package is installed with npm into a temporary directory; a failed install
# fails this test (it needs the npm registry). The server runs on a free
# loopback port (--port 0, read from its log) and is stopped with SIGTERM,
# which must end it with status 0.
. tests/lib.sh
M=../shared/models/teacher-19m
OPENAI_VERSION=6.30.1   # the last major that runs on Node 20 (7.x needs Node 22)
need $M/config.json $M/model.safetensors $M/tokenizer.json || { summary; exit 1; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
T=$(mktemp -d /tmp/nx_gserve.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$T"' EXIT
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
    bad "node and npm are needed (Node.js 20+)"; summary; exit 1
fi
if (cd "$T" && npm install --no-audit --no-fund --loglevel=error "openai@$OPENAI_VERSION" > npm.log 2>&1); then
    ok "npm install openai@$OPENAI_VERSION"
else
    bad "npm install openai@$OPENAI_VERSION failed:"; cat "$T/npm.log"; summary; exit 1
fi
cp tests/openai_client.mjs "$T/"
PROMPT="The history of the city"
N=32
$NEXUS generate $M --prompt "$PROMPT" --max-tokens $N --temperature 0 --ignore-eos --json > $T/ref.json 2> $T/err ||
    { bad "nexus generate"; cat $T/err; summary; exit 1; }
[ "$(jq .generated_tokens $T/ref.json)" = $N ] || { bad "reference generation stopped early"; summary; exit 1; }
$NEXUS serve $M --port 0 --api-key golden-key --slots 4 --threads 2 2> $T/serve.log &
PID=$!
PORT=
for _ in $(seq 1 300); do
    PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' $T/serve.log)
    [ -n "$PORT" ] && break
    kill -0 $PID 2>/dev/null || break
    sleep 0.1
done
if [ -z "$PORT" ]; then bad "the server did not start"; cat $T/serve.log; summary; exit 1; fi
(cd "$T" && BASE_URL="http://127.0.0.1:$PORT/v1" API_KEY=golden-key MODEL=teacher-19m PROMPT="$PROMPT" N_TOKENS=$N \
    EXPECT_TEXT="$(jq -r .text ref.json)" EXPECT_PROMPT_TOKENS="$(jq .prompt_tokens ref.json)" \
    node openai_client.mjs) > $T/client.out 2>&1
cat $T/client.out | grep -E '^(ok|FAIL) '
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' $T/client.out | tail -n 1)
[ -z "$line" ] && { bad "the client crashed"; cat $T/client.out; }
pass=$((pass + $(echo "$line" | cut -d' ' -f1))); fail=$((fail + $(echo "$line" | cut -d' ' -f3 | tr -d ,)))
kill -TERM $PID; wait $PID; rc=$?; PID=
if [ $rc = 0 ]; then ok "SIGTERM: exit 0"; else bad "SIGTERM: exit $rc"; cat $T/serve.log; fi
summary
