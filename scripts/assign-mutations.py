#!/usr/bin/env python3
"""Mutation check for the assignor property tests.

Applies one deliberate bug at a time to the assignors, runs
`cargo test -p ruckus-core --lib assign`, prints which tests failed, and
restores the source. Every mutation must make its property fail; a line
saying NOTHING FAILED means a property test has gone blind. A line starting
with !! means the code moved and the mutation pattern needs updating.

Run from the repository root: python3 scripts/assign-mutations.py
"""
import shutil
import subprocess
muts = [
 ("exactly once: sticky fill drops the last free partition", "core/src/assign/sticky.rs",
  "            let g = free.next().expect(\"quotas sum to the partition count\");\n            owner[g as usize] = m as u32;\n            *c += 1;\n        }\n    }\n    for", "            let g = free.next().expect(\"quotas sum to the partition count\");\n            owner[g as usize] = if g == 0 { NONE } else { m as u32 };\n            *c += 1;\n        }\n    }\n    for"),
 ("only subscribed topics: round-robin ignores subscriptions", "core/src/assign/round_robin.rs",
  "                while !ix.subscribes(next, t) {", "                while false && !ix.subscribes(next, t) {"),
 ("max-min <= 1: sticky gives every extra slot to the first member", "core/src/assign/sticky.rs",
  "        if *c == min_quota {\n            let g = free.next()", "        if m == 0 || *c == min_quota {\n            let g = free.next()"),
 ("stickiness: sticky keeps nothing it owned", "core/src/assign/sticky.rs",
  "        let keep = have.min(quota);", "        let keep = 0u32.min(have.min(quota));"),
 ("cooperative: moving partitions handed over at once", "core/src/assign/sticky.rs",
  "if *now != NONE && *next != *now {", "if false && *now != NONE && *next != *now {"),
 ("stale generation: claims of every generation trusted", "core/src/assign/index.rs",
  "            if gen_key(m) != max_gen {", "            if false && gen_key(m) != max_gen {"),
 ("contested: the second claimant wins", "core/src/assign/index.rs",
  "                    _ => {\n                        owner[g] = NONE;", "                    _ => {\n                        owner[g] = mi as u32;"),
 ("no members: the empty-group guard removed", "core/src/assign/sticky.rs",
  "    if ix.members.is_empty() || ix.total_partitions() == 0 {\n        return owner;\n    }", ""),
 ("range balance: extra partitions to the last members and one too many", "core/src/assign/range.rs",
  "let len = per + u32::from((i as u32) < extra);", "let len = per + u32::from((i as u32) >= extra);"),
]
for name, path, old, new in muts:
    src = open(path).read()
    if old not in src:
        print(f"!! {name}: pattern not found"); continue
    shutil.copy(path, "target/mut.bak")
    open(path, "w").write(src.replace(old, new, 1))
    r = subprocess.run("cargo test -p ruckus-core --lib assign 2>&1", shell=True, capture_output=True, text=True, timeout=600)
    failed = sorted({l.split()[1] for l in r.stdout.splitlines() if l.startswith("test ") and l.endswith("FAILED")})
    if not failed:
        failed = [l for l in r.stdout.splitlines() if "panicked" in l or "error" in l][:2] or ["NOTHING FAILED"]
    print(f"- {name}: " + ", ".join(f.replace("assign::tests::", "") for f in failed), flush=True)
    shutil.copy("target/mut.bak", path)
