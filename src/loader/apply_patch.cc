// graft apply: patch file -> plan checked against the running process ->
// region created and filled -> stop model switches -> record marked active.
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <optional>
#include <set>

#include "arch/x86_64/displaced.h"
#include "arch/x86_64/gate.h"
#include "arch/x86_64/jump.h"
#include "arch/x86_64/relocation.h"
#include "arch/x86_64/sigreturn_frame.h"
#include "arch/x86_64/return_stub.h"
#include "arch/x86_64/stub_unwind_info.h"
#include "arch/x86_64/trap_handler.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault_point.h"
#include "common/interrupt.h"
#include "common/realtime_priority.h"
#include "consistency/per_thread_model.h"
#include "consistency/return_traps.h"
#include "consistency/stop_model.h"
#include "loader/apply_plan.h"
#include "loader/callbacks.h"
#include "loader/code_slack.h"
#include "loader/footprint.h"
#include "process/proc_status.h"
#include "loader/per_thread.h"
#include "loader/quiescent_runtime.h"
#include "loader/ifunc.h"
#include "loader/loaded_objects.h"
#include "elf/elf_file.h"
#include "loader/operations.h"
#include "loader/placement.h"
#include "loader/region.h"
#include "loader/unwind_registration.h"
#include "process/process_lock.h"
#include "process/thread_syscall.h"
#include "process/tracing_thread.h"
#include "loader/runtime_binding.h"
#include "loader/symbol_resolver.h"
#include "loader/revert_during_transition.h"

namespace graft {

namespace {

class ApplyJob {
 public:
  ApplyJob(const Patch& patch, pid_t pid, const OperationOptions& options, OperationResult& result)
      : patch_(patch), pid_(pid), options_(options), result_(result), memory_(pid) {}

  void run() {
    refuse_go_program();
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
    refuse_if_in_transition(records_, pid_, memory_);
    if (patch_.cumulative) choose_replaced();

    record_.model = options_.model.value_or(kDefaultModel);
    per_thread_ = per_thread(record_.model);
    if (per_thread_ && patch_.cumulative && options_.force)
      fail("process {}: --force cannot switch a cumulative patch: a thread moved unchecked could still "
           "be running the code of a patch it replaces, which is unmapped when the transition ends",
           pid_);
    // Several functions switch together through switch gates and a one-byte
    // flag, so that a graft killed between two entry writes leaves them all
    // old or all new (docs/architecture.md). A cumulative patch also puts
    // back other patches' entries, which the flag cannot cover.
    switch_gates_ = !per_thread_ && !patch_.cumulative && patch_.functions.size() >= 2;
    plan_functions();
    if (patch_.cumulative) plan_restored_functions();

    // A thread in vfork() cannot be stopped until its child lets it go.
    wait_out_vfork(pid_, options_.timeout_s);
    Tracer tracer(pid_, per_thread_);
    result_.threads = tracer.thread_count();
    bind_runtime_functions(tracer, scan.runtime);
    try {
      plan_region();
      resolve_externals();
      // Without IFUNCs to resolve in the process, the image is complete
      // before anything is mapped.
      Bytes image = ifuncs_.empty() ? relocate() : Bytes{};
      Bytes gates;
      if (per_thread_) gates = plan_gates();
      if (switch_gates_) gates = plan_switch_gates();
      throw_if_interrupted("before the patch region was created");
      create_region(tracer, memory_, maps_, layout_, patch_.id());
      fault_point("region-created");
      tracer.resume_all();
      switch_to_patch(tracer, std::move(image), gates);
    } catch (...) {
      if (!region_in_use_) remove_injected_runtime(tracer);
      throw;
    }
  }

 private:
  // The region exists and the threads run: fill it, run pre_patch, switch,
  // run post_patch. On failure the region is removed again (after
  // post_unpatch, if pre_patch had run), unless a per-thread transition
  // could be neither completed nor undone (TransitionStuck).
  void switch_to_patch(Tracer& tracer, Bytes image, const Bytes& gates) {
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
      // Before any thread can run the new code (the pre_patch callback may).
      register_unwind_info(tracer, memory_, record_, options_.timeout_s);
      fault_point("unwind-registered");
      register_stubs_unwind_info(tracer);

      if (auto run = run_callback(tracer, memory_, record_, Callback::Kind::PrePatch, options_.timeout_s)) {
        if (!run->ok()) fail("process {}: {}; patch not applied", pid_, run->describe(Callback::Kind::PrePatch, record_));
        if (static_cast<int32_t>(run->result.value) != 0)
          fail("process {}: {} (a veto); patch not applied", pid_,
               run->describe(Callback::Kind::PrePatch, record_));
      }
      pre_patch_done = true;

      if (per_thread_) {
        memory_.write({record_.transition.gates}, gates);
        try {
          run_transition(tracer);
        } catch (const TransitionStuck&) {
          region_in_use_ = true;
          throw;
        }
      } else {
        if (switch_gates_) memory_.write({record_.transition.gates}, gates);
        switch_stop_model(tracer);
      }
    } catch (...) {
      if (region_in_use_) throw;
      try {
        if (pre_patch_done)
          if (auto run = run_callback(tracer, memory_, record_, Callback::Kind::PostUnpatch, options_.timeout_s);
              run && !run->ok())
            result_.notes.push_back(run->describe(Callback::Kind::PostUnpatch, record_));
        deregister_unwind_info(tracer, memory_, maps_, record_, options_.timeout_s);
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
        deregister_unwind_info(tracer, memory_, maps_, *r, options_.timeout_s);
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

  uint64_t stubs_unwind_size() const {
    return page_round_up(kUnwindObjectSize + arch::return_stubs_eh_frame_size(stubs_, !per_thread_));
  }

  // The stubs the region's .eh_frame describes. libgcc takes the registered
  // object whose lowest pc is the nearest below a pc and searches no other:
  // the objects may not overlap. A per-thread region's table covers its
  // exit stubs, in the gates before the image; the stop stub, in the slack
  // after the patch's code, would make it span the patch's own object.
  arch::ReturnStubs described_stubs() const {
    if (per_thread_) return {record_.transition.return_stubs, stubs_, 0};
    return {0, 0, stop_stub_address(record_).value_or(0)};
  }

  // The .eh_frame of every stub of the region (the exit stubs, the stop
  // model's return trap), registered once, before any of them can serve.
  // Without it, the stubs may not serve where libgcc unwinds
  // (consistency/return_traps.h).
  void register_stubs_unwind_info(Tracer& tracer) {
    std::string missing;
    if (!stub_unwind_info_disabled()) {
      if (record_.stub_unwind.eh_frame)
        memory_.write({record_.stub_unwind.eh_frame},
                      arch::return_stubs_eh_frame(record_.stub_unwind.eh_frame, described_stubs()));
      missing = register_stub_unwind_info(tracer, memory_, record_, options_.timeout_s);
    }
    transition_.return_stubs_unwind = missing;
    plan_.stop_stub_unwind = missing;
    fault_point("stub-unwind-registered");
  }

  void switch_stop_model(Tracer& tracer) {
    StopOptions stop;
    stop.timeout_s = options_.timeout_s;
    stop.detach_after = false;
    if (auto stub = stop_stub_address(record_)) plan_.stop_stub = *stub;
    SwitchResult s;
    try {
      run_stop_model(tracer, memory_, plan_, stop, [&] {
        write_record_state(memory_, record_, RecordState::Active);
        if (!replaced_.empty()) fault_point("marked-applied");
        for (const auto* r : replaced_) write_record_state(memory_, *r, RecordState::Reverting);
        fault_point("applied");
      }, s);
    } catch (...) {
      report(s);
      throw;
    }
    report(s);
    if (!process_alive(pid_)) fail("process {} exited during the apply", pid_);
    if (!replaced_.empty()) settle_replace();
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
  // back to their original code: in the stop model's switch, or, per
  // thread, through gates of their own (restore_per_thread). Either way
  // they are listed in the record until the switch is over, so that a
  // graft killed midway leaves entries recovery can put back.
  void plan_restored_functions() {
    std::set<uint64_t> done;
    for (const auto& f : record_.functions) done.insert(f.address);
    for (const auto* r : replaced_) {
      // Its region goes: no thread may be in its code, nor in its gates (a
      // thread that entered one just before its own transition ended, and
      // has not run since, is still there).
      plan_.busy.push_back({r->code(), "the code of patch " + r->label()});
      if (r->has_gates())
        plan_.busy.push_back({{r->transition.gates, r->transition.gates_size}, "the gates of patch " + r->label()});
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
        if (per_thread_) {
          restore_per_thread(f, top->original);
        } else {
          plan_.writes.push_back({f.symbol, {f.site}, now, top->original});
          record_.functions.push_back(restored_record(f, top->original));
        }
      }
    }
  }

  // The record of a function put back to its original: what a patch
  // writes there is the original bytes (the kernel's "nop" function).
  static FunctionRecord restored_record(const FunctionRecord& f, const Bytes& original) {
    FunctionRecord fr;
    fr.symbol = f.symbol;
    fr.demangled = f.demangled;
    fr.file = f.file;
    fr.address = f.address;
    fr.size = f.size;
    fr.site = f.site;
    fr.original = original;
    fr.redirect = original;
    fr.cold_parts = f.cold_parts;
    fr.restores = true;
    return fr;
  }

  // A function put back to its original code by a per-thread transition:
  // its entry leads to a gate like the patch's own, whose old path runs the
  // replaced patch's jump and whose new code is the original's first
  // instructions relocated into the gate pages, then the rest of the
  // original.
  void restore_per_thread(const FunctionRecord& f, const Bytes& original) {
    PlannedFunction p = plan_restored_function(f, original, memory_);
    std::string name = p.name;
    check_displaceable(p.current, p.whole, f.address, f.site, f.cold_parts, name);
    check_displaceable(p.original_code, p.whole, f.address, f.site, f.cold_parts, name);
    planned_.push_back(std::move(p));
    record_.functions.push_back(restored_record(f, original));
    restored_code_.push_back({{f.address, f.size}, "function `" + name + "' (put back to its original)"});
    for (const auto& c : f.cold_parts)
      restored_code_.push_back({c, "function `" + name + "' (put back to its original; cold part)"});
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
    result_.run_out = s.threads_run_out;
  }

  LoadedObject find_target() {
    for (const auto& o : objects_)
      if (!o.build_id.empty() && o.build_id == patch_.target.build_id) return o;
    fail("process {} does not map the patch's target {} (build-id {})", pid_, patch_.target.path,
         patch_.target.build_id.substr(0, 16));
  }

  void plan_functions() {
    for (const auto& f : patch_.functions) {
      planned_.push_back(plan_function(f, target_.bias, memory_, records_, pid_, target_.path));
      const PlannedFunction& p = planned_.back();
      const std::string& name = p.name;
      uint64_t addr = p.address, site = p.site;
      const std::vector<AddressRange>& cold = p.cold;
      const Bytes& now = p.entry;
      const Bytes& original = p.original;
      const PatchRecord* owner = p.stacked_on;
      const FunctionRecord* top = p.below;
      if (per_thread_) {
        try {
          check_displaceable(p.current, p.whole, addr, site, cold, name);
          // A cumulative patch's old paths are rebased on the original code
          // once the patches it replaces are gone (settle_replace).
          if (top && patch_.cumulative) check_displaceable(p.original_code, p.whole, addr, site, cold, name);
        } catch (const Error& e) {
          // The default model gives way to the one that can patch it; a
          // model the operator chose is refused with the reason.
          if (options_.model) throw;
          fall_back_to_stop(e.what());
        }
      } else if (switch_gates_) {
        try {
          check_displaceable(p.current, p.whole, addr, site, cold, name);
        } catch (const Error& e) {
          // Then the entries switch one by one, as for a single function.
          switch_gates_ = false;
          result_.notes.push_back(fmt::format("no switch gates ({}): a graft killed between two entry "
                                              "writes would leave the patch half applied until the next "
                                              "graft repairs it",
                                              e.what()));
        }
      }

      plan_.busy.push_back({{addr, f.size}, "function `" + name + "'"});
      for (const auto& c : cold) plan_.busy.push_back({c, "function `" + name + "' (cold part)"});
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
      // The code the redirect enters. Behind a thunk, a thread in the
      // replacement has the thunk's return address on its stack, so the
      // thunk's range alone tells whether the new code is busy.
      fr.replacement_size = f.thunk ? f.thunk->size : f.replacement_size;
      fr.original = original;
      fr.redirect = now;  // placeholder until the image base is known
      fr.cold_parts = cold;
      record_.functions.push_back(std::move(fr));
      plan_.writes.push_back({name, {site}, now, {}});
    }
  }

  // Go code has no DWARF CFI in .eh_frame (its frames are described by
  // .gopclntab, which graft does not read): no thread running Go code
  // could ever be checked, and a transition could neither finish nor
  // prove its rollback clean. Refused before anything is written.
  void refuse_go_program() {
    std::string exe = fmt::format("/proc/{}/exe", pid_);
    bool go = false;
    try {
      ElfFile elf(exe, exe);
      go = elf.section(".gopclntab") || elf.section(".go.buildinfo");
    } catch (const Error&) {
      return;  // not readable as ELF: the checks that follow say what is wrong
    }
    if (go)
      fail("process {} runs a Go program: graft cannot check the stacks of threads running Go code "
           "(Go describes its frames in .gopclntab, not in DWARF CFI), so it cannot patch it safely",
           pid_);
  }

  void fall_back_to_stop(const std::string& why) {
    per_thread_ = false;
    switch_gates_ = false;
    record_.model = result_.model = Model::stop;
    result_.notes.push_back(fmt::format("applied under the stop model, not the default {}: {}",
                                        kDefaultModel, why));
  }

  // The first instructions of `code' (the bytes from the site on: what
  // runs now, the original instructions or the jump of the patch below,
  // or the original a revert gives back) must be able to run from a gate,
  // and no branch of the function (`whole' at `addr', and its cold parts)
  // may land among them.
  void check_displaceable(const Bytes& code, const Bytes& whole, uint64_t addr, uint64_t site,
                          const std::vector<AddressRange>& cold, const std::string& name) {
    size_t n = arch::relocate_displaced(code, site, site, name).length;
    arch::check_no_branch_into(whole, addr, site, n, name);
    for (const auto& c : cold) arch::check_no_branch_into(memory_.read({c.start}, c.size), c.start, site, n, name);
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
    record_.settled = replaced_.empty();
    for (const auto& c : patch_.callbacks) record_.callbacks.push_back({c.kind, c.function, UINT64_MAX});
    // Size the record with the widest addresses it could hold.
    PatchRecord widest = record_;
    widest.region_size = widest.image_base = UINT64_MAX;
    for (auto& f : widest.functions) {
      f.replacement = UINT64_MAX;
      if (f.restores) f.replacement_size = UINT64_MAX;
      if (per_thread_) {
        f.gate = f.old_path = f.displaced = UINT64_MAX;
        f.gate_redirect = Bytes(arch::kRedirectSize);
      }
    }
    widest.unwind = {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX};
    widest.stub_unwind = widest.unwind;
    if (per_thread_ || switch_gates_) {
      widest.transition = {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT32_MAX, UINT32_MAX, UINT64_MAX, UINT64_MAX,
                           UINT64_MAX};
      widest.transition.return_stubs = widest.transition.return_stub_count = UINT64_MAX;
      for (auto& f : widest.functions) {
        f.gate = f.old_path = f.displaced = UINT64_MAX;
        f.gate_redirect = Bytes(arch::kRedirectSize);
      }
    }
    record_.callbacks.clear();
    layout_.image_offset = record_pages(widest);
    uint64_t slots = 0;  // bytes of the gates' slots
    if (per_thread_) {
      area_ = TransitionAreaLayout::for_threads(list_threads(pid_).size());
      stubs_ = std::min<uint32_t>(area_.capacity, kMaxReturnStubs);
      layout_.transition_offset = layout_.image_offset;
      // The area, then the stubs' unwind information.
      layout_.transition_size = area_.size + stubs_unwind_size();
      layout_.gates_offset = layout_.transition_offset + layout_.transition_size;
      for (size_t i = 0; i < record_.functions.size(); ++i) {
        planned_[i].slot = slots;
        slots += record_.functions[i].restores ? kRestoreSlot : kGateSlot;
      }
      // The gates, the exit stubs, then the SIGTRAP handler that stands in
      // for graft if it dies with an int3 in running code (the entries'
      // and the stubs').
      // The first stub's FDE covers the byte before it (stub_unwind_info.h):
      // a gap, so that no gate code lies there.
      stubs_offset_ = slots + 16;
      slots = stubs_offset_ + uint64_t(stubs_) * arch::kReturnStubSize;
      layout_.gates_size = page_round_up(slots + arch::trap_handler_size(record_.functions.size() + stubs_));
      layout_.image_offset = layout_.gates_offset + layout_.gates_size;
    } else {
      // The stop stub's unwind information, in rw pages of their own.
      layout_.transition_offset = layout_.image_offset;
      layout_.transition_size = stubs_unwind_size();
      layout_.image_offset += layout_.transition_size;
      if (switch_gates_) {
        layout_.gates_offset = layout_.image_offset;
        layout_.gates_size = page_round_up(kSwitchFlagArea + patch_.functions.size() * kSwitchSlot);
        layout_.image_offset = layout_.gates_offset + layout_.gates_size;
      }
    }
    layout_.image = patch_.layout;
    layout_.size = layout_.image_offset + patch_.layout.memory_size();
    layout_.address = choose_region_address(maps_, target_, layout_.size, pid_);

    uint64_t base = layout_.address + layout_.image_offset;
    stubs_unwind_ = layout_.address + layout_.transition_offset;
    if (per_thread_) {
      area_.address = layout_.address + layout_.transition_offset;
      uint64_t gates = layout_.address + layout_.gates_offset;
      record_.transition = {area_.address, area_.size, gates, layout_.gates_size, area_.capacity,
                            area_.report_capacity, gates + slots, record_.functions.size() + stubs_};
      record_.transition.return_stubs = gates + stubs_offset_;
      record_.transition.return_stub_count = stubs_;
      stubs_unwind_ += area_.size;
    }
    if (switch_gates_) {
      uint64_t gates = layout_.address + layout_.gates_offset;
      record_.transition = {};
      record_.transition.gates = gates;
      record_.transition.gates_size = layout_.gates_size;
      record_.transition.switch_flag = gates;  // the flag's byte, then the gates
    }
    record_.region_start = layout_.address;
    record_.region_size = layout_.size;
    record_.image_base = base;
    for (size_t i = 0; i < patch_.functions.size(); ++i) {
      auto& fr = record_.functions[i];
      fr.replacement = base + patch_.functions[i].entry_offset();
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
    if (patch_.layout.unwind_object)
      plan_unwind_registration(record_, resolver, objects_, pid_, record_.image_base + patch_.layout.eh_frame,
                               record_.image_base + patch_.layout.unwind_object);
    // Nothing to describe (and nothing to ask libgcc about) without a stub.
    if (described_stubs().exit_count || described_stubs().stop_stub)
      plan_stub_unwind_registration(record_, resolver, objects_, pid_, stubs_unwind_ + kUnwindObjectSize,
                                    stubs_unwind_);
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

  // Function i's gate at `slot` of the gate pages `out` (which start at the
  // record's gates): the code `make_code(gate, old_path)` returns, at most
  // `code_room` bytes, then its displaced instructions relocated to run
  // there (the old path). Fills the function record's gate fields.
  template <typename MakeCode>
  arch::DisplacedCode place_gate(size_t i, Bytes& out, uint64_t slot, size_t code_room, MakeCode make_code) {
    auto& fr = record_.functions[i];
    const std::string& name = planned_[i].name;
    uint64_t gate = record_.transition.gates + slot, old_path = gate + code_room;
    auto displaced = arch::relocate_displaced(planned_[i].current, fr.site, old_path, name);
    Bytes code = make_code(gate, old_path);
    std::copy(code.begin(), code.end(), out.begin() + slot);
    std::copy(displaced.old_path.begin(), displaced.old_path.end(), out.begin() + slot + code_room);
    auto to_gate = arch::redirect_bytes(fr.site, gate);
    if (!to_gate) fail("process {}: gate out of jump range of `{}'", pid_, name);
    fr.gate = gate;
    fr.old_path = old_path;
    fr.displaced = displaced.length;
    fr.gate_redirect = *to_gate;
    return displaced;
  }

  // The stop model's switch gates (flag byte, then a kSwitchSlot-byte slot
  // per function: gate and old path), and the writes of the switch: every
  // entry to its gate (the flag says old), the flag to new, every entry to
  // its replacement.
  Bytes plan_switch_gates() {
    Bytes out(layout_.gates_size, arch::kBreakpoint);
    out[0] = 0;  // the flag: old
    uint64_t gates = record_.transition.gates, flag = record_.transition.switch_flag;
    std::vector<SiteWrite> to_gates, to_new;
    for (size_t i = 0; i < patch_.functions.size(); ++i) {
      const auto& fr = record_.functions[i];
      place_gate(i, out, kSwitchFlagArea + i * kSwitchSlot, arch::kSwitchGateSize,
                 [&](uint64_t gate, uint64_t old_path) {
                   return arch::switch_gate_code(gate, flag, fr.replacement, old_path);
                 });
      const SiteWrite& w = plan_.writes[i];
      to_gates.push_back({w.function, w.site, w.expected, fr.gate_redirect});
      to_new.push_back({w.function, w.site, fr.gate_redirect, w.bytes});
    }
    plan_.writes = std::move(to_gates);
    SiteWrite activate{"the switch flag", {flag}, {0}, {1}};
    activate.activation = true;
    plan_.writes.push_back(activate);
    plan_.writes.insert(plan_.writes.end(), to_new.begin(), to_new.end());
    plan_.busy.push_back({{gates, layout_.gates_size}, "the switch gates of patch " + record_.label()});
    return out;
  }

  // Each function's gate and old path (a kGateSlot-byte slot in the gates
  // pages; a function put back to its original also has its new code
  // there), and the plan of the transition.
  Bytes plan_gates() {
    Bytes out(layout_.gates_size, arch::kBreakpoint);  // padding traps
    uint64_t gates = record_.transition.gates;
    for (size_t i = 0; i < record_.functions.size(); ++i) {
      auto& fr = record_.functions[i];
      const PlannedFunction& p = planned_[i];
      const std::string& name = p.name;
      if (fr.restores) {
        uint64_t at = gates + p.slot + kGateSlot;
        auto restored = arch::relocate_displaced(p.original_code, fr.site, at, name);
        std::copy(restored.old_path.begin(), restored.old_path.end(), out.begin() + p.slot + kGateSlot);
        fr.replacement = at;
        fr.replacement_size = restored.old_path.size();
      }
      Bytes code;
      auto displaced = place_gate(i, out, p.slot, arch::kMaxGateSize, [&](uint64_t gate, uint64_t old_path) {
        // settle_replace() will relocate the original there: checked now,
        // before anything is written (RIP-relative reach from the gates).
        if (!replaced_.empty()) arch::relocate_displaced(p.original_code, fr.site, old_path, name);
        code = arch::gate_code({gate, area_.table(), area_.capacity, area_.goal_byte(), fr.replacement, old_path});
        return code;
      });
      transition_.entries.push_back({fr.site, fr.gate, fr.old_path, fr.replacement, code});
      Bytes now(p.current.begin(), p.current.begin() + arch::kRedirectSize);
      transition_.to_gates.push_back({name, {fr.site}, now, fr.gate_redirect});
      transition_.to_new.push_back({name, {fr.site}, fr.gate_redirect, fr.redirect});
      transition_.to_old.push_back({name, {fr.site}, fr.gate_redirect, now});
      for (size_t k = 0; k < displaced.boundaries.size(); ++k)
        transition_.interior[fr.site + displaced.boundaries[k]] = fr.old_path + displaced.old_path_offsets[k];
      transition_.gate_of_site[fr.site] = fr.gate;
    }
    std::vector<arch::TrapSite> traps;
    for (const auto& [site, gate] : transition_.gate_of_site) traps.push_back({site, gate});
    // An exit stub's int3 leads on to the stub's own code (arch/x86_64/return_stub.h).
    for (uint32_t i = 0; i < stubs_; ++i) {
      uint64_t stub = record_.transition.return_stubs + uint64_t(i) * arch::kReturnStubSize;
      traps.push_back({stub, stub + 1});
    }
    transition_.return_stubs = record_.transition.return_stubs;
    transition_.return_stub_count = stubs_;
    Bytes handler = arch::trap_handler_block(record_.transition.trap_handler, traps);
    std::copy(handler.begin(), handler.end(), out.begin() + (record_.transition.trap_handler - gates));
    transition_.trap_handler = record_.transition.trap_handler;
    transition_.old_code = plan_.busy;
    transition_.new_code = {{record_.code(), "the code of patch " + record_.label()}};
    transition_.new_code.insert(transition_.new_code.end(), restored_code_.begin(), restored_code_.end());
    transition_.gates = {{gates, layout_.gates_size}, "the gates of patch " + record_.label()};
    transition_.area = area_;
    transition_.maps = maps_;
    // graft_quiescent() of the process's libgraft-rt, if it maps one.
    QuiescentRuntime rt = find_quiescent_runtime(objects_, target_, maps_, memory_);
    transition_.quiescent_area = rt.area;
    transition_.quiescent_armed = rt.armed;
    transition_.quiescent_users = rt.users;
    return out;
  }

  void run_transition(Tracer& tracer) {
    TransitionOptions o = transition_options(options_, memory_, record_);
    // The replaced patches are marked for removal right after this one is
    // marked applied, as in switch_stop_model (killed in between, recovery
    // marks them: see recovery.cc).
    if (!replaced_.empty())
      o.set_state = [this, mark = o.set_state](TransitionPhase p) {
        mark(p);
        if (p != TransitionPhase::applied) return;
        fault_point("marked-applied");
        for (const auto* r : replaced_) write_record_state(memory_, *r, RecordState::Reverting);
        fault_point("replaced");
      };
    TransitionResult t;
    try {
      run_per_thread_apply(tracer, memory_, transition_, o, t);
    } catch (...) {
      record_transition(t, result_);
      throw;
    }
    record_transition(t, result_);
    if (!t.completed) {
      result_.rolled_back = true;
      fail(interrupt_signal() ? ErrorCode::interrupted : ErrorCode::busy,
           "{}; rolled back: every thread runs the old code again", t.reason);
    }
    warn_forced(options_, pid_, t.forced, "new");
    if (!replaced_.empty()) settle_replace();
  }

  // The record settled (per_thread.h): the functions put back leave it,
  // and a per-thread patch's old paths are rebased. Killed before, the
  // record still lists them; the next graft settles it (recovery.h). The patch is applied:
  // a failure here is a note, never a reason to remove its region.
  void settle_replace() {
    record_.state = RecordState::Active;
    try {
      graft::settle_replace(memory_, record_);
    } catch (const Error& e) {
      // Old paths may still lead into the replaced patches: they stay
      // mapped (marked for removal, no longer this apply's to unmap) until
      // a graft settles the record.
      result_.notes.push_back(fmt::format("could not settle the record ({}); the replaced patches stay "
                                          "mapped until the next graft settles it",
                                          e.what()));
      replaced_.clear();
    }
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
  bool per_thread_ = false;
  bool region_in_use_ = false;  // a stuck transition: the region must stay
  // For each function of the record (the patch's, then those put back):
  std::vector<PlannedFunction> planned_;
  std::vector<BusyRange> restored_code_;  // the functions put back: new code of the transition
  TransitionAreaLayout area_;
  TransitionPlan transition_;
  static constexpr uint64_t kGateSlot = arch::kMaxGateSize + 128;
  // Exit stubs: one per thread whose return graft rewrites, never reused
  // while the region lives (per_thread_model.cc).
  static constexpr uint32_t kMaxReturnStubs = 256;
  uint32_t stubs_ = 0;
  uint64_t stubs_offset_ = 0;
  // The stubs' unwind information (rw pages: libgcc's `struct object',
  // then the .eh_frame).
  uint64_t stubs_unwind_ = 0;
  static constexpr uint64_t kRestoreSlot = kGateSlot + arch::kMaxOldPathSize;  // + the original's new code
  bool switch_gates_ = false;
  static constexpr uint64_t kSwitchFlagArea = 64;
  static constexpr uint64_t kSwitchSlot = arch::kSwitchGateSize + arch::kMaxOldPathSize;
  std::vector<uint64_t> addresses_;                  // of patch_.externals
  std::vector<std::pair<size_t, IfuncCall>> ifuncs_;  // still to resolve in the process
};

}  // namespace

OperationResult apply_patch(const Patch& patch, pid_t pid, const OperationOptions& options) {
  OperationResult result;
  result.pid = pid;
  result.patch_id = patch.id();
  result.patch_name = patch.name;
  result.model = options.model.value_or(kDefaultModel);
  result.patch_sha256 = patch.sha256;
  auto start = Clock::now();
  std::optional<Footprint> before;
  try {
    check_process_changeable(pid);
    before = read_footprint(pid);
  } catch (const Error& e) {
    result.error = e.what();
    result.error_code = e.code();
    name_an_exit(pid, "apply", result.error, result.error_code);
    result.total_ms = ms_since(start);
    return result;
  }
  // Real-time priority shortens a global stop; the per-thread models have
  // none, and graft holding a core at SCHED_FIFO would delay the target's
  // threads instead.
  try {
    run_tracing_thread([&] {
      std::optional<RealtimePriority> priority;
      if (!per_thread(result.model)) priority.emplace();
      try {
        ProcessLock lock(pid, options.timeout_s);
        ApplyJob(patch, pid, options, result).run();
        result.ok = true;
      } catch (const TransitionStuck& e) {
        result.error = e.what();
        result.error_code = e.code();
        result.left_in_transition = true;
      }
    });
  } catch (const std::exception& e) {
    result.error = e.what();
    result.error_code = error_code_of(e);
    name_an_exit(pid, "apply", result.error, result.error_code);
  }
  if (!result.ok && !result.left_in_transition) verify_unchanged(pid, before, result.unchanged, result.left);
  result.total_ms = ms_since(start);
  return result;
}

}  // namespace graft
