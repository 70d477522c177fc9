#!/usr/bin/env bash
# docs/graft.1 documents every option each subcommand's --help shows, and
# nothing more, with the default --help shows.
source "$(dirname "$0")/common.sh"

man=$REPO_ROOT/docs/graft.1
for cmd in build info keygen sign apply list revert recover; do
  "$GRAFT" "$cmd" --help >"$T/$cmd.help" || fail "graft $cmd --help failed"
done
"$PYTHON" - "$man" "$T" <<'PY' || fail "docs/graft.1 and --help disagree (above)"
import re, sys
man, tmp = sys.argv[1], sys.argv[2]
text = open(man).read().replace("\\-", "-")
# Each ".SS NAME" section up to the next .SS or .SH; "build --from-diff" counts as build.
sections = {}
for m in re.finditer(r"^\.SS (.+?)\n(.*?)(?=^\.S[SH] )", text, re.S | re.M):
    name = m.group(1).split()[0]
    sections[name] = sections.get(name, "") + m.group(2)
bad = []
for cmd in ["build", "info", "keygen", "sign", "apply", "list", "revert", "recover"]:
    doc = sections.get(cmd)
    if doc is None:
        bad.append(f"{cmd}: no .SS section")
        continue
    # Options documented: the .B/.BI line after each .TP.
    documented = set(re.findall(r"^\.TP\n\.BI? .*?(--[a-z-]+)", doc, re.M))
    helped, defaults = set(), {}
    for line in open(f"{tmp}/{cmd}.help"):
        m = re.match(r"\s+(?:-\w,)?(--[a-z-]+)(?:\s+\S+?(?:=(\S+))?)?(?:\s|$)", line)
        if m and m.group(1) not in ("--help",):
            helped.add(m.group(1))
            if m.group(2):
                defaults[m.group(1)] = m.group(2)
    for o in sorted(helped - documented):
        bad.append(f"{cmd}: {o} is in --help but not in graft.1")
    for o in sorted(documented - helped):
        bad.append(f"{cmd}: {o} is in graft.1 but not in --help")
    for o, d in defaults.items():
        entry = re.search(r"^\.TP\n\.BI? [^\n]*" + re.escape(o) + r"\b[^\n]*\n(.*?)(?=^\.TP|\Z)", doc, re.S | re.M)
        if entry and d not in entry.group(1).replace("\\fB", "").replace("\\fR", ""):
            bad.append(f"{cmd}: {o}: --help says default {d}, graft.1 does not")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
