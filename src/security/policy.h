// What this machine's operators require before graft changes a process:
// /etc/graft/policy, or the file named by --policy or $GRAFT_POLICY. A JSON
// object:
//
//   {
//     "require_signature": true,
//     "trusted_keys": ["/etc/graft/keys/release.pub",
//                      "graft-ed25519 3b6a...c1 ops team"],
//     "audit_log": "/var/log/graft/audit.log"
//   }
//
// Every field is optional; an unknown field is an error (a typo must not
// silently weaken the policy). Without a policy file, no signature is
// required and the audit log is the default one. The policy file and key
// files must belong to root or the caller and be writable by no one else.
//
// The policy binds graft, not the caller: whoever may trace a process could
// change it without graft (see docs/architecture.md, Security).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "patch/patch.h"
#include "security/module_signature.h"
#include "security/signing.h"

namespace graft {

constexpr const char* kDefaultPolicyPath = "/etc/graft/policy";
constexpr const char* kDefaultAuditLog = "/var/log/graft/audit.log";

struct Policy {
  std::string source;  // the file it was read from; "" for the built-in default
  bool require_signature = false;
  std::vector<PublicKey> trusted_keys;
  std::string audit_log = kDefaultAuditLog;  // "" for none
  bool audit_log_set = false;                // named by the policy file
};

// `path` if given, else $GRAFT_POLICY, else /etc/graft/policy (whose absence
// means the default policy; a named file must exist).
Policy load_policy(const std::string& path);

// nullopt when the policy lets this patch be applied; otherwise the reason:
// unsigned, bad signature, or signed by a key the policy does not trust.
std::optional<std::string> refusal(const Policy& policy, const Patch& patch);

// The same for a kernel module (graft build --kernel) called `name`.
std::optional<std::string> refusal(const Policy& policy, const SignedModule& module, const std::string& name);

// "NAME (key ID)" of the patch's signer, with "" for an unsigned patch.
std::string signer_of(const Patch& patch);
std::string signer_of(const std::optional<PatchSignature>& signature);

}  // namespace graft
