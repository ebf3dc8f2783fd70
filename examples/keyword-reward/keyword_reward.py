#!/usr/bin/env python3
"""A reward process for `task.name: external` (see README "Your own reward: task.name external").

eggroll starts this once per rank and writes one JSON line per rollout to its stdin:
    {"prompt": ..., "completion": ..., "tokens": [...], <the data line's other fields>}
It answers each line, in order, with {"reward": <number>}.

The reward here: how many times the completion contains any of the line's "keywords" (a list of
strings from the data file). With keywords "0".."9" it is the digits toy task, which a tiny
model learns in a few steps.

KEYWORD_REWARD_FAIL_AFTER=N (testing): exit with status 3 after answering N lines, as a crashing
reward would.
"""
import json
import os
import sys


def reward(row):
    text = row["completion"]
    return float(sum(text.count(k) for k in row.get("keywords", []) if k))


def main():
    fail_after = int(os.environ.get("KEYWORD_REWARD_FAIL_AFTER", "-1"))
    answered = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        if answered == fail_after:
            sys.stderr.write("keyword_reward.py: failing on purpose (KEYWORD_REWARD_FAIL_AFTER)\n")
            sys.exit(3)
        row = json.loads(line)
        sys.stdout.write(json.dumps({"reward": reward(row)}) + "\n")
        sys.stdout.flush()  # answer now: eggroll waits for each line
        answered += 1


if __name__ == "__main__":
    main()
