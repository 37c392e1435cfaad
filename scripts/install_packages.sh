#!/bin/sh
# Installs the Debian packages named in $PKGS that are missing; a no-op (a second) when all are there.
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "make setup: installing Debian packages:$missing"
$SUDO apt-get update -q >/dev/null || exit 1
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null || exit 1
