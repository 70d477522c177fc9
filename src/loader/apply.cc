// graft apply: patch file -> plan checked against the running process ->
// region created and filled -> stop model switches -> record marked active.
#include <unistd.h>

#include <ctime>

#include "arch/x86_64/jump.h"
#include "arch/x86_64/relocation.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/realtime_priority.h"
#include "consistency/stop_model.h"
#include "loader/loaded_objects.h"
#include "loader/operations.h"
#include "loader/placement.h"
#include "loader/region.h"
#include "loader/symbol_resolver.h"

namespace graft {

namespace {

std::string display_name(const FunctionReplacement& f) {
  std::string n = f.demangled.empty() ? f.symbol : f.demangled;
  return f.file.empty() ? n : n + " (" + f.file + ")";
}

class ApplyJob {
 public:
  ApplyJob(const Patch& patch, pid_t pid, const OperationOptions& options, OperationResult& result)
      : patch_(patch), pid_(pid), options_(options), result_(result), memory_(pid) {}

  void run() {
    maps_ = read_maps(pid_);
    objects_ = loaded_objects(pid_, maps_, build_ids_);
    target_ = find_target();
    auto scan = read_records(pid_, maps_, memory_);
    if (!scan.problems.empty()) fail("{}; refusing to change this process", scan.problems.front());
    records_ = std::move(scan.records);
    for (const auto& r : records_)
      if (r.sha256 == patch_.sha256)
        fail("process {}: patch {} is already applied (state {})", pid_, r.label(), state_name(r.state));

    plan_functions();
    plan_region();
    Bytes image = relocate();

    Tracer tracer(pid_);
    create_region(tracer, memory_, maps_, layout_, patch_.id());
    tracer.resume_all();
    try {
      record_.state = RecordState::Loading;
      memory_.write({layout_.address}, encode_record(record_));
      memory_.write({layout_.address + layout_.image_offset}, image);
      StopOptions stop;
      stop.timeout_s = options_.timeout_s;
      result_.threads = tracer.thread_count();
      SwitchResult s;
      try {
        run_stop_model(tracer, memory_, plan_, stop,
                       [&] { write_record_state(memory_, record_, RecordState::Active); }, s);
      } catch (...) {
        report(s);
        throw;
      }
      report(s);
      if (!process_alive(pid_)) fail("process {} exited during the apply", pid_);
    } catch (...) {
      try {
        remove_region(tracer, memory_, maps_, layout_.address, layout_.size);
        tracer.resume_all();
      } catch (const Error&) {
        // The process is gone or unreachable: nothing left to clean.
      }
      throw;
    }
  }

 private:
  void report(const SwitchResult& s) {
    result_.pause_ms = s.pause_ms;
    result_.max_pause_ms = s.max_pause_ms;
    result_.retries = s.retries;
  }

  LoadedObject find_target() {
    for (const auto& o : objects_)
      if (!o.build_id.empty() && o.build_id == patch_.target.build_id) return o;
    fail("process {} does not map the patch's target {} (build-id {})", pid_, patch_.target.path,
         patch_.target.build_id.substr(0, 16));
  }

  void plan_functions() {
    for (const auto& f : patch_.functions) {
      std::string name = display_name(f);
      uint64_t addr = target_.bias + f.address;
      Bytes running = memory_.read({addr}, f.size);
      uint64_t site_off = arch::patch_site_offset(running);
      if (f.size < site_off + arch::kRedirectSize)
        fail("process {}: function `{}' is {} bytes, too short for the jump", pid_, name, f.size);
      uint64_t site = addr + site_off;
      Bytes now(running.begin() + site_off, running.begin() + site_off + arch::kRedirectSize);
      Bytes original = now;
      const PatchRecord* owner = nullptr;
      const FunctionRecord* top = newest_redirect(records_, addr, nullptr, &owner);
      if (top) {
        if (now != top->redirect)
          fail("process {}: the entry of `{}' no longer holds the redirection of patch {}", pid_,
               name, owner->label());
        original = top->original;
        std::copy(original.begin(), original.end(), running.begin() + site_off);
      }
      if (sha256_hex(running) != f.sha256)
        fail("process {}: function `{}' differs from the one the patch was built for (another "
             "build of {}, or modified by another tool)",
             pid_, name, target_.path);

      plan_.busy.push_back({{addr, f.size}, "function `" + name + "'"});
      for (const auto& c : f.cold_parts)
        plan_.busy.push_back({{target_.bias + c.start, c.size}, "function `" + name + "' (cold part)"});
      if (top)
        plan_.busy.push_back({{top->replacement, std::max<uint64_t>(top->replacement_size, 1)},
                              "`" + name + "' of patch " + owner->label()});

      FunctionRecord fr;
      fr.symbol = f.symbol;
      fr.demangled = f.demangled;
      fr.file = f.file;
      fr.address = addr;
      fr.size = f.size;
      fr.site = site;
      fr.replacement_size = f.replacement_size;
      fr.original = original;
      fr.redirect = now;  // placeholder until the image base is known
      for (const auto& c : f.cold_parts) fr.cold_parts.push_back({target_.bias + c.start, c.size});
      record_.functions.push_back(std::move(fr));
      plan_.writes.push_back({name, {site}, now, {}});
    }
  }

  void plan_region() {
    record_.id = patch_.id();
    record_.name = patch_.name;
    record_.sha256 = patch_.sha256;
    record_.target_path = target_.path;
    record_.build_id = patch_.target.build_id;
    record_.code_size = patch_.layout.code_size;
    record_.applied_at = static_cast<int64_t>(std::time(nullptr));
    record_.graft_pid = getpid();
    record_.seq = records_.empty() ? 1 : records_.back().seq + 1;
    // Size the record with the widest addresses it could hold.
    PatchRecord widest = record_;
    widest.region_size = widest.image_base = UINT64_MAX;
    for (auto& f : widest.functions) f.replacement = UINT64_MAX;
    layout_.image_offset = record_pages(widest);
    layout_.image = patch_.layout;
    layout_.size = layout_.image_offset + patch_.layout.memory_size();
    layout_.address = choose_region_address(maps_, target_, layout_.size, pid_);

    uint64_t base = layout_.address + layout_.image_offset;
    record_.region_start = layout_.address;
    record_.region_size = layout_.size;
    record_.image_base = base;
    for (size_t i = 0; i < patch_.functions.size(); ++i) {
      auto& fr = record_.functions[i];
      fr.replacement = base + patch_.functions[i].replacement_offset;
      auto jump = arch::redirect_bytes(fr.site, fr.replacement);
      if (!jump) fail("process {}: patch region out of jump range of `{}'", pid_, fr.symbol);
      fr.redirect = *jump;
      plan_.writes[i].bytes = *jump;
    }
  }

  Bytes relocate() {
    uint64_t base = layout_.address + layout_.image_offset;
    SymbolResolver resolver(objects_, target_, maps_, memory_, pid_);
    std::vector<uint64_t> addresses;
    for (const auto& e : patch_.externals)
      addresses.push_back(e.where == ExternalSymbol::Where::Target ? target_.bias + e.value
                                                                   : resolver.resolve(e.name));
    Bytes image = patch_.image;
    for (const auto& r : patch_.relocations) {
      uint64_t S = r.external >= 0 ? addresses[r.external] : base + r.image_offset;
      std::string context =
          r.external >= 0 ? fmt::format("process {}: reference to `{}'", pid_, patch_.externals[r.external].name)
                          : fmt::format("process {}: patch-internal reference", pid_);
      arch::apply_relocation(r.type, image.data() + r.offset, base + r.offset, S, r.addend, context);
    }
    return image;
  }

  const Patch& patch_;
  pid_t pid_;
  const OperationOptions& options_;
  OperationResult& result_;
  ProcessMemory memory_;
  std::vector<Mapping> maps_;
  BuildIdCache build_ids_;
  std::vector<LoadedObject> objects_;
  LoadedObject target_;
  std::vector<PatchRecord> records_;
  PatchRecord record_;
  RegionLayout layout_;
  SwitchPlan plan_;
};

}  // namespace

OperationResult apply_patch(const Patch& patch, pid_t pid, const OperationOptions& options) {
  OperationResult result;
  result.pid = pid;
  result.patch_id = patch.id();
  result.patch_name = patch.name;
  auto start = Clock::now();
  RealtimePriority priority;
  try {
    ApplyJob(patch, pid, options, result).run();
    result.ok = true;
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  result.total_ms = ms_since(start);
  return result;
}

}  // namespace graft
