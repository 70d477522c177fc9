#include "security/policy.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"

namespace graft {

namespace {

using json = nlohmann::json;

// A file that decides what graft trusts must not be changeable by others.
void check_owner(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) fail("{}: {}", path, errno_text(errno));
  if (st.st_uid != 0 && st.st_uid != geteuid())
    fail("{}: owned by uid {}, neither root nor the caller; refusing it", path, st.st_uid);
  if (st.st_mode & 022)
    fail("{}: writable by group or others (mode {:o}); refusing it", path, st.st_mode & 0777);
}

PublicKey trusted_key(const std::string& entry, const std::string& policy) {
  if (entry.rfind("graft-ed25519 ", 0) == 0) return parse_public_key(entry, policy + ": trusted key");
  check_owner(entry);
  return load_public_key(entry);
}

}  // namespace

Policy load_policy(const std::string& given) {
  std::string path = given;
  if (path.empty())
    if (const char* env = std::getenv("GRAFT_POLICY"); env && *env) path = env;
  bool named = !path.empty();
  if (!named) path = kDefaultPolicyPath;
  if (!named && access(path.c_str(), F_OK) != 0 && errno == ENOENT) return Policy{};

  check_owner(path);
  Policy p;
  p.source = path;
  json j = json::parse(read_text_file(path, 1 << 20), nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail("{}: not a JSON object", path);
  for (const auto& [key, value] : j.items()) {
    if (key == "require_signature") {
      if (!value.is_boolean()) fail("{}: `require_signature' must be true or false", path);
      p.require_signature = value.get<bool>();
    } else if (key == "trusted_keys") {
      if (!value.is_array()) fail("{}: `trusted_keys' must be a list", path);
      for (const auto& k : value) {
        if (!k.is_string()) fail("{}: `trusted_keys' holds a non-string", path);
        p.trusted_keys.push_back(trusted_key(k.get<std::string>(), path));
      }
    } else if (key == "audit_log") {
      if (!value.is_string()) fail("{}: `audit_log' must be a path or \"\"", path);
      p.audit_log = value.get<std::string>();
      p.audit_log_set = true;
      if (!p.audit_log.empty() && p.audit_log[0] != '/')
        fail("{}: `audit_log' must be an absolute path", path);
    } else {
      fail("{}: unknown setting `{}'", path, key);
    }
  }
  if (p.require_signature && p.trusted_keys.empty())
    fail("{}: `require_signature' needs at least one key in `trusted_keys'", path);
  return p;
}

std::string signer_of(const std::optional<PatchSignature>& signature) {
  if (!signature) return "";
  PublicKey k{signature->public_key, signature->signer};
  return fmt::format("{} (key {})", k.name, k.id());
}

std::string signer_of(const Patch& patch) { return signer_of(patch.signature); }

namespace {

// The same rules for patch files and kernel modules: `what` names it,
// `valid` says whether its signature (if any) verifies.
std::optional<std::string> refusal(const Policy& policy, const std::string& what,
                                   const std::optional<PatchSignature>& signature, bool valid) {
  if (!policy.require_signature) {
    // A signature that is present is still checked: a bad one is never
    // silently accepted.
    if (signature && !valid)
      return fmt::format("bad signature: {} is not signed by {} as it claims", what, signer_of(signature));
    return std::nullopt;
  }
  if (!signature)
    return fmt::format("unsigned: the policy {} requires a signature from a trusted key", policy.source);
  if (!valid)
    return fmt::format("bad signature: {} is not signed by {} as it claims (the file was changed "
                       "after signing, or the signature forged)",
                       what, signer_of(signature));
  for (const auto& k : policy.trusted_keys)
    if (k.key == signature->public_key) return std::nullopt;
  return fmt::format("unknown key: {} is signed by {}, which the policy {} does not trust", what,
                     signer_of(signature), policy.source);
}

}  // namespace

std::optional<std::string> refusal(const Policy& policy, const Patch& patch) {
  return refusal(policy, patch.name, patch.signature, patch.signature && signature_valid(patch));
}

std::optional<std::string> refusal(const Policy& policy, const SignedModule& module, const std::string& name) {
  return refusal(policy, name, module.signature, module.signature && module_signature_valid(module));
}

}  // namespace graft
