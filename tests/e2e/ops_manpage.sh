#!/usr/bin/env bash
# The man page (docs/graft.1, shipped in the .deb) is kept in sync with
# --help: every subcommand `graft --help` lists has a section (.SS NAME),
# and every long option its --help lists is described in that section.
source "$(dirname "$0")/common.sh"

MAN=$REPO_ROOT/docs/graft.1
[[ -f $MAN ]] || fail "no $MAN"
"$PYTHON" - "$GRAFT" "$MAN" <<'PY' || fail "docs/graft.1 and --help disagree (above)"
import re, subprocess, sys
graft, man = sys.argv[1], open(sys.argv[2]).read()

def help_of(*cmd):
    return subprocess.run([graft, *cmd, "--help"], capture_output=True, text=True).stdout

def subcommands(text):
    part = text.split("Subcommands:", 1)
    return re.findall(r"^  (\w[\w-]*)\s", part[1], re.M) if len(part) == 2 else []

def section(name):
    # `.SS build' and `.SS build \-\-from\-diff' both describe build.
    found = re.findall(r"^\.SS %s(?: [^\n]*)?\n(.*?)(?=^\.S[SH] )" % re.escape(name), man, re.M | re.S)
    return "\n".join(found) if found else None

problems = []
checked = 0
for sub in subcommands(help_of()):
    text = section(sub)
    if text is None:
        problems.append(f"graft {sub}: no `.SS {sub}' section in the man page")
        continue
    helps = [help_of(sub)] + [help_of(sub, s) for s in subcommands(help_of(sub))]
    for h in helps:
        for opt in sorted(set(re.findall(r"--([a-z][a-z-]*)", h.split("Options:", 1)[-1]))):
            if opt in ("help",):
                continue
            checked += 1
            if "\\-\\-" + opt.replace("-", "\\-") not in text:
                problems.append(f"graft {sub}: --{opt} (in --help) is not described in `.SS {sub}'")
print(f"{checked} options of {len(subcommands(help_of()))} subcommands checked")
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
