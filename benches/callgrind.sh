#!/bin/sh
# Instructions per operation of one of green's hot paths, counted by
# callgrind: `./callgrind.sh CASE` (cases: yield spawn batch mpsc queue
# mutex; see src/hotpath.rs). Runs the case at 20 000 and 40 000
# operations and divides the difference of the counts by 20 000, so that
# start-up cancels out.
set -e
case="${1:?usage: $0 yield|spawn|batch|mpsc|queue|mutex}"
cd "$(dirname "$0")"
cargo bench --bench hotpath --no-run >/dev/null 2>&1
bin=$(cargo bench --bench hotpath --no-run 2>&1 | sed -n 's/.*(\(.*hotpath-[^)]*\)).*/\1/p' | tail -1)
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$case" "$1" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
a=$(count 20000)
b=$(count 40000)
echo "$case: $(( (b - a) / 20000 )) instructions per operation"
