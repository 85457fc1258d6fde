"""Execute the book's notebooks two at a time into Jupyter Book's execution cache.

`make book` runs this before `jupyter-book build`: the build (`execute_notebooks: cache` in _config.yml) then finds
each notebook executed and reads it from the cache instead of running the notebooks one after another. The cache is
jupyter-cache's, at the path _config.yml names, and the execution is jupyter-cache's own worker (the notebook's
folder as its working directory, as the build runs it); only the scheduling is here: one notebook per task, the
longest first where an earlier build measured it (else in the book's order), so the workers finish together.
A notebook that fails here is not cached: the build then runs it again itself and reports the error as it always
has. A notebook whose code is unchanged since its cached run is not run again.

Usage: python tools/execute_book.py [--workers N] [--timeout S]"""
import argparse, multiprocessing, os, sys, time
from pathlib import Path
import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData
from browser_check import toc_pages  # tools/, beside this file

ROOT = Path(__file__).resolve().parents[1]


def toc_notebooks() -> list[Path]:
    "The notebooks of _toc.yml, in the book's order (the pages browser_check.py reads)."
    return [ROOT / f"{doc}.ipynb" for doc, _ in toc_pages()]


def last_seconds(cache) -> dict:
    "Each notebook's execution time in its latest cached run (an earlier build), by path."
    seen = {}
    for r in sorted(cache.list_cache_records(), key=lambda r: r.created):
        seen[r.uri] = r.data.get('execution_seconds', 0.0)
    return seen


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    cfg = yaml.safe_load((ROOT / '_config.yml').read_text())['execute']
    ap.add_argument('--timeout', type=int, default=cfg.get('timeout', 30))
    a = ap.parse_args(argv)
    if a.workers < 1: ap.error(f'--workers must be an integer >= 1, got {a.workers}')
    cache = get_cache(str(ROOT / cfg['cache']))
    book = [str(nb) for nb in toc_notebooks()]
    for nb in book: cache.add_nb_to_project(nb)
    todo = cache.list_unexecuted(book)
    took = last_seconds(cache)
    todo.sort(key=lambda r: -took.get(r.uri, 0.0))  # stable: the book's order where unmeasured
    print(f"{len(todo)} notebook(s) to execute, {a.workers} at a time", flush=True)
    start, failed = time.time(), []
    work = [ProcessData(r.pk, r.uri, cache, a.timeout, False) for r in todo]
    with multiprocessing.Pool(a.workers) as pool:
        for code, uri in pool.imap_unordered(ExecutionWorkerLocalMProc(), work, chunksize=1):
            name = Path(uri).name
            if code == 0: print(f"  {name}: executed", flush=True)
            else: failed.append(name); print(f"  {name}: failed (the build runs it again and says why)")
    print(f"executed {len(todo) - len(failed)} of {len(todo)} in {time.time() - start:.0f} s")
    return 0  # a failure is the build's to report, with its traceback


if __name__ == '__main__':
    sys.exit(main())
