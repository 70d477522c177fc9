#!/usr/bin/python
# -*- coding: utf-8 -*-
DOCUMENTATION = r"""
module: graft_sync
short_description: Apply the host's stored graft patches to every process that lacks them
description:
  - Runs C(graft sync) (idempotent); C(changed) when a patch was applied to a process.
  - In check mode runs C(graft status) instead and reports C(changed) when a process is not patched.
  - Fails when a process could not be patched (the result lists it and why).
options:
  tags: {description: Roll-out tags this host takes (default the host configuration's)., type: list, elements: str, default: []}
  model: {description: Consistency model (stop, hybrid, lazy)., type: str, default: stop, choices: [stop, hybrid, lazy]}
  timeout: {description: Seconds each apply may wait., type: float, default: 10}
  policy: {description: Policy file., type: path}
  graft: {description: The graft binary., type: str, default: graft}
  store: {description: Store directory., type: path}
  config: {description: Host configuration file., type: path}
"""
RETURN = r"""
sync: {description: The JSON of graft sync (check mode, graft status)., returned: always, type: dict}
failed_processes: {description: pid, command, patch and error of each process that could not be patched., returned: always, type: list}
"""
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.graft.fleet.plugins.module_utils.graft_cli import COMMON_SPEC, common_args, graft_json


def main():
    spec = dict(COMMON_SPEC)
    spec.update(
        tags=dict(type="list", elements="str", default=[]),
        model=dict(type="str", default="stop", choices=["stop", "hybrid", "lazy"]),
        timeout=dict(type="float", default=10),
        policy=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    args = common_args(module)
    for t in p["tags"]:
        args += ["--tag", t]
    if p["policy"]:
        args += ["--policy", p["policy"]]
    if module.check_mode:
        _, doc, _ = graft_json(module, ["status"] + args, ok_codes=(0, 1))
        pending = sum(x["not_patched"] for x in doc["patches"] if x["standing"] == "applicable")
        module.exit_json(changed=pending > 0, sync=doc, failed_processes=[])
    rc, doc, err = graft_json(module, ["sync"] + args + ["--model", p["model"], "--timeout", str(p["timeout"])],
                              ok_codes=(0, 1))
    failed = [dict(pid=r["pid"], command=r["command"], patch=r["patch"], error=r["error"])
              for r in doc["results"] if not r["ok"]]
    if rc != 0:
        module.fail_json(msg="graft sync left %d process(es) unpatched%s" % (
            len(failed), "; " + "; ".join(doc["problems"]) if doc["problems"] else ""),
            changed=doc["changed"], sync=doc, failed_processes=failed)
    module.exit_json(changed=doc["changed"], sync=doc, failed_processes=failed)


if __name__ == "__main__":
    main()
