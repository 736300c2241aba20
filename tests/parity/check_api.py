"""Checks docs/api-parity.md against the faces' code, both ways: every name the table gives a face
exists in that face's sources, and every public function, method or export of a face is named
somewhere in its column. Exit status 1 with the differences, by face, otherwise 0.

Usage: python3 tests/parity/check_api.py
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def read(*patterns):
    return "\n".join(p.read_text() for pattern in patterns for p in sorted(ROOT.glob(pattern))
                     if not p.name.endswith("_test.go"))


def blocks(text, start):
    """The bodies of the classes (or impl blocks) whose header matches `start`, up to the next
    line at the same indentation."""
    found = []
    for match in re.finditer(start, text, re.M):
        rest = text[match.end():]
        end = re.search(r"^\S", rest, re.M)
        found.append(rest[: end.start() if end else len(rest)])
    return "\n".join(found)


def rust():
    text = read("crates/kafkasender/src/producer/mod.rs", "crates/kafkasender/src/producer/publish.rs",
                "crates/kafkasender/src/testing.rs")
    public = set(re.findall(r"^    pub fn (\w+)", text, re.M)) | set(re.findall(r"^pub fn (\w+)", text, re.M))
    return text + read("crates/kafkasender/src/lib.rs", "crates/kafkasender/src/config/*.rs",
                       "crates/kafkasender/src/events.rs", "crates/kafkasender/src/logging.rs"), public


def c():
    text = read("include/kafkasender.h")
    return text, set(re.findall(r"\b(ks_\w+)\(", text))


def go():
    text = read("bindings/go/*.go")
    # Exported functions, and exported methods of exported types (an unexported type's methods,
    # such as an interface implementation, are not the package's API).
    return text, set(re.findall(r"^func (?:\(\w+ \*?[A-Z]\w*\) )?([A-Z]\w*)", text, re.M))


def python():
    text = read("bindings/python/python/kafkasender/*.py", "bindings/python/python/kafkasender/*.pyi")
    classes = blocks(text, r"^class (Producer|Producers|MockCluster)\b.*:\n")
    public = set(re.findall(r"^\s+(?:async )?def (\w+)", classes, re.M)) - {"__new__", "__init__"}
    return text, public


def node():
    text = read("bindings/node/index.d.ts")
    classes = blocks(text, r"^export declare class (Producer|Producers|MockCluster)\b.*\{\n")
    public = set(re.findall(r"^\s+(?:static |readonly |get )?(\w+)\s*[(:<]", classes, re.M))
    public |= set(re.findall(r"^export declare function (\w+)", text, re.M))
    return text, public


FACES = {"Rust": rust, "C": c, "Go": go, "Python": python, "Node": node}


def main():
    rows = [line for line in (ROOT / "docs/api-parity.md").read_text().splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    columns = {face: next(i for i, h in enumerate(header) if h.startswith(face)) for face in FACES}
    problems = []
    for face, sources in FACES.items():
        text, public = sources()
        words = set(re.findall(r"\w+", text))
        named = set()
        for row in rows[1:]:
            cell = row.strip("|").split("|")[columns[face]]
            named |= set(re.findall(r"`(\w+)", cell))
        problems += [f"{face}: docs/api-parity.md names `{n}`, which {face} does not have" for n in sorted(named - words)]
        problems += [f"{face}: `{n}` is public but not in docs/api-parity.md" for n in sorted(public - named)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
