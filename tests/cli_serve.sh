#!/bin/sh
# cli_serve.sh — `nexus serve` over HTTP on the bundled demo teacher, with
# Python's standard library only (tests/serve_test.py: endpoints, completions
# and chat whole and streamed, greedy = `nexus generate`, bad input, 429, slow
# and abandoned clients, SIGTERM). Proxy variables are unset: the client talks
# to the loopback server directly.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
exec python3 tests/serve_test.py "${NEXUS:-./nexus}" models/demo-teacher
