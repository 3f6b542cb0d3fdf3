#!/usr/bin/env python3
"""hub_interop.py — does huggingface_hub / transformers share the cache that
`nexus pull` fills? Not part of `make test` (it needs transformers, which the
CI machine lacks); run where transformers is installed:

    python3 tests/hub_interop.py --nexus-cache DIR --out DIR

DIR is an HF_HUB_CACHE that `nexus pull nexus-test/tiny-llama` and
`nexus pull nexus-test/tiny-data --repo-type dataset` filled from
tests/mock_hub.py. Checks, each printed as "ok ..." or "FAIL ...":

  1. offline (HF_HUB_OFFLINE=1), transformers loads nexus-test/tiny-llama from
     that cache and every tensor equals tests/fixtures/tiny-llama's;
     huggingface_hub's snapshot_download(local_files_only=True) returns the
     snapshot nexus printed; scan_cache_dir sees both repos, without warnings;
  2. online against a mock Hub started here, snapshot_download over the
     nexus cache fetches no file (it finds every blob nexus wrote);
  3. snapshot_download into an empty cache writes the same layout as nexus
     (same paths, same symlink targets, same refs); that cache is left in
     OUT/hf-cache.tar so `nexus pull` can be run over it in turn.
"""
import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)), flush=True)


def run_py(code, env):
    e = dict(os.environ)
    e.update(env)
    p = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def layout(cache):
    """Every path under cache (locks excluded) with its symlink target or size."""
    out = []
    for root, dirs, files in os.walk(cache):
        dirs[:] = [d for d in dirs if d != ".locks"]
        for f in files:
            p = os.path.join(root, f)
            rel = os.path.relpath(p, cache)
            if os.path.islink(p):
                out.append("%s -> %s" % (rel, os.readlink(p)))
            elif "/refs/" in "/" + rel:
                out.append("%s = %s" % (rel, open(p).read()))
            else:
                out.append("%s (%d bytes)" % (rel, os.path.getsize(p)))
    return sorted(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nexus-cache", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    nx = os.path.abspath(a.nexus_cache)
    os.makedirs(a.out, exist_ok=True)
    fixture = os.path.join(HERE, "fixtures", "tiny-llama", "model.safetensors")

    # 1. offline, from the nexus cache
    code = r'''
import sys, torch, transformers, huggingface_hub
from safetensors.torch import load_file
m = transformers.AutoModelForCausalLM.from_pretrained("nexus-test/tiny-llama", dtype=torch.bfloat16)
ref = load_file(sys.argv[1] if len(sys.argv) > 1 else "%s")
sd = m.state_dict()
bad = [k for k, v in ref.items() if k not in sd or not torch.equal(sd[k], v)]
print("TENSORS", len(ref), "BAD", bad)
print("SNAP", huggingface_hub.snapshot_download("nexus-test/tiny-llama", local_files_only=True))
print("DSNAP", huggingface_hub.snapshot_download("nexus-test/tiny-data", repo_type="dataset", local_files_only=True))
info = huggingface_hub.scan_cache_dir()
print("REPOS", sorted((r.repo_type, r.repo_id, r.nb_files) for r in info.repos))
print("WARNINGS", len(info.warnings), [str(w) for w in info.warnings])
print("VERSIONS", transformers.__version__, huggingface_hub.__version__)
''' % fixture
    rc, out, err = run_py(code, {"HF_HUB_CACHE": nx, "HF_HUB_OFFLINE": "1"})
    print(out, err[-3000:] if rc else "", flush=True)
    lines = dict(l.split(" ", 1) for l in out.splitlines() if " " in l)
    check("transformers loads the nexus-pulled model offline", rc == 0, err[-500:])
    check("every tensor equals the fixture's", lines.get("TENSORS", "").endswith("BAD []"), lines.get("TENSORS"))
    snaps = [d for d in os.listdir(os.path.join(nx, "models--nexus-test--tiny-llama", "snapshots"))]
    check("snapshot_download(local_files_only) finds nexus's snapshot",
          lines.get("SNAP", "").endswith("/snapshots/" + snaps[0]), lines.get("SNAP"))
    check("... and the dataset's", "datasets--nexus-test--tiny-data/snapshots/" in lines.get("DSNAP", ""),
          lines.get("DSNAP"))
    check("scan_cache_dir sees both repos", "'nexus-test/tiny-data'" in lines.get("REPOS", "") and
          "'nexus-test/tiny-llama'" in lines.get("REPOS", ""), lines.get("REPOS"))
    check("scan_cache_dir: no warnings", lines.get("WARNINGS", "").startswith("0 "), lines.get("WARNINGS"))

    # 2. and 3. online, against a mock Hub
    tmp = tempfile.mkdtemp()
    port_file, log = os.path.join(tmp, "port"), os.path.join(tmp, "hub.log")
    mock = subprocess.Popen([sys.executable, os.path.join(HERE, "mock_hub.py"), "--port-file", port_file,
                             "--log", log])
    try:
        for _ in range(200):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        ep = "http://127.0.0.1:%s" % open(port_file).read().strip()
        code = r'''
import huggingface_hub
print("SNAP", huggingface_hub.snapshot_download("nexus-test/tiny-llama"))
print("DSNAP", huggingface_hub.snapshot_download("nexus-test/tiny-data", repo_type="dataset"))
'''
        n0 = len(open(log).readlines())
        rc, out, err = run_py(code, {"HF_HUB_CACHE": nx, "HF_ENDPOINT": ep, "HF_HUB_DISABLE_XET": "1"})
        reqs = open(log).readlines()[n0:]
        print(out, err[-3000:] if rc else "", "".join(reqs), flush=True)
        check("online snapshot_download over the nexus cache", rc == 0, err[-500:])
        gets = [r for r in reqs if r.startswith("GET /") and "/api/" not in r]
        check("... fetches no file (finds every blob nexus wrote)", not gets, gets)

        hf = os.path.join(tmp, "hf-cache")
        rc, out, err = run_py(code, {"HF_HUB_CACHE": hf, "HF_ENDPOINT": ep, "HF_HUB_DISABLE_XET": "1"})
        print(out, err[-3000:] if rc else "", flush=True)
        check("snapshot_download into an empty cache", rc == 0, err[-500:])
        ln, lh = layout(nx), layout(hf)
        open(os.path.join(a.out, "layout-nexus.txt"), "w").write("\n".join(ln) + "\n")
        open(os.path.join(a.out, "layout-hf.txt"), "w").write("\n".join(lh) + "\n")
        check("huggingface_hub writes the layout nexus writes", ln == lh,
              "\n  only nexus: %s\n  only hf: %s" % (sorted(set(ln) - set(lh)), sorted(set(lh) - set(ln))))
        if os.path.isdir(hf):
            with tarfile.open(os.path.join(a.out, "hf-cache.tar"), "w") as t:
                t.add(hf, arcname="hf-cache")
    finally:
        mock.kill()
    print("%d passed, %d failed" % (sum(results), len(results) - sum(results)))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
