#include "loader/runtime_binding.h"

#include <sys/mman.h>
#include <unistd.h>

#include <ctime>

#include "arch/x86_64/relocation.h"
#include "common/error.h"
#include "loader/placement.h"
#include "loader/region.h"
#include "loader/symbol_resolver.h"

// The bytes of graft-rt.o, put into graft by builtin_runtime.S (CMake).
extern "C" const uint8_t graft_rt_object_start[];
extern "C" const uint8_t graft_rt_object_end[];

namespace graft {

namespace {

LinkedRuntime link_builtin() {
  // libelf reads from a file descriptor: hand it the embedded bytes as one.
  int fd = memfd_create("graft-rt.o", MFD_CLOEXEC);
  if (fd < 0) fail("memfd_create: {}", errno_text(errno));
  size_t n = static_cast<size_t>(graft_rt_object_end - graft_rt_object_start);
  const uint8_t* p = graft_rt_object_start;
  for (size_t done = 0; done < n;) {
    ssize_t w = write(fd, p + done, n - done);
    if (w <= 0) {
      close(fd);
      fail("cannot stage the built-in runtime: {}", errno_text(errno));
    }
    done += static_cast<size_t>(w);
  }
  try {
    ElfFile obj(fmt::format("/proc/self/fd/{}", fd), "graft-rt.o (built into graft)");
    LinkedRuntime rt = link_runtime_object(obj);
    rt.image.sha256 = sha256_hex({graft_rt_object_start, n});
    close(fd);
    return rt;
  } catch (...) {
    close(fd);
    throw;
  }
}

RuntimeRecord inject(TargetSession& session, const LoadedObject& target) {
  const LinkedRuntime& rt = builtin_runtime();
  RuntimeRecord rec;
  rec.sha256 = rt.image.sha256;
  rec.code_size = rt.image.layout.code_size;
  rec.installed_at = static_cast<int64_t>(std::time(nullptr));
  rec.graft_pid = getpid();
  // Size the record with the widest values it can hold.
  RuntimeRecord widest = rec;
  widest.region_size = widest.image_base = UINT64_MAX;
  for (const auto& [name, off] : rt.exports) widest.exports[name] = UINT64_MAX;
  RegionLayout layout;
  layout.image_offset = runtime_record_pages(widest);
  layout.image = rt.image.layout;
  layout.size = layout.image_offset + rt.image.layout.memory_size();
  layout.address = choose_region_address(session.maps(), target, layout.size, session.pid());
  uint64_t base = layout.address + layout.image_offset;
  rec.region_start = layout.address;
  rec.region_size = layout.size;
  rec.image_base = base;
  for (const auto& [name, off] : rt.exports) rec.exports[name] = base + off;

  // The runtime's own references (malloc, free, syscall, ...) come from the
  // process's libc, as for any patch.
  SymbolResolver resolver(session, target);
  std::vector<uint64_t> addresses;
  for (const auto& e : rt.image.externals) addresses.push_back(resolver.resolve(e.name));
  Bytes image = rt.image.image;
  for (const auto& r : rt.image.relocations) {
    uint64_t S = r.external >= 0 ? addresses[r.external] : base + r.image_offset;
    arch::apply_relocation(r.type, image.data() + r.offset, base + r.offset, S, r.addend,
                           fmt::format("process {}: graft runtime", session.pid()));
  }
  create_region(session, layout, kRuntimeRegionName);
  try {
    session.memory().write({base}, image);
    session.memory().write({layout.address}, encode_runtime_record(rec));
  } catch (...) {
    remove_region(session, layout.address, layout.size);
    throw;
  }
  return rec;
}

}  // namespace

const LinkedRuntime& builtin_runtime() {
  static const LinkedRuntime rt = link_builtin();
  return rt;
}

bool is_runtime_function(const std::string& name) {
  return builtin_runtime().exports.count(name) != 0;
}

RuntimeBinding bind_runtime(const std::set<std::string>& needed, TargetSession& session,
                            const LoadedObject& target) {
  RuntimeBinding b;
  if (needed.empty()) return b;
  auto from_record = [&](const RuntimeRecord& r) {
    for (const auto& name : needed) {
      auto it = r.exports.find(name);
      if (it == r.exports.end())
        fail("process {}: its graft runtime (injected by an older graft) has no `{}'", session.pid(), name);
      b.addresses[name] = it->second;
    }
  };
  if (const auto& existing = session.scan().runtime) {
    from_record(*existing);
    b.provider = fmt::format("graft runtime region at {:#x}", existing->region_start);
    return b;
  }
  // libgraft-rt.so, mapped by the program: all of the functions must come
  // from it (a mix would give the process two shadow tables).
  SymbolResolver resolver(session, target);
  std::optional<uint64_t> probe;
  try {
    probe = resolver.resolve("graft_rt_abi_version");
  } catch (const Error&) {
  }
  if (probe) {
    for (const auto& name : needed) {
      try {
        b.addresses[name] = resolver.resolve(name);
      } catch (const Error&) {
        fail("process {}: its libgraft-rt has no `{}' (an older version?)", session.pid(), name);
      }
    }
    b.provider = "libgraft-rt.so of the process";
    return b;
  }
  try {
    b.injected = inject(session, target);
  } catch (const Error& e) {
    fail("process {}: the patch calls graft's runtime ({}), the process has none, and graft "
         "cannot inject it: {}",
         session.pid(), *needed.begin(), e.what());
  }
  from_record(*b.injected);
  b.provider = fmt::format("graft runtime injected at {:#x}", b.injected->region_start);
  return b;
}

}  // namespace graft
