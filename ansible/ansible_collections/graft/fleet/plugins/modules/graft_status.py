#!/usr/bin/python
# -*- coding: utf-8 -*-
DOCUMENTATION = r"""
module: graft_status
short_description: Which processes on the host still run code a stored graft patch fixes
description:
  - Runs C(graft status --json); never changes anything (C(changed) is always false).
  - C(vulnerable) lists the processes that map a patch's target and do not carry the patch.
options:
  tags: {description: Roll-out tags this host takes., type: list, elements: str, default: []}
  policy: {description: Policy file., type: path}
  prometheus: {description: Also write node_exporter's textfile here., type: path}
  graft: {description: The graft binary., type: str, default: graft}
  store: {description: Store directory., type: path}
  config: {description: Host configuration file., type: path}
"""
RETURN = r"""
status: {description: The JSON of graft status., returned: always, type: dict}
all_patched: {description: Every process mapping an applicable patch's target carries it., returned: always, type: bool}
vulnerable: {description: "pid, command, patch, state, reason of each process that does not carry a patch it should.", returned: always, type: list}
"""
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.graft.fleet.plugins.module_utils.graft_cli import COMMON_SPEC, common_args, graft_json


def main():
    spec = dict(COMMON_SPEC)
    spec.update(tags=dict(type="list", elements="str", default=[]), policy=dict(type="path"),
                prometheus=dict(type="path"))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    args = common_args(module)
    for t in p["tags"]:
        args += ["--tag", t]
    if p["policy"]:
        args += ["--policy", p["policy"]]
    if p["prometheus"] and not module.check_mode:
        args += ["--prometheus", p["prometheus"]]
    _, doc, _ = graft_json(module, ["status"] + args, ok_codes=(0, 1))
    vulnerable = [dict(pid=proc["pid"], command=proc["command"], patch=x["name"], patch_id=x["id"],
                       state=proc["state"], reason=proc["reason"])
                  for x in doc["patches"] for proc in x["processes"] if proc["state"] != "patched"]
    module.exit_json(changed=False, status=doc, all_patched=doc["all_patched"], vulnerable=vulnerable)


if __name__ == "__main__":
    main()
