"""Turns `kafkasender bench --json` results into docs/benchmarks: a README with the tables, the
machine and the exact command, PNG charts, and the raw JSON beside them.

Usage: report.py --out DIR RESULT.json [RESULT.json …]   (one file per broker; `make bench-all`)

Ratios are taken within a round and their median reported (the rules at the top of
crates/kafkasender-cli/src/bench.rs); "vs peer" compares each face with the librdkafka-based or
native client its users would otherwise pick.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAW = "librdkafka"


def peer_versions():
    """Each peer's version, read from where it is pinned or installed."""
    def read(path, pattern):
        try:
            return re.search(pattern, (ROOT / path).read_text()).group(1)
        except (OSError, AttributeError):
            return "?"
    try:
        confluent_python = importlib.metadata.version("confluent-kafka")
    except importlib.metadata.PackageNotFoundError:
        confluent_python = "?"
    return {
        "confluent-go": read("bench/confluent-go/go.mod", r"confluent-kafka-go/v2 (v[\d.]+)"),
        "confluent-python": confluent_python,
        "kafkajs": read("bindings/node/node_modules/kafkajs/package.json", r'"version":\s*"([^"]+)"'),
        "java": read("scripts/kafka/pom.xml", r"<kafka.version>([^<]+)<"),
    }


def catalogue():
    """Every external contender: (language, label, the contender its "vs peer" ratio is taken against).
    The built-in ones (raw librdkafka and the Rust core) carry their labels in the JSON (a label of
    None here); listed here are those whose language or peer is not the default (Rust, against raw
    librdkafka)."""
    v = peer_versions()
    return {
        "librdkafka-header": ("librdkafka", None, RAW),
        "librdkafka-self-poll": ("librdkafka", None, RAW),
        "rust-send-id": ("Rust", None, "librdkafka-header"),
        "rust-send-journal": ("Rust", None, "rust-send-id"),
        "c-send": ("C", "kafkasender C `ks_producer_send` + callback", "rust-send"),
        "go-send-async": ("Go", "kafkasender Go `SendAsync`", "confluent-go"),
        "go-send-batch": ("Go", "kafkasender Go `SendBatch` (10,000 a call)", "confluent-go"),
        "confluent-go": ("Go", f"confluent-kafka-go {v['confluent-go']} (`Produce` + Events channel)", None),
        "py-send": ("Python", "kafkasender Python `send(on_delivery=…)`", "confluent-python"),
        "py-send-batch": ("Python", "kafkasender Python `send_batch` (10,000 a call)", "confluent-python"),
        "py-send-batch-columns": ("Python", "kafkasender Python `send_batch(columns=True)` (10,000 a call)",
                                  "confluent-python"),
        "confluent-python": ("Python", f"confluent-kafka-python {v['confluent-python']} (`produce` + `poll(0)`)", None),
        "node-send": ("Node", "kafkasender Node `send` (a Promise each)", "kafkajs"),
        "node-send-callback": ("Node", "kafkasender Node `send(message, callback)`", "kafkajs"),
        "node-send-batch": ("Node", "kafkasender Node `sendBatch` (10,000 a call)", "kafkajs"),
        "kafkajs": ("Node", f"kafkajs {v['kafkajs']} (`send` of 1,000, 10 in flight)", None),
        "java": ("Java", f"Java kafka-clients {v['java']} (`send` + callback)", None),
    }


COLOURS = {"librdkafka": "#222222", "C": "#888888", "Rust": "#b7410e", "Go": "#00add8", "Python": "#3776ab", "Node": "#3c873a", "Java": "#e76f00"}


class Results:
    """One `bench --json` file: runs by (mode, contender, round)."""

    def __init__(self, path, known):
        self.path = Path(path)
        self.doc = json.loads(self.path.read_text())
        self.real = "mock" not in self.doc["broker"]
        self.runs = {}
        self.names = []
        self.info = {}
        for run in self.doc["runs"]:
            name = run["contender"]
            self.runs[(run["mode"], name, run["round"])] = run
            if name not in self.names:
                self.names.append(name)
                language, label, peer = known.get(name) or (
                    "librdkafka" if name == RAW else "Rust", None, None if name == RAW else RAW)
                label = label or run.get("label", name)
                self.info[name] = {"language": language, "label": label, "peer": peer}

    @property
    def title(self):
        return "a real Apache Kafka" if self.real else "the librdkafka mock cluster"

    def values(self, mode, name, field):
        return [r[field] for (m, n, _), r in sorted(self.runs.items()) if m == mode and n == name]

    def ratios(self, mode, name, other, field):
        """`field` of `name` over that of `other`, per round."""
        out = []
        for (m, n, rnd), run in sorted(self.runs.items()):
            base = self.runs.get((m, other, rnd))
            if m == mode and n == name and base and base[field]:
                out.append(run[field] / base[field])
        return out


def spread(values):
    return (statistics.median(values), min(values), max(values)) if values else None


def fmt_spread(values, pattern="{:,.0f}"):
    s = spread(values)
    if s is None:
        return "–"
    return f"{pattern.format(s[0])} ({pattern.format(s[1])}–{pattern.format(s[2])})"


def throughput_table(res):
    lines = [
        "| contender | msg/s, median (min–max) | vs raw librdkafka | vs peer | p50 ms | p99 ms | peak RSS MB | CPU s per 1M msgs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    count = res.doc["count"]
    for name in res.names:
        info = res.info[name]
        rate = res.values("throughput", name, "msgs_per_s")
        if not rate:
            continue
        vs_raw = fmt_spread(res.ratios("throughput", name, RAW, "msgs_per_s"), "{:.2f}")
        peer = info["peer"]
        vs_peer = (f"{fmt_spread(res.ratios('throughput', name, peer, 'msgs_per_s'), '{:.2f}')} vs {peer}"
                   if peer and peer != RAW and peer in res.names else "")
        med = lambda field: statistics.median(res.values("throughput", name, field))  # noqa: E731
        lines.append(
            f"| {info['label']} | {fmt_spread(rate)} | {vs_raw} | {vs_peer} | {med('p50_ms'):.1f} | {med('p99_ms'):.1f} "
            f"| {med('peak_rss_kb') / 1024:.0f} | {med('cpu_s') * 1e6 / count:.2f} |")
    return "\n".join(lines)


def latency_table(res):
    lines = [
        "| contender | p50 ms, median (min–max) | p99 ms, median (min–max) | p99 vs raw librdkafka | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in res.names:
        p99 = res.values("fixed_rate", name, "p99_ms")
        if not p99:
            continue
        lines.append(
            f"| {res.info[name]['label']} | {fmt_spread(res.values('fixed_rate', name, 'p50_ms'), '{:.2f}')} "
            f"| {fmt_spread(p99, '{:.2f}')} | {fmt_spread(res.ratios('fixed_rate', name, RAW, 'p99_ms'), '{:.2f}')} "
            f"| {statistics.median(res.values('fixed_rate', name, 'peak_rss_kb')) / 1024:.0f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def bar_chart(results, path, title, mode, field, scale, xlabel):
    """Horizontal bars (median, whiskers min–max) per contender, one panel per broker."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [r for r in results if any(m == mode for (m, _, _) in r.runs)]
    if not panels:
        return False
    height = 0.45 * max(len(r.names) for r in panels) + 1.5
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), height), squeeze=False)
    for ax, res in zip(axes[0], panels):
        names = [n for n in res.names if res.values(mode, n, field)][::-1]
        stats = [spread([v * scale for v in res.values(mode, n, field)]) for n in names]
        medians = [s[0] for s in stats]
        errors = [[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]]
        colours = [COLOURS.get(res.info[n]["language"], "#999999") for n in names]
        ax.barh(range(len(names)), medians, xerr=errors, color=colours, capsize=3)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names)
        ax.set_title(res.title)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem_kb = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores ({cpu}), {mem_kb / 2**20:.0f} GiB, {platform.system()} {platform.release()}"


def commit(results):
    """The commit measured: `make bench-all` writes it beside the results before it starts."""
    try:
        return (Path(results[0].path).parent / "all-commit.txt").read_text().strip()
    except OSError:
        return "?"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("results", nargs="+")
    args = parser.parse_args()
    known = catalogue()
    results = [Results(p, known) for p in args.results]
    out = args.out
    (out / "results").mkdir(parents=True, exist_ok=True)
    for path in [res.path for res in results] + [results[0].path.parent / "all-commit.txt"]:
        if path.exists():
            shutil.copyfile(path, out / "results" / path.name)

    charts = []
    for file, title, mode, field, scale, xlabel in [
        ("throughput.png", "Throughput (median, min–max over rounds)", "throughput", "msgs_per_s", 1e-3, "thousand msg/s"),
        ("latency.png", "p99 delivery latency at a fixed rate", "fixed_rate", "p99_ms", 1, "ms"),
        ("rss.png", "Peak RSS, throughput runs", "throughput", "peak_rss_kb", 1 / 1024, "MB"),
    ]:
        if bar_chart(results, out / file, title, mode, field, scale, xlabel):
            charts.append(f"![{title}]({file})")

    first = results[0].doc
    when = datetime.datetime.fromtimestamp(results[0].path.stat().st_mtime, datetime.timezone.utc)
    doc = [
        "# Benchmarks",
        "",
        "Generated by `make bench-all` (`bench/report.py`); do not edit by hand. The raw runs are in "
        "[results/](results/).",
        "",
        "## Method",
        "",
        "The rules at the top of `crates/kafkasender-cli/src/bench.rs`, which every contender follows: the "
        "broker in another process; every contender in a process of its own, on a fresh 6-partition "
        "topic, warmed up by one delivered message before the clock starts; distinct 16-byte keys, "
        f"{first['size']}-byte values, acks=all, idempotence (kafkajs: off, see below), linger.ms=5; "
        f"contenders interleaved for {first['rounds']} rounds with the order rotating; ratios taken "
        "within a round, then the median (min–max) over rounds. Raw librdkafka is rdkafka's "
        "`BaseProducer` with a dedicated poll thread: the ceiling for every librdkafka-based client. "
        "\"vs peer\" compares each face with the client its users would otherwise pick (the C face "
        "with the Rust core it wraps). Latency is measured separately at a fixed rate, since at full "
        "speed it is time spent in a full queue.",
        "",
        f"- Run: {when:%Y-%m-%d %H:%M} UTC, commit {commit(results)}, librdkafka {first['librdkafka']}",
        f"- Machine: {machine()}; shared with other work, so single runs vary by ±30%: read the medians "
        "of ratios, not single figures",
        "- Command: `make bench-all` (add `BENCH_ARGS=\"--rounds 7\"` for more rounds); "
        "`make bench-report` redraws this page from the JSON",
        "- kafkajs runs with idempotence off: its idempotent producer looks for a controller the mock "
        "cluster's metadata does not name. @confluentinc/kafka-javascript is missing: its install runs "
        "librdkafka's `configure --install-deps`, which downloads zlib, OpenSSL, zstd and curl from "
        "hosts this machine cannot reach.",
        "- Java's client is `bench/java/Contender.java` rather than kafka-tools' ProducerPerformance, "
        "which in Kafka 3.9 sends no keys and starts its clock before the first send waits for "
        "metadata and the producer id. It runs on the real broker only: against the mock cluster "
        "its first send waits 60 s for metadata that never names the topic.",
        "",
        *charts,
        "",
    ]
    for res in results:
        d = res.doc
        where = (f"A single-node Apache Kafka {peer_versions()['java']} (KRaft) as `scripts/kafka/up.sh` starts it, "
                 f"on the same machine ({d['broker']})" if res.real else f"A {d['broker']}")
        doc += [
            f"## On {res.title}",
            "",
            f"{where}.",
            "",
            f"### Throughput: {d['count']:,} messages per run",
            "",
            throughput_table(res),
            "",
        ]
        latency = latency_table(res)
        if latency:
            doc += [f"### Delivery latency at a fixed {d['latency_rate']:,} msg/s, {d['latency_count']:,} messages per run", "", latency, ""]
    (out / "README.md").write_text("\n".join(doc))
    print(f"wrote {out / 'README.md'} and {len(charts)} charts")


if __name__ == "__main__":
    main()
