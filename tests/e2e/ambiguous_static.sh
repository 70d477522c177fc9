#!/usr/bin/env bash
# A static function whose name exists in two source files (a.c and b.c each
# have `static int parse'): GRAFT_REPLACE(parse, ...) is refused as ambiguous,
# naming both files; GRAFT_REPLACE_LOCAL(parse, "b.c", ...) patches b.c's only.
source "$(dirname "$0")/common.sh"

cc "$PROGRAMS/twofiles/a.c" "$PROGRAMS/twofiles/b.c" "$PROGRAMS/twofiles/main.c" -o "$T/parse"
n=$(nm "$T/parse" | grep -c ' t parse$' || true)
[[ $n -eq 2 ]] || fail "expected two local symbols \`parse' in the target, found $n"

cat >"$T/ambiguous.c" <<'C'
#include <graft/patch.h>
static int new_parse(const char *s) { (void)s; return 999; }
GRAFT_REPLACE(parse, new_parse);
C
graft_fails any build --from-source "$T/ambiguous.c" --target "$T/parse" -o "$T/ambiguous.graft"
[[ $GRAFT_ERROR == *ambiguous* ]] || fail "the error does not say ambiguous: $GRAFT_ERROR"
[[ $GRAFT_ERROR == *a.c* && $GRAFT_ERROR == *b.c* ]] ||
  fail "the error does not name both files: $GRAFT_ERROR"
[[ $GRAFT_ERROR == *GRAFT_REPLACE_LOCAL* ]] ||
  fail "the error does not point to GRAFT_REPLACE_LOCAL: $GRAFT_ERROR"
[[ ! -e $T/ambiguous.graft ]] || fail "a patch file was written anyway"

cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_parse(const char *s) { (void)s; return 999; }
GRAFT_REPLACE_LOCAL(parse, "b.c", new_parse);
C
build_patch "$T/fix.c" "$T/parse" "$T/fix.graft"
graft_ok info "$T/fix.graft" --json
[[ $(json_get '[f["file"] for f in j["functions"]]' <"$T/graft.out") == '["b.c"]' ]] ||
  fail "the patch does not replace b.c's parse"

# A file that has no `parse' is refused too, and a file name is matched
# whole (basename), never as a suffix of another one.
cat >"$T/nofile.c" <<'C'
#include <graft/patch.h>
static int new_parse(const char *s) { (void)s; return 999; }
GRAFT_REPLACE_LOCAL(parse, "main.c", new_parse);
C
graft_fails any build --from-source "$T/nofile.c" --target "$T/parse" -o "$T/nofile.graft"
[[ $GRAFT_ERROR == *parse* ]] || fail "the error does not name parse: $GRAFT_ERROR"
sed 's/"b.c"/"xb.c"/' "$T/fix.c" >"$T/suffix.c"
graft_fails any build --from-source "$T/suffix.c" --target "$T/parse" -o "$T/suffix.graft"

start_target p "$T/parse"
expect p call "103 203"
apply_ok "$T/fix.graft" "${TPID[p]}"
expect p call "103 999"
graft_ok revert fix --pid "${TPID[p]}"
expect p call "103 203"
assert_untouched "${TPID[p]}"
