#!/bin/sh
# Install the Debian packages nexus builds against, if any is missing.
# Run by `make` (through the build/.deps stamp) so that a fresh Debian 12
# machine needs no other set-up step. Without root it only reports.
set -e
# libcurl4-openssl-dev: the Hub download (io/hub/); libmicrohttpd-dev: the
# HTTP server (serve/).
PKGS="gcc make pkg-config libopenblas-openmp-dev libyaml-dev libcjson-dev zlib1g-dev \
libcurl4-openssl-dev libmicrohttpd-dev libpcre2-dev libutf8proc-dev jq"
[ -n "$NEXUS_EXTRA_PKGS" ] && PKGS="$PKGS $NEXUS_EXTRA_PKGS"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != "0" ]; then
    echo "nexus: missing Debian packages:$missing" >&2
    echo "nexus: install them with: sudo apt-get install$missing" >&2
    exit 1
fi
echo "nexus: installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends $missing >&2
