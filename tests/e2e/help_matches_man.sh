#!/usr/bin/env bash
# docs/graft.1 has a section for every subcommand `graft --help` lists and
# documents every option each one's --help shows (its own subcommands'
# too: store add, ...), and nothing more, with the default --help shows.
source "$(dirname "$0")/common.sh"

man=$REPO_ROOT/docs/graft.1
subcommands() { sed -n '/^Subcommands:/,$p' | awk 'NR > 1 && /^  [a-z]/ { print $1 }'; }
commands=$("$GRAFT" --help | subcommands)
[[ $(wc -w <<<"$commands") -ge 12 ]] || fail "graft --help lists too few subcommands: $commands"
for cmd in $commands; do
  "$GRAFT" "$cmd" --help >"$T/$cmd.help" || fail "graft $cmd --help failed"
  for sub in $("$GRAFT" "$cmd" --help | subcommands); do
    "$GRAFT" "$cmd" "$sub" --help >>"$T/$cmd.help" || fail "graft $cmd $sub --help failed"
  done
done
echo "$commands" >"$T/commands"
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
for cmd in open(f"{tmp}/commands").read().split():
    doc = sections.get(cmd)
    if doc is None:
        bad.append(f"{cmd}: no .SS section")
        continue
    # Options documented: the .B/.BI line after each .TP.
    # (every option named on the entry's first line: ".BR --store , --config").
    documented = {o for head in re.findall(r"^\.TP\n\.B[IR]? ([^\n]*)", doc, re.M)
                  for o in re.findall(r"--[a-z][a-z-]*", head)}
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
