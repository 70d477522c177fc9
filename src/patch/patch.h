// The validated in-memory model of a patch file. Everything behind this type
// may trust it: PatchFile::parse checks every offset, size and index.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "arch/x86_64/instruction.h"
#include "common/address_range.h"
#include "common/hash.h"

namespace graft {

// A symbol the patch code refers to but does not define.
struct ExternalSymbol {
  enum class Where { Target, Library };
  std::string name;
  Where where = Where::Library;
  std::string file;    // Target: the source file of a static symbol, or ""
  uint64_t value = 0;  // Target: link-time address in the target object
};

// One relocation of the patch image. It refers either to another place of
// the image (external < 0) or to an ExternalSymbol.
struct Relocation {
  uint64_t offset = 0;  // in the image
  uint32_t type = 0;    // ELF relocation type of the architecture
  int64_t addend = 0;
  int64_t external = -1;
  uint64_t image_offset = 0;  // when external < 0
};

struct FunctionReplacement {
  std::string symbol;     // as in the target's symbol table (mangled for C++)
  std::string demangled;  // "" for C
  std::string file;       // source file of a static function, or ""
  uint64_t address = 0;   // link-time address in the target object
  uint64_t size = 0;
  std::string sha256;     // of the function's original bytes
  std::vector<AddressRange> cold_parts;  // e.g. `f.cold`, link-time addresses
  std::string replacement;  // name of the replacement in the patch source
  uint64_t replacement_offset = 0;  // in the image
  uint64_t replacement_size = 0;
  // The entry thunk the redirect jumps to instead of the replacement, when
  // callers of the original keep values in call-clobbered registers it
  // never writes (GCC -fipa-ra; arch/x86_64/entry_thunk.h).
  struct Thunk {
    uint64_t offset = 0, size = 0;     // code, in the image
    arch::RegisterSet preserved = 0;   // what it saves and restores
    uint64_t stack_argument_bytes = 0; // what it copies for the replacement
  };
  std::optional<Thunk> thunk;
  // Where the redirect jumps.
  uint64_t entry_offset() const { return thunk ? thunk->offset : replacement_offset; }
};

// A function of the patch run inside the target at a moment of apply or
// revert (GRAFT_PRE_PATCH and friends in graft/patch.h).
struct Callback {
  enum class Kind { PrePatch, PostPatch, PreUnpatch, PostUnpatch };
  Kind kind = Kind::PrePatch;
  std::string function;  // its name in the patch source
  uint64_t offset = 0;   // in the image (code)
};
const char* callback_kind_name(Callback::Kind kind);  // "pre_patch", ...

// Image layout: [code | rodata | data | bss], each part page-aligned.
// libgcc's `struct object' is 7 words; room for later versions.
constexpr uint64_t kUnwindObjectSize = 128;

struct ImageLayout {
  uint64_t code_size = 0;
  uint64_t rodata_offset = 0, rodata_size = 0;
  uint64_t data_offset = 0, data_size = 0;
  uint64_t bss_size = 0;
  // Registration of the patch's unwind information with the process's
  // unwinder (libgcc), so that C++ exceptions pass through its functions:
  // the image offsets of .eh_frame (ended by a zero word) and of the
  // kUnwindObjectSize bytes of bss libgcc keeps it in. 0: none.
  uint64_t eh_frame = 0, unwind_object = 0;
  uint64_t file_size() const { return data_offset + data_size; }  // bytes stored
  uint64_t memory_size() const;  // page-rounded size mapped in the target
};

struct TargetIdentity {
  std::string path;      // informational: where the patch was built against
  std::string build_id;  // hex GNU build-id: what apply matches
  bool position_independent = true;  // ET_DYN
};

// The optional signature trailer of a patch file, as read: graft::verify_
// signature() (src/security) says whether it is valid, a policy whether the
// key is trusted.
struct PatchSignature {
  Bytes public_key;    // Ed25519, 32 bytes
  Bytes signature;     // Ed25519, 64 bytes
  std::string signer;  // the name in the signer's key files
};

struct Patch {
  std::string name;
  TargetIdentity target;
  ImageLayout layout;
  Bytes image;  // layout.file_size() bytes
  std::vector<FunctionReplacement> functions;
  std::vector<ExternalSymbol> externals;
  std::vector<Relocation> relocations;
  std::vector<Callback> callbacks;  // at most one of each kind
  // Atomic replace: applying it reverts every earlier patch of the same
  // target object in the same switch (GRAFT_CUMULATIVE, build --replace).
  bool cumulative = false;

  const Callback* callback(Callback::Kind kind) const {
    for (const auto& c : callbacks)
      if (c.kind == kind) return &c;
    return nullptr;
  }

  // Said by the builder to the patch author; not stored in the file.
  std::vector<std::string> warnings;
  std::vector<std::string> notes;  // what the builder did that the author should know

  std::optional<PatchSignature> signature;

  // Content hash of the serialized file without its signature trailer (so
  // signing keeps the id); its first 12 hex digits are the id.
  std::string sha256;
  std::string id() const { return sha256.substr(0, 12); }
};

// The on-disk format: "GRAFTPF1", u32 format version, u32 manifest size,
// (version 3 when a function has an entry thunk, 2 when the patch has
// callbacks or is cumulative, so that an older graft refuses it instead of
// silently ignoring them; 1 otherwise),
// u64 image size, SHA-256 of manifest and image, the manifest (JSON), the
// image; then, if signed, a trailer: "GRAFTSIG", u32 version, u32 signer
// name size, the Ed25519 public key (32) and signature (64), the name.
Bytes serialize_patch(const Patch& patch);  // unsigned
Patch parse_patch(std::span<const uint8_t> file, const std::string& name);
Patch load_patch_file(const std::string& path);
// A well-formed patch file without its signature trailer (if any): the bytes
// the id and a signature cover.
std::span<const uint8_t> unsigned_part(std::span<const uint8_t> file, const std::string& name);
// `unsigned_file` followed by the trailer of `signature`.
Bytes append_signature(std::span<const uint8_t> unsigned_file, const PatchSignature& signature);
// The signature block append_signature() writes: nullopt for no bytes;
// throws graft::Error naming `name` for anything but exactly one
// well-formed block.
std::optional<PatchSignature> parse_signature_block(std::span<const uint8_t> block, const std::string& name);

}  // namespace graft
