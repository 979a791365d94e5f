#!/usr/bin/env bash
# The same transfer workload on PostgreSQL, the common way, beside `cbank bench ledger --batch 1`
# on the same machine in the same run, and the ratio ours/PostgreSQL. Not part of CI.
#
# PostgreSQL: a throwaway cluster (fsync on, synchronous_commit=on) in a temporary folder; a
# table of accounts and a table of transfers; pgbench with many clients, each transaction
#   BEGIN; UPDATE accounts (debit); UPDATE accounts (credit); INSERT INTO transfers; COMMIT;
# between two random accounts (deadlocks between two transfers are retried: --max-tries).
# cbank: one signed transfer per request through a 3-node cluster (group commit batches them).
#
# Usage: tests/bench/postgres.sh [--clients 64] [--seconds 10] [--accounts 10000]
#                                [--cbank-clients 256]
# Installs PostgreSQL from Debian (apt-get) if it is missing; builds target/release/cbank if
# it is missing. Everything it starts is stopped, and its folder removed, when it ends.
set -euo pipefail
cd "$(dirname "$0")/../.."

clients=64
seconds=10
accounts=10000
cbank_clients=256
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --accounts) accounts="$2"; shift 2 ;;
    --cbank-clients) cbank_clients="$2"; shift 2 ;;
    *) echo "unknown argument: $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done

echo "== PostgreSQL"
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing PostgreSQL from Debian"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
"$bin/postgres" --version

# The server refuses to run as root: as root, run it as the `postgres` user the package made.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

work=$(mktemp -d /tmp/cbank-pg-XXXXXX)
if [ "$(id -u)" = 0 ]; then chown postgres: "$work"; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
  as_owner "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

as_owner "$bin/initdb" -D "$work/data" -A trust -U postgres >/dev/null
as_owner "$bin/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
  -o "-p $port -k $work -c listen_addresses='' -c fsync=on -c synchronous_commit=on \
      -c max_connections=$((clients + 20)) -c shared_buffers=256MB" start >/dev/null

psql() { as_owner "$bin/psql" -h "$work" -p "$port" -U postgres -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres <<SQL
CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE transfers (id bigserial PRIMARY KEY, debit_account_id bigint NOT NULL,
                        credit_account_id bigint NOT NULL, amount bigint NOT NULL,
                        created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO accounts SELECT id, 1000000000 FROM generate_series(1, $accounts) AS id;
SQL

cat > "$work/transfer.sql" <<SQL
\set debit random(1, $accounts)
\set credit random(1, $accounts)
BEGIN;
UPDATE accounts SET balance = balance - 1 WHERE id = :debit;
UPDATE accounts SET balance = balance + 1 WHERE id = :credit;
INSERT INTO transfers (debit_account_id, credit_account_id, amount) VALUES (:debit, :credit, 1);
COMMIT;
SQL
if [ "$(id -u)" = 0 ]; then chown postgres: "$work/transfer.sql"; fi

echo "pgbench: $clients clients, $seconds s, $accounts accounts, synchronous_commit=on"
as_owner "$bin/pgbench" -h "$work" -p "$port" -U postgres -n -M prepared -c "$clients" \
  -j "$(nproc)" -T "$seconds" --max-tries=100 -f "$work/transfer.sql" postgres \
  | tee "$work/pgbench.out"
pg_tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$work/pgbench.out")
total=$(psql -d postgres -t -A -c "SELECT count(*) || ' transfers, balance sum ' || (SELECT sum(balance) FROM accounts) FROM transfers")
echo "PostgreSQL holds $total (conserved: $((accounts * 1000000000)))"
as_owner "$bin/pg_ctl" -D "$work/data" -m fast stop >/dev/null

echo "== cbank"
if [ ! -x target/release/cbank ]; then
  cargo build --release -p node --bin cbank
fi
target/release/cbank bench ledger --batch 1 --clients "$cbank_clients" --seconds "$seconds" --json \
  | tee "$work/cbank.out"
ours=$(tail -1 "$work/cbank.out" | sed -n 's/.*"ops_per_s":\([0-9.]*\).*/\1/p')

echo "== result"
awk -v ours="$ours" -v pg="$pg_tps" 'BEGIN {
  printf "PostgreSQL  %10.0f transfer transactions/s\n", pg
  printf "cbank       %10.0f transfers/s (--batch 1)\n", ours
  printf "ours/PostgreSQL = %.2f\n", ours / pg
}'
