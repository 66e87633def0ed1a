"""Servers that misbehave, for the tests: ``garbage`` answers anything with
lines that are not JSON-RPC; ``silent`` reads and never answers (it hangs in
initialize); ``exit`` writes an error to stderr and exits 1."""

import sys
import time

mode = sys.argv[1]
if mode == "exit":
    print("fatal: GITHUB_TOKEN is not set", file=sys.stderr, flush=True)
    sys.exit(1)
for _line in sys.stdin:
    if mode == "garbage":
        print("this is not JSON-RPC, it is garbage", flush=True)
    else:
        time.sleep(0.01)
