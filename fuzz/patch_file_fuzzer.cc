// Fuzzes parse_patch(), the reader of patch files (src/patch/patch_file.cc).
//
// Each input is parsed twice: as it is, and with the header's SHA-256
// recomputed, so that mutations reach the manifest and layout checks behind
// the checksum instead of stopping at it. A file the parser accepts must be
// internally consistent (every range inside the image) and must survive a
// round trip through serialize_patch().
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "arch/x86_64/relocation.h"
#include "common/error.h"
#include "fuzz_check.h"
#include "patch/patch.h"

namespace {

constexpr size_t kHeaderSize = 56;

void check_accepted(const graft::Patch& p) {
  using graft::fuzz::require;
  const auto& L = p.layout;
  require(p.image.size() == L.file_size(), "image size differs from the layout");
  require(!p.functions.empty(), "accepted a patch without functions");
  for (const auto& f : p.functions) {
    require(f.replacement_offset < L.code_size, "replacement outside the code");
    require(f.replacement_size <= L.code_size - f.replacement_offset, "replacement overruns the code");
    require(f.size >= 5 && f.address + f.size > f.address, "bad function size accepted");
  }
  for (const auto& r : p.relocations) {
    size_t width = graft::arch::relocation_width(r.type);
    require(width != 0, "unsupported relocation accepted");
    require(r.offset <= p.image.size() && width <= p.image.size() - r.offset,
            "relocation outside the image");
    require(r.external >= -1 && r.external < static_cast<int64_t>(p.externals.size()),
            "relocation to an unknown external");
  }
  // The model is valid input for the writer, and what it writes reads back.
  graft::Bytes again = graft::serialize_patch(p);
  graft::Patch back = graft::parse_patch(again, "round-trip");
  require(back.functions.size() == p.functions.size() &&
              back.relocations.size() == p.relocations.size() && back.image == p.image,
          "round trip changed the patch");
}

void parse(std::span<const uint8_t> in) {
  try {
    check_accepted(graft::parse_patch(in, "fuzz.graft"));
  } catch (const graft::Error&) {
    // Refused with a message: what the parser must do with bad input.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  parse(in);
  if (size >= kHeaderSize) {
    graft::Bytes fixed(data, data + size);
    // The checksum covers manifest and image, not a signature trailer; the
    // sizes in the header say where those end.
    uint64_t manifest, image;
    uint32_t m32;
    std::memcpy(&m32, data + 12, 4);
    std::memcpy(&image, data + 16, 8);
    manifest = m32;
    uint64_t body_end = size;
    if (manifest <= size && image <= size && kHeaderSize + manifest + image <= size)
      body_end = kHeaderSize + manifest + image;
    graft::Bytes digest = graft::from_hex(
        graft::sha256_hex(std::span<const uint8_t>(fixed).subspan(kHeaderSize, body_end - kHeaderSize)),
        "digest");
    std::memcpy(fixed.data() + 24, digest.data(), 32);
    parse(fixed);
  }
  return 0;
}
