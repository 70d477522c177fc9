// graft apply: patch file -> plan checked against the running process ->
// region created and filled -> stop model switches -> record marked active.
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "arch/x86_64/jump.h"
#include "arch/x86_64/relocation.h"
#include "arch/x86_64/sigreturn_frame.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault_point.h"
#include "common/realtime_priority.h"
#include "consistency/stop_model.h"
#include "loader/callbacks.h"
#include "loader/ifunc.h"
#include "loader/loaded_objects.h"
#include "loader/operations.h"
#include "loader/placement.h"
#include "loader/region.h"
#include "process/process_lock.h"
#include "loader/runtime_binding.h"
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
    recover_before(pid_, options_, result_);
    maps_ = read_maps(pid_);
    objects_ = loaded_objects(pid_, maps_, build_ids_);
    target_ = find_target();
    auto scan = read_records(pid_, maps_, memory_);
    if (!scan.problems.empty()) fail("{}; refusing to change this process", scan.problems.front());
    records_ = std::move(scan.records);
    for (const auto& r : records_)
      if (r.sha256 == patch_.sha256)
        fail("process {}: patch {} is already applied (state {})", pid_, r.label(), state_name(r.state));
    if (patch_.cumulative) choose_replaced();

    plan_functions();
    if (patch_.cumulative) plan_restored_functions();

    Tracer tracer(pid_);
    result_.threads = tracer.thread_count();
    bind_runtime_functions(tracer, scan.runtime);
    try {
      plan_region();
      resolve_externals();
      // Without IFUNCs to resolve in the process, the image is complete
      // before anything is mapped.
      Bytes image = ifuncs_.empty() ? relocate() : Bytes{};
      create_region(tracer, memory_, maps_, layout_, patch_.id());
      fault_point("region-created");
      tracer.resume_all();
      switch_to_patch(tracer, std::move(image));
    } catch (...) {
      remove_injected_runtime(tracer);
      throw;
    }
  }

 private:
  // The region exists and the threads run: fill it, run pre_patch, switch,
  // run post_patch. On failure the region is removed again (after
  // post_unpatch, if pre_patch had run).
  void switch_to_patch(Tracer& tracer, Bytes image) {
    bool pre_patch_done = false;
    try {
      // The record first: from here on, a later graft knows what this
      // region is, even if this one dies (see recovery.h).
      record_.state = RecordState::Loading;
      memory_.write({layout_.address}, encode_record(record_));
      fault_point("record-written");
      if (!ifuncs_.empty()) {
        run_ifunc_resolvers(tracer);
        image = relocate();
      }
      memory_.write({layout_.address + layout_.image_offset}, image);
      if (auto thunk = call_return_thunk_address(record_))
        memory_.write({*thunk}, arch::kCallReturnThunk);
      fault_point("image-written");

      if (auto run = run_callback(tracer, memory_, record_, Callback::Kind::PrePatch, options_.timeout_s)) {
        if (!run->ok()) fail("process {}: {}; patch not applied", pid_, run->describe(Callback::Kind::PrePatch, record_));
        if (static_cast<int32_t>(run->result.value) != 0)
          fail("process {}: {} (a veto); patch not applied", pid_,
               run->describe(Callback::Kind::PrePatch, record_));
      }
      pre_patch_done = true;

      StopOptions stop;
      stop.timeout_s = options_.timeout_s;
      stop.detach_after = false;
      SwitchResult s;
      try {
        run_stop_model(tracer, memory_, plan_, stop, [&] {
          write_record_state(memory_, record_, RecordState::Active);
          for (const auto* r : replaced_) write_record_state(memory_, *r, RecordState::Reverting);
          fault_point("applied");
        }, s);
      } catch (...) {
        report(s);
        throw;
      }
      report(s);
      if (!process_alive(pid_)) fail("process {} exited during the apply", pid_);
    } catch (...) {
      try {
        if (pre_patch_done)
          if (auto run = run_callback(tracer, memory_, record_, Callback::Kind::PostUnpatch, options_.timeout_s);
              run && !run->ok())
            result_.notes.push_back(run->describe(Callback::Kind::PostUnpatch, record_));
        remove_region(tracer, memory_, maps_, layout_.address, layout_.size);
        tracer.resume_all();
      } catch (const Error&) {
        // The process is gone or unreachable: nothing left to clean.
      }
      throw;
    }
    // Switched. What remains cannot undo the apply: it is reported.
    for (const auto* r : replaced_) {
      // No thread is in the replaced patch's code and no jump leads there.
      try {
        remove_region(tracer, memory_, maps_, r->region_start, r->region_size);
        result_.notes.push_back(fmt::format("replaced patch {}", r->label()));
      } catch (const Error& e) {
        result_.notes.push_back(fmt::format("replaced patch {}, but could not unmap it: {}", r->label(), e.what()));
      }
    }
    if (auto run = run_callback(tracer, memory_, record_, Callback::Kind::PostPatch, options_.timeout_s);
        run && !run->ok())
      result_.notes.push_back(run->describe(Callback::Kind::PostPatch, record_) + " (the patch stays applied)");
    tracer.detach();
  }

  // The patches a cumulative patch replaces: every active patch of the same
  // target object.
  void choose_replaced() {
    for (const auto& r : records_) {
      if (r.build_id != patch_.target.build_id) continue;
      if (r.state == RecordState::Loading)
        fail("process {}: patch {} is still loading (left by an interrupted graft); revert it "
             "before applying a cumulative patch",
             pid_, r.label());
      if (r.state == RecordState::Active) replaced_.push_back(&r);
    }
  }

  bool replaces(const PatchRecord& r) const {
    return std::find(replaced_.begin(), replaced_.end(), &r) != replaced_.end();
  }

  // Functions of replaced patches that the cumulative patch leaves out go
  // back to their original code.
  void plan_restored_functions() {
    std::set<uint64_t> done;
    for (const auto& f : record_.functions) done.insert(f.address);
    for (const auto* r : replaced_) {
      plan_.busy.push_back({r->code(), "the code of patch " + r->label()});
      for (const auto& f : r->functions) {
        if (!done.insert(f.address).second) continue;
        const PatchRecord* owner = nullptr;
        const FunctionRecord* top = newest_redirect(records_, f.address, nullptr, &owner);
        if (!top || !replaces(*owner))
          fail("process {}: `{}' is patched by {}, which a cumulative patch of {} cannot replace",
               pid_, f.symbol, owner ? owner->label() : std::string("nothing"), target_.path);
        Bytes now = memory_.read({f.site}, arch::kRedirectSize);
        if (now != top->redirect)
          fail("process {}: the entry of `{}' no longer holds the redirection of patch {}", pid_,
               f.symbol, owner->label());
        plan_.writes.push_back({f.symbol, {f.site}, now, top->original});
      }
    }
  }

  // The runtime functions the patch calls are bound before placement: an
  // injected runtime takes address space.
  void bind_runtime_functions(Tracer& tracer, const std::optional<RuntimeRecord>& existing) {
    std::set<std::string> needed;
    for (const auto& e : patch_.externals)
      if (e.where == ExternalSymbol::Where::Library && is_runtime_function(e.name)) needed.insert(e.name);
    if (needed.empty()) return;
    RuntimeBindingContext ctx{pid_, maps_, objects_, target_, memory_, existing};
    runtime_ = bind_runtime(needed, ctx, tracer);
    if (runtime_.injected) {
      result_.notes.push_back(runtime_.provider);
      maps_ = read_maps(pid_);
    }
    tracer.resume_all();
  }

  void remove_injected_runtime(Tracer& tracer) {
    if (!runtime_.injected) return;
    try {
      remove_region(tracer, memory_, maps_, runtime_.injected->region_start, runtime_.injected->region_size);
      tracer.resume_all();
    } catch (const Error&) {
    }
  }

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
    record_.cumulative = patch_.cumulative;
    for (const auto& c : patch_.callbacks) record_.callbacks.push_back({c.kind, c.function, UINT64_MAX});
    // Size the record with the widest addresses it could hold.
    PatchRecord widest = record_;
    widest.region_size = widest.image_base = UINT64_MAX;
    for (auto& f : widest.functions) f.replacement = UINT64_MAX;
    record_.callbacks.clear();
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
    for (const auto& c : patch_.callbacks)
      record_.callbacks.push_back({c.kind, c.function, base + c.offset});
  }

  // The address of every external symbol, except the IFUNCs whose resolver
  // must run in the process (ifuncs_, settled by run_ifunc_resolvers()).
  void resolve_externals() {
    SymbolResolver resolver(objects_, target_, maps_, memory_, pid_);
    for (size_t i = 0; i < patch_.externals.size(); ++i) {
      const auto& e = patch_.externals[i];
      if (e.where == ExternalSymbol::Where::Target) {
        addresses_.push_back(target_.bias + e.value);
      } else if (auto it = runtime_.addresses.find(e.name); it != runtime_.addresses.end()) {
        addresses_.push_back(it->second);
      } else {
        SymbolLookup l = resolver.lookup(e.name);
        addresses_.push_back(l.address);
        if (!l.note.empty()) result_.notes.push_back(l.note);
        if (l.call) ifuncs_.emplace_back(i, *l.call);
      }
    }
  }

  // After the record is written; the thunk first, for a kill-safe return.
  void run_ifunc_resolvers(Tracer& tracer) {
    if (auto thunk = call_return_thunk_address(record_)) memory_.write({*thunk}, arch::kCallReturnThunk);
    for (const auto& [index, call] : ifuncs_) {
      IfuncResult r = run_ifunc_resolver(tracer, memory_, record_, call, options_.timeout_s);
      addresses_[index] = r.address;
      result_.notes.push_back(r.note);
    }
    fault_point("ifuncs-resolved");
  }

  Bytes relocate() {
    uint64_t base = layout_.address + layout_.image_offset;
    Bytes image = patch_.image;
    for (const auto& r : patch_.relocations) {
      uint64_t S = r.external >= 0 ? addresses_[r.external] : base + r.image_offset;
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
  std::vector<const PatchRecord*> replaced_;  // by a cumulative patch
  RuntimeBinding runtime_;
  PatchRecord record_;
  RegionLayout layout_;
  SwitchPlan plan_;
  std::vector<uint64_t> addresses_;                  // of patch_.externals
  std::vector<std::pair<size_t, IfuncCall>> ifuncs_;  // still to resolve in the process
};

}  // namespace

OperationResult apply_patch(const Patch& patch, pid_t pid, const OperationOptions& options) {
  OperationResult result;
  result.pid = pid;
  result.patch_id = patch.id();
  result.patch_name = patch.name;
  result.patch_sha256 = patch.sha256;
  auto start = Clock::now();
  RealtimePriority priority;
  try {
    ProcessLock lock(pid, options.timeout_s);
    ApplyJob(patch, pid, options, result).run();
    result.ok = true;
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  result.total_ms = ms_since(start);
  return result;
}

}  // namespace graft
