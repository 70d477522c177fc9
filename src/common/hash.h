// SHA-256 digests (libsodium) and hex encoding, used for function
// fingerprints, patch ids and build-ids.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace graft {

using Bytes = std::vector<uint8_t>;

std::string sha256_hex(std::span<const uint8_t> data);
std::string to_hex(std::span<const uint8_t> data);
// Throws graft::Error on malformed input; `what` names the field.
Bytes from_hex(const std::string& hex, const char* what);

}  // namespace graft
