#!/usr/bin/env bash
# Kafka source and sink throughput on loopback, next to the broker's own client tools
# (ProducerPerformance, ConsumerPerformance) run in the same session on the same broker.
#
#   bench/kafka.sh [RECORDS] [RECORD_BYTES]     (defaults 2000000, 100)
#
# Needs a release build (cargo build --release) and a broker (scripts/kafka start).
# Each figure is records/s over the whole run (eddy's include process start-up and
# connecting; the tools report from their first record).
set -euo pipefail
cd "$(dirname "$0")/.."

records="${1:-2000000}"
bytes="${2:-100}"
partitions=4
bootstrap="${EDDY_KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
eddy=target/release/eddy
run="bench-$(date +%s)"
work="$(mktemp -d)"
cleanup() {
    rm -rf "$work"
    # The topics hold several GB: delete them (the broker's disk is the machine's).
    scripts/kafka class org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
        --delete --topic "$run-.*" >/dev/null 2>&1 || true
}
trap cleanup EXIT

now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1 / ($3 - $2):,.0f}')"; }

scripts/kafka create-topic "$run-tool" "$partitions" >/dev/null
scripts/kafka create-topic "$run-tool-batched" "$partitions" >/dev/null
scripts/kafka create-topic "$run-eddy-in" "$partitions" >/dev/null
scripts/kafka create-topic "$run-eddy-out" "$partitions" >/dev/null
scripts/kafka create-topic "$run-eddy-none" "$partitions" >/dev/null

echo "== producer: kafka ProducerPerformance (acks=all, idempotent: the 4.x defaults)"
scripts/kafka class org.apache.kafka.tools.ProducerPerformance --topic "$run-tool" \
    --num-records "$records" --record-size "$bytes" --throughput -1 \
    --producer-props bootstrap.servers="$bootstrap" | tail -n 1
echo "== producer: the same with librdkafka-like batching (batch.size=1048576 linger.ms=5)"
scripts/kafka class org.apache.kafka.tools.ProducerPerformance --topic "$run-tool-batched" \
    --num-records "$records" --record-size "$bytes" --throughput -1 \
    --producer-props bootstrap.servers="$bootstrap" batch.size=1048576 linger.ms=5 | tail -n 1

echo "== producer: eddy file -> kafka sink (at-least-once: idempotent, acks=all)"
python3 - "$work/lines.txt" "$records" "$bytes" <<'PY'
import sys
path, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w") as f:
    for i in range(count):
        head = f"{i:012d}"
        f.write(head + "x" * (size - len(head)) + "\n")
PY
start=$(now)
"$eddy" run copy --source "file://$work/lines.txt?format=lines" \
    --sink "kafka://$bootstrap/$run-eddy-in?delivery=at-least-once&format=lines" --parallelism 1
end=$(now)
echo "eddy sink at-least-once: $(rate "$records" "$start" "$end") records/s"
start=$(now)
"$eddy" run copy --source "file://$work/lines.txt?format=lines" \
    --sink "kafka://$bootstrap/$run-eddy-none?delivery=none&format=lines" --parallelism 1
end=$(now)
echo "eddy sink none (acks=1): $(rate "$records" "$start" "$end") records/s"
start=$(now)
"$eddy" run copy --source "file://$work/lines.txt?format=lines" --sink blackhole: --parallelism 1
end=$(now)
echo "(eddy file -> blackhole alone: $(rate "$records" "$start" "$end") records/s)"

echo "== consumer: kafka ConsumerPerformance"
scripts/kafka class org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$bootstrap" \
    --topic "$run-tool" --messages "$records" | tail -n 2

echo "== consumer: eddy kafka source -> blackhole (read_committed, bounded)"
start=$(now)
"$eddy" run copy --source "kafka://$bootstrap/$run-tool?bounded=true&format=lines" --sink blackhole: \
    --parallelism 2
end=$(now)
echo "eddy source: $(rate "$records" "$start" "$end") records/s"
