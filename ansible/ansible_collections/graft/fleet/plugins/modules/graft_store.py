#!/usr/bin/python
# -*- coding: utf-8 -*-
DOCUMENTATION = r"""
module: graft_store
short_description: Put a graft patch in (or take it out of) the host's patch store
description:
  - Adds a patch file already on the host (copy it there first, e.g. with M(ansible.builtin.copy))
    to the store with C(graft store add), which verifies it (format, the policy's signature rules,
    an installed target), or removes a stored patch.
  - Changes nothing in running processes; M(graft.fleet.graft_sync) (or the graft daemon) applies
    the store.
options:
  path: {description: Patch file on the host (state=present)., type: path}
  patch: {description: Stored patch id or name (state=absent; or to retag with state=present)., type: str}
  state: {description: present or absent., type: str, default: present, choices: [present, absent]}
  tag: {description: Roll-out tag ("" or omitted for every host)., type: str, default: ""}
  not_installed: {description: "What to do with a patch whose target is not installed on this host: skip (ok, unchanged) or fail.", type: str, default: skip, choices: [skip, fail]}
  policy: {description: Policy file (default /etc/graft/policy)., type: path}
  graft: {description: The graft binary., type: str, default: graft}
  store: {description: Store directory (default /var/lib/graft/patches)., type: path}
  config: {description: Host configuration file., type: path}
"""
RETURN = r"""
patch: {description: The stored patch as graft store list --json describes it (null if none)., returned: always, type: dict}
skipped_reason: {description: Why a patch was not stored (its target is not installed here)., returned: when skipped, type: str}
"""
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.graft.fleet.plugins.module_utils.graft_cli import COMMON_SPEC, common_args, graft_json


def stored(module):
    _, doc, _ = graft_json(module, ["store", "list"] + common_args(module), ok_codes=(0, 1))
    return doc.get("patches", []) if doc else []


def main():
    spec = dict(COMMON_SPEC)
    spec.update(
        path=dict(type="path"),
        patch=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        tag=dict(type="str", default=""),
        not_installed=dict(type="str", default="skip", choices=["skip", "fail"]),
        policy=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_if=[("state", "absent", ("patch", "path"), True)])
    p = module.params
    policy = ["--policy", p["policy"]] if p["policy"] else []
    patches = stored(module)

    if p["path"] and module.check_mode and not os.path.exists(p["path"]):
        # In check mode the copy that would bring it here did not run.
        module.exit_json(changed=p["state"] == "present", patch=None, msg="%s is not on the host yet" % p["path"])
    if p["path"]:
        rc, info, _ = graft_json(module, ["info", p["path"]] + policy)
        ident = info["id"]
    else:
        ident = p["patch"]
    match = [s for s in patches if s["id"] == ident or s["sha256"].startswith(ident) or s["name"] == ident]

    if p["state"] == "absent":
        if not match:
            module.exit_json(changed=False, patch=None)
        if module.check_mode:
            module.exit_json(changed=True, patch=match[0])
        graft_json(module, ["store", "remove", match[0]["id"]] + common_args(module))
        module.exit_json(changed=True, patch=match[0])

    want_tag = p["tag"] or None
    if match and (match[0]["tag"] or None) == want_tag:
        module.exit_json(changed=False, patch=match[0])
    if match and not p["path"]:
        if module.check_mode:
            module.exit_json(changed=True, patch=match[0])
        _, doc, _ = graft_json(module, ["store", "tag", match[0]["id"], p["tag"]] + common_args(module))
        module.exit_json(changed=doc["changed"], patch=doc["patch"])
    if not p["path"]:
        module.fail_json(msg="no stored patch %s to retag, and no path to add" % ident)
    if module.check_mode:
        # What `store add` would refuse shows in `info`: a policy refusal.
        if info.get("policy_refusal"):
            module.fail_json(msg="the policy would refuse it: " + info["policy_refusal"])
        module.exit_json(changed=True, patch=match[0] if match else None)
    args = ["store", "add", p["path"]] + (["--tag", p["tag"]] if p["tag"] else []) + policy + common_args(module)
    rc, doc, err = graft_json(module, args, ok_codes=(0, 2, 3))
    if rc != 0:
        reason = (doc or {}).get("refused") or err.strip()
        if "is not installed here" in reason and p["not_installed"] == "skip":
            module.exit_json(changed=False, patch=None, skipped_reason=reason)
        module.fail_json(msg="graft store add refused %s: %s" % (p["path"], reason), rc=rc)
    module.exit_json(changed=doc["changed"], patch=doc["patch"])


if __name__ == "__main__":
    main()
