"""Benchmark: loading the OpsMap files of one commit from a :class:`GitSource` mirror.

    PYTHONPATH=.:tests/support python benchmarks/git_load_bench.py [--files 400] [--rounds 5]

Commits ``--files`` small map files to a throw-away repo, fetches it into a mirror, then
times, ``--rounds`` times, listing the commit and reading every file's bytes
(``files_at`` then each ``read``), which is what applying a revision costs in git. Prints
min / median / max and the time per file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gitrepos import ALICE, BareRepo, Clone

from reconciler.git.mirror import GitSource


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsmap-git-load-") as tmp:
        root = Path(tmp)
        remote = BareRepo.create(root / "remote.git")
        work = Clone.create(remote, root / "work")
        files = {
            f"maps/m{i:04d}.yaml": f"name: m{i:04d}\ncomponents: []\n" for i in range(args.files)
        }
        work.commit("many maps", author=ALICE, files=files)
        head = work.push()
        source = GitSource(remote.url, cache_dir=root / "cache", timeout_s=60)
        try:
            source.fetch()
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                loaded = source.files_at(head)
                total = sum(len(file.read()) for file in loaded)
                times.append(time.perf_counter() - start)
                assert len(loaded) == args.files, len(loaded)
                assert total > 0
        finally:
            source.close()
    median = statistics.median(times)
    print(
        f"{args.files} files, {args.rounds} rounds: min {min(times) * 1000:.0f} ms, "
        f"median {median * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
        f"({median / args.files * 1e6:.0f} µs per file)"
    )


if __name__ == "__main__":
    main()
