# Runs graft on the managed host and reads its --json output.
import json


def graft_json(module, args, ok_codes=(0,)):
    """Runs `graft ARGS --json`; returns (exit status, parsed JSON or None, stderr)."""
    cmd = [module.params["graft"]] + args + ["--json"]
    rc, out, err = module.run_command(cmd)
    doc = None
    if out.strip():
        try:
            doc = json.loads(out)
        except ValueError:
            module.fail_json(msg="graft printed something that is not JSON", cmd=cmd, rc=rc, stdout=out, stderr=err)
    if rc not in ok_codes and doc is None:
        module.fail_json(msg="graft failed: " + (err.strip() or out.strip()), cmd=cmd, rc=rc, stderr=err)
    return rc, doc, err


def common_args(module):
    """--store / --config / --policy from the module's parameters."""
    args = []
    for name in ("store", "config"):
        if module.params.get(name):
            args += ["--" + name, module.params[name]]
    return args


COMMON_SPEC = dict(
    graft=dict(type="str", default="graft"),
    store=dict(type="str"),
    config=dict(type="str"),
)
