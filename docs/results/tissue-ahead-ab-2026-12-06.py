"""Interleaved A/B of whole `omicslens predict` processes: old checkout vs working tree."""
import os, resource, subprocess, sys, tempfile, time, statistics
slide = os.path.expanduser("~/.cache/omicslens-peer/slides/big/CMU-1-mirror-20k.svs")
PY = "/work/main/.venv/bin/python"
def cmd(src):
    boot = f"import sys; sys.path.insert(0, {src!r}); import omicslens; assert omicslens.__file__.startswith({src!r}), omicslens.__file__; sys.argv[0]='omicslens'; from omicslens.cli.entry import console; console()"
    return [PY, "-c", boot]
def run(src):
    out = tempfile.mkdtemp()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd(src) + ["predict", slide, "--model", "/tmp/exp/bundle", "--out", out + "/r", "--format", "csv,geojson"], check=True, env={**os.environ, "OMICSLENS_CACHE_DIR": out + "/c"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall
arms = {"old": "/tmp/old/src", "new": "/work/main/src"}
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
for a in arms.values(): run(a)  # warm-up
res = {k: [] for k in arms}
for r in range(rounds):
    for k, src in arms.items():
        res[k].append(run(src)); print(k, r, "cpu %.2f wall %.2f" % res[k][-1], flush=True)
for k, v in res.items():
    print(k, "median cpu %.2f wall %.2f" % (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)))
print("new/old wall %.3f" % (statistics.median(w for _, w in res["new"]) / statistics.median(w for _, w in res["old"])))
print("new/old cpu %.3f" % (statistics.median(c for c, _ in res["new"]) / statistics.median(c for c, _ in res["old"])))
