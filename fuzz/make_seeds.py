#!/usr/bin/env python3
"""Write the seed inputs of every fuzz target into fuzz/seeds/<target>/.

The seeds come from fixtures/acme and fixtures/invalid: their YAML files,
ZIPs of their trees (zip pack and zip export of the built binary, and plain
Python ZIPs of each invalid case), staging-edit bodies built from the acme
agent's fields, and plan files of acme-dev saved by `ferry plan --out`.
Usage: python3 fuzz/make_seeds.py [path/to/ferry]   (default target/debug/ferry)
`cargo fuzz cmin` then folds them, and what fuzzing found, into fuzz/corpus/.
"""

import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
FERRY = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/debug/ferry").resolve()


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def tree_zip(folder):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())
    return buf.getvalue()


def ferry(repo, *args):
    env = dict(os.environ, NO_COLOR="1")
    subprocess.run([str(FERRY), *args], cwd=repo, env=env, check=True, capture_output=True)


def yaml_seeds():
    for base in [ROOT / "fixtures/acme", ROOT / "fixtures/invalid"]:
        for p in sorted(base.rglob("*.yaml")):
            put("yaml_resource", p.read_bytes())


def zip_and_plan_seeds():
    for case in sorted((ROOT / "fixtures/invalid").iterdir()):
        if case.is_dir():
            data = tree_zip(case)
            put("zip_tree", data)
            put("zip_import_plan", data)
    with tempfile.TemporaryDirectory() as tmp:
        repo = pathlib.Path(tmp) / "repo"
        shutil.copytree(ROOT / "fixtures/acme", repo)
        dev = repo / "tenants/acme-dev"
        ferry(repo, "tenant", "create", "acme-dev", "--environment", "dev")
        ferry(repo, "plan", "--tenant", "acme-dev", "--out", "create.json")
        ferry(repo, "apply", "--tenant", "acme-dev", "--yes")
        for agent in ["support-bot", "refund-bot", "web-research-bot"]:
            ferry(repo, "zip", "export", "--tenant", "acme-dev", "--agent", agent, "--out", f"{agent}.zip")
        ferry(repo, "zip", "pack", "tenants/acme-dev", "--out", "pack.zip")
        agent = dev / "agents/support-bot.yaml"
        agent.write_text(agent.read_text().replace("temperature: 0.2", "temperature: 0.4"))
        (dev / "agents/onboarding-bot.yaml").unlink()
        ferry(repo, "plan", "--tenant", "acme-dev", "--prune", "--out", "update.json")
        for name in ["support-bot.zip", "refund-bot.zip", "web-research-bot.zip", "pack.zip"]:
            data = (repo / name).read_bytes()
            put("zip_tree", data)
            put("zip_import_plan", data)
        for name in ["create.json", "update.json"]:
            put("plan_file", (repo / name).read_bytes())
        small = json.loads((repo / "update.json").read_text())
        small["actions"] = small["actions"][:1]
        put("plan_file", json.dumps(small))


def staging_seeds():
    bodies = [
        (0, {"description": "changed", "model": {"temperature": 0.3}}),
        (0, {"name": "support-bot-2", "tools": ["crm-lookup", "builtin/web-search"]}),
        (0, {"subAgents": ["refund-bot"], "knowledgeBases": ["policies-kb"]}),
        (0, {"guardrails": None, "tags": ["a", "b"]}),
        (1, {"name": "closing", "text": "Bye."}),
        (2, {"instructions": "You are Acme's support assistant."}),
        (3, {"corpora": ["product-kb", "billing-kb"]}),
        (4, ["policies-kb"]),
        (5, {"description": "the policies"}),
        (6, {"config": {"defaultGroup": "tier-1-support"}}),
        (7, [{"name": "pii-redaction", "enabled": False}, {"name": "new-one", "config": {"a": 1}}]),
        (8, {"access": "private"}),
        (9, {"tags": ["support", "tier-2"]}),
    ]
    for selector, body in bodies:
        put("staging_body", bytes([selector]) + json.dumps(body).encode())


if __name__ == "__main__":
    shutil.rmtree(SEEDS, ignore_errors=True)
    yaml_seeds()
    zip_and_plan_seeds()
    staging_seeds()
    for t in sorted(SEEDS.iterdir()):
        print(t.name, len(list(t.iterdir())))
