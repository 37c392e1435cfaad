#!/bin/sh
# Installs the Debian packages named in $PKGS that are missing; a no-op (a second) when all are there.
# apt-get's output goes to a log that is printed if anything fails.
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "make setup: installing Debian packages:$missing"
log=$(mktemp)
if $SUDO apt-get update -q >"$log" 2>&1 &&
   DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >>"$log" 2>&1; then
  rm -f "$log"
  exit 0
fi
echo "make setup: apt-get failed; the end of its output:" >&2
tail -n 30 "$log" >&2
rm -f "$log"
exit 1
