#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine (run as root):
# the real servers (Samba AD DC, OpenLDAP slapd), the Windows cross toolchain and wine,
# clang for the fuzzers, and the Python package with its test extra in .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-dev gcc make \
    samba samba-ad-dc samba-ad-provision krb5-user ldap-utils winbind slapd gnupg python3-gpg iproute2 util-linux \
    libldap2-dev libsasl2-dev tmux systemd \
    gcc-mingw-w64-x86-64 clang libclang-rt-14-dev libssl-dev \
    >/dev/null
apt-get install -y -qq --no-install-recommends wine64 >/dev/null
# Samba and slapd must not run as system services: the tests start their own.
for svc in samba-ad-dc smbd nmbd winbind slapd; do
    (command -v systemctl >/dev/null && systemctl disable --now "$svc" 2>/dev/null) || true
done
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,ldap,console]'
