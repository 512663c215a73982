"""DLP throughput on one core: the scanning engine over the labelled corpus's plain text,
against a plain single-alternation Python `re` scan with the same validators and context rules
in the same run; and the time to extract the text of a 25-page PDF (isolated process included).

    .venv/bin/python bench/dlp.py [--mb 8] [--repeat 5] [--pdf-runs 20]

`mb_per_s` is the best engine available here (Hyperscan when installed); `vs_re` is its
throughput divided by the alternation baseline's. The pure-Python fallback (`re`, one pass per
pattern) is reported too. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from sealgate.dlp.engine import Engine, Scanner, best_engine
from sealgate.dlp.extract import extract
from sealgate.lab import documents
from sealgate.lab.dlp_corpus import corpus_text


def throughput(scanner: Scanner, text: str, size: int, repeat: int) -> tuple[float, int]:
    """MB/s of the best of `repeat` runs, and how many findings a run gives."""
    best = float("inf")
    count = 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = len(scanner.scan(text))
        best = min(best, time.perf_counter() - started)
    return size / 1e6 / best, count


def pdf_milliseconds(runs: int) -> tuple[float, int]:
    line = "Patient follow-up notes, account review and routine correspondence. "
    pages = [f"Page {n}\n" + (line * 45) for n in range(1, 26)]
    pages[-1] += "\nSSN 123-45-6789"
    data = documents.pdf(pages)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        (result,) = extract("report.pdf", "application/pdf", data)
        timings.append((time.perf_counter() - started) * 1000)
        assert result.text is not None and "123-45-6789" in result.text, result
    return statistics.median(timings), len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=8.0, help="corpus size in MB")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--pdf-runs", type=int, default=20)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core, as the figure is stated
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})

    text = corpus_text(seed=1, size_bytes=int(args.mb * 1e6))
    size = len(text.encode("utf-8"))
    print(f"corpus: {size / 1e6:.1f} MB of generated email text")
    engine = best_engine()
    results = {}
    for name in dict.fromkeys([engine, Engine.RE, Engine.ALTERNATION]):
        scanner = Scanner(engine=name)
        scanner.scan(text[:10000])  # warm up: regex caches, Hyperscan scratch space
        results[name] = throughput(scanner, text, size, args.repeat)
        print(f"{name:>12}: {results[name][0]:8.1f} MB/s, {results[name][1]} findings")
    baseline = results[Engine.ALTERNATION][0]
    best = results[engine][0]
    ratio = best / baseline
    print(f"{engine} vs single-alternation re: {ratio:.1f}x")
    pdf_ms, pdf_bytes = pdf_milliseconds(args.pdf_runs)
    print(f"25-page PDF ({pdf_bytes / 1024:.0f} KB): {pdf_ms:.1f} ms median to extract")
    print(json.dumps({
        "engine": str(engine), "mb_per_s": round(best, 1), "vs_re": round(ratio, 2),
        "re_fallback_mb_per_s": round(results[Engine.RE][0], 1),
        "baseline_mb_per_s": round(baseline, 1), "corpus_mb": round(size / 1e6, 2),
        "findings": results[engine][1], "pdf_25_pages_ms": round(pdf_ms, 1)}))


if __name__ == "__main__":
    main()
