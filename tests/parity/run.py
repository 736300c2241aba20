"""Plays every scenario of tests/parity/scenarios/ through every face's runner and fails on any
difference: from the scenario's expected outcomes, or between faces (each face is compared with
the first one given, field by field, partitions included wherever they are determined: a key or
an explicit partition).

A scenario (JSON): `brokers` (0: no mock cluster; a `config` of `bootstrap.servers` names real
brokers, as tests/cluster does), `topics` {name: partitions}, `config` {key: value; `{tmpdir}` is a
fresh directory per run}, `actions` (`{"send": {topic, key, value, value_size, partition,
headers}, "times": N}`, `{"flush": ms}`, `{"close": ms}`, `{"down": broker}`, `{"up": broker}`,
`{"sleep": ms}`, `{"errors": {"api": "produce", "codes": [10]}}`: the next requests of that API
fail with those librdkafka error codes) and `expect`, one entry per send (`times` repeats one): `outcome` (`delivered`,
`failed`, `dead_lettered`, `spooled`, or `refused` when the send call itself returned the
error), `error` (the core's error kind, or null), and `partition` where it matters.

A runner reads the scenario as tab-separated steps on stdin, one per line:
  brokers N | topic NAME PARTITIONS | config KEY VALUE | start
  send TOPIC KEY VALUE VALUE_SIZE PARTITION HEADERS   ("-" for none; VALUE_SIZE > 0: that many "x";
                                                       HEADERS "k=v,k=v")
  flush MS | close MS | down ID | up ID | sleep MS | errors API CODE,CODE,…
closes the producer at the end (so that every send is reported), and prints one line per send,
in send order: INDEX OUTCOME ERROR PARTITION ("-" for no error, -1 for no partition).

Usage: run.py --runner NAME=COMMAND [--runner ...] [SCENARIO.json ...]
"""

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE_CONFIG = {"log.level": "off"}


def steps(scenario, tmpdir):
    yield f"brokers\t{scenario.get('brokers', 1)}"
    for topic, partitions in scenario.get("topics", {}).items():
        yield f"topic\t{topic}\t{partitions}"
    for key, value in {**BASE_CONFIG, **scenario.get("config", {})}.items():
        yield f"config\t{key}\t{str(value).replace('{tmpdir}', tmpdir)}"
    yield "start"
    for action in scenario["actions"]:
        if "send" in action:
            m = action["send"]
            headers = ",".join(f"{k}={v}" for k, v in m.get("headers", {}).items()) or "-"
            line = "\t".join(["send", m["topic"], m.get("key", "-"), m.get("value", "-"),
                              str(m.get("value_size", 0)), str(m.get("partition", "-")), headers])
            yield from [line] * action.get("times", 1)
        elif "errors" in action:
            failing = action["errors"]
            yield f"errors\t{failing['api']}\t{','.join(map(str, failing['codes']))}"
        else:
            (kind, argument), = action.items()
            yield f"{kind}\t{argument}"


def sends(scenario):
    """Each send's message, in order."""
    return [a["send"] for a in scenario["actions"] if "send" in a for _ in range(a.get("times", 1))]


def expected(scenario):
    return [{k: v for k, v in e.items() if k != "times"} for e in scenario["expect"] for _ in range(e.get("times", 1))]


def play(command, scenario):
    return play_logged(command, scenario, BASE_CONFIG["log.level"])[0]


def play_logged(command, scenario, log_level):
    """The scenario's outcomes, and what the runner wrote to stderr with `log.level` at `log_level`."""
    scenario = {**scenario, "config": {"log.level": log_level, **scenario.get("config", {})}}
    with tempfile.TemporaryDirectory(prefix="ks-parity-") as tmpdir:
        script = "\n".join(steps(scenario, tmpdir)) + "\n"
        done = subprocess.run(command, input=script, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    outcomes = []
    for line in done.stdout.splitlines():
        index, outcome, error, partition = line.split("\t")
        assert int(index) == len(outcomes), line
        outcomes.append({"outcome": outcome, "error": None if error == "-" else error, "partition": int(partition)})
    return outcomes, done.stderr


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runner", action="append", required=True, metavar="NAME=COMMAND")
    parser.add_argument("scenarios", nargs="*", type=Path)
    args = parser.parse_args()
    runners = [(name, shlex.split(command)) for name, command in (r.split("=", 1) for r in args.runner)]
    files = args.scenarios or sorted((HERE / "scenarios").glob("*.json"))
    problems = 0
    for file in files:
        scenario = json.loads(file.read_text())
        want = expected(scenario)
        placed = [("key" in m or "partition" in m) for m in sends(scenario)]
        first = None
        for name, command in runners:
            try:
                got = play(command, scenario)
            except Exception as error:  # noqa: BLE001 - a runner that breaks is a difference too
                print(f"FAIL {file.name} [{name}]: {error}")
                problems += 1
                continue
            differences = []
            if len(got) != len(want):
                differences.append(f"{len(got)} outcomes, expected {len(want)}")
            for i, (g, w) in enumerate(zip(got, want)):
                wrong = {k: g[k] for k in w if g[k] != w[k]}
                if wrong:
                    differences.append(f"send {i}: {wrong}, expected { {k: w[k] for k in wrong} }")
            if first is None:
                first = (name, got)
            else:
                for i, (g, f) in enumerate(zip(got, first[1])):
                    fields = ["outcome", "error"] + (["partition"] if placed[i] and g["outcome"] == "delivered" else [])
                    wrong = {k: g[k] for k in fields if g[k] != f[k]}
                    if wrong:
                        differences.append(f"send {i}: {wrong}, but {first[0]} gave { {k: f[k] for k in wrong} }")
            for difference in differences:
                print(f"FAIL {file.name} [{name}]: {difference}")
            problems += len(differences)
            if not differences:
                print(f"ok   {file.name} [{name}]")
    print(f"{len(files)} scenarios, {len(runners)} faces: {'all alike' if not problems else f'{problems} differences'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
