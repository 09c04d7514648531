#!/bin/sh
# The benchmark's own venv for bench/queue_throughput.py: the peer queues and py-spy live here,
# never in the product's dependencies. Usage: sh bench/queue_env.sh [DIR]  (default /work/benchenv;
# bench/queue_throughput.py reads it from --benchenv or $BENCHENV).
set -e
DIR=${1:-${BENCHENV:-/work/benchenv}}
python3 -m venv "$DIR"
"$DIR/bin/pip" install -q "procrastinate==3.10.0" "pgqueuer==1.6.0" "psycopg[binary,pool]" asyncpg py-spy
echo "bench venv ready: $DIR"
