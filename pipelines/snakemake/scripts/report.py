#!/usr/bin/env python3
"""The workflow's summary report: per-species accuracy and confusion counts
of `mambadna classify` calls on simulated reads.

A simulated read's name starts with its true species (LABEL|CONTIG|...,
`mambadna simulate reads`), so every call can be scored. The calls TSV is
classify's per-read output: '#' provenance lines, an optional column-name
line, then read id, length, predicted label, its probability, and one
probability column per label. The report keeps the calls' provenance lines.
"""
import argparse
import os
import sys
import tempfile


def read_calls(path):
    """(provenance lines, [(true label, predicted label, probability)])."""
    provenance, calls = [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("#"):
                provenance.append(line)
                continue
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) < 4:
                sys.exit(f"[E::report] {path}:{lineno}: {len(fields)} columns, expected at least 4")
            if not fields[1].isdigit():   # the column names
                continue
            try:
                prob = float(fields[3])
            except ValueError:
                sys.exit(f"[E::report] {path}:{lineno}: probability '{fields[3]}' is not a number")
            calls.append((fields[0].split("|", 1)[0], fields[2], prob))
    return provenance, calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", required=True, help="per-read TSV of mambadna classify")
    ap.add_argument("--summary", required=True, help="classify's --summary report")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    provenance, calls = read_calls(a.calls)
    if not calls:
        sys.exit(f"[E::report] {a.calls}: no calls")
    if os.path.getsize(a.summary) == 0:
        sys.exit(f"[E::report] {a.summary}: empty summary")
    truths = sorted({t for t, _, _ in calls})
    predicted = truths + sorted({p for _, p, _ in calls} - set(truths))
    rows = []
    for species in truths + ["all"]:
        mine = [c for c in calls if species in ("all", c[0])]
        correct = sum(1 for t, p, _ in mine if t == p)
        mean_prob = sum(pr for _, _, pr in mine) / len(mine)
        counts = [sum(1 for _, p, _ in mine if p == q) for q in predicted]
        rows.append([species, len(mine), correct, f"{correct / len(mine):.4f}", f"{mean_prob:.4f}"] + counts)
    out_dir = os.path.dirname(os.path.abspath(a.output))
    with tempfile.NamedTemporaryFile("w", dir=out_dir, prefix=".report.", delete=False) as f:
        f.write("# mambadna workflow report (pipelines/snakemake/scripts/report.py)\n")
        f.write(f"# calls: {a.calls}\n# summary: {a.summary}\n")
        for line in provenance:
            f.write(f"# calls {line[1:].lstrip()}\n")
        f.write("\t".join(["species", "reads", "correct", "accuracy", "mean_prob"]
                          + [f"called_{q}" for q in predicted]) + "\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    os.replace(f.name, a.output)
    print(f"[M::report] {len(calls)} reads, accuracy {rows[-1][3]}", file=sys.stderr)


if __name__ == "__main__":
    main()
